"""Checkpoints: checksummed contents, a validated step, one clear error for a damaged file."""

from __future__ import annotations

import hashlib
import io
import json
import tracemalloc
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otlib.core import checkpoint as ckpt
from otlib.core.checkpoint import CheckpointCorruptError, CheckpointMismatchError
from otlib.core.train import train
from test_train import regression_method

FINGERPRINT = json.dumps({"method": "toy", "num_steps": 200})


def _tree() -> dict:
    return {"w": jnp.arange(6.0).reshape(2, 3), "n": jnp.int32(7), "key": jax.random.key(3)}


def _template() -> dict:
    return {"w": jnp.zeros((2, 3)), "n": jnp.int32(0), "key": jax.random.key(0)}


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _rewrite(path: Path, members: dict[str, bytes], *, checksum: bool = True) -> None:
    """Write ``members`` as a checkpoint, with its checksum recomputed (a writer that gets it right)."""
    members = {k: v for k, v in members.items() if k != "__sha256__.npy"}
    if checksum:
        digest = hashlib.sha256()
        for name in members:  # in file order
            digest.update(members[name])
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.array(digest.hexdigest()))
        members["__sha256__.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _edit_meta(path: Path, edit, *, checksum: bool = True) -> None:
    members = _members(path)
    meta = json.loads(str(np.lib.format.read_array(io.BytesIO(members["__meta__.npy"]))))
    edit(meta)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array(json.dumps(meta)))
    members["__meta__.npy"] = buf.getvalue()
    _rewrite(path, members, checksum=checksum)


def test_round_trip_with_key_and_extra(tmp_path: Path) -> None:
    path = tmp_path / "c.npz"
    ckpt.save(path, _tree(), FINGERPRINT, step=150, rows=[np.arange(3.0)])
    tree, extra = ckpt.restore(path, _template(), FINGERPRINT)
    np.testing.assert_array_equal(tree["w"], np.arange(6.0).reshape(2, 3))
    assert int(tree["n"]) == 7 and extra["step"] == 150
    np.testing.assert_array_equal(jax.random.key_data(tree["key"]), jax.random.key_data(jax.random.key(3)))
    np.testing.assert_array_equal(extra["rows"][0], [0.0, 1.0, 2.0])
    with np.load(path, allow_pickle=False) as data:  # still a plain .npz for numpy
        assert sorted(data.files) == ["__meta__", "__sha256__", "leaf_00000", "leaf_00001", "leaf_00002"]
        assert data["leaf_00002"].shape == (2, 3)


def _damaged(tmp_path: Path) -> dict[str, bytes]:
    path = tmp_path / "good.npz"
    ckpt.save(path, _tree(), FINGERPRINT, step=150)
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as z:
        leaf = z.getinfo("leaf_00000.npy")
        meta = z.getinfo("__meta__.npy")
    cases = {"empty": b"", "four bytes": raw[:4], "half": raw[: len(raw) // 2], "all but one byte": raw[:-1],
             "garbage": b"not a checkpoint at all"}
    for name, info in (("leaf", leaf), ("meta", meta)):
        flipped = bytearray(raw)
        flipped[info.header_offset + 30 + len(info.filename) + info.compress_size - 3] ^= 0x10
        cases[f"bit flipped in {name}"] = bytes(flipped)
    return cases


@pytest.mark.parametrize("case", ["empty", "four bytes", "half", "all but one byte", "garbage",
                                  "bit flipped in leaf", "bit flipped in meta"])
def test_damaged_file_gives_one_clear_error(tmp_path: Path, case: str) -> None:
    path = tmp_path / "run.ckpt.npz"
    path.write_bytes(_damaged(tmp_path)[case])
    with pytest.raises(CheckpointCorruptError) as exc:
        ckpt.restore(path, _template(), FINGERPRINT)
    assert str(path) in str(exc.value) and "delete it" in str(exc.value)


@pytest.mark.parametrize("edit, checksum, why", [
    (lambda m: m["extra"].update(step=10 ** 9), False, "checksum"),       # a careless edit
    (lambda m: m["extra"].update(step=10 ** 9), True, "step"),            # the checksum recomputed too
    (lambda m: m["extra"].update(step=-50), True, "step"),
    (lambda m: m["extra"].update(step="150"), True, "step"),
    (lambda m: m["extra"].pop("step"), True, "step"),
    (lambda m: m.pop("num_leaves"), True, "num_leaves"),
    (lambda m: m.pop("extra"), True, "extra"),
], ids=["huge step", "huge step re-checksummed", "negative step", "string step", "no step", "no num_leaves",
        "no extra"])
def test_tampered_record_is_refused(tmp_path: Path, edit, checksum: bool, why: str) -> None:
    path = tmp_path / "run.ckpt.npz"
    ckpt.save(path, _tree(), FINGERPRINT, step=150)
    _edit_meta(path, edit, checksum=checksum)
    with pytest.raises(CheckpointCorruptError, match=why) as exc:
        ckpt.restore(path, _template(), FINGERPRINT)
    assert str(path) in str(exc.value)


def test_missing_checksum_of_a_new_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt.npz"
    ckpt.save(path, _tree(), FINGERPRINT, step=150)
    _rewrite(path, _members(path), checksum=False)
    with pytest.raises(CheckpointCorruptError, match="checksum is missing"):
        ckpt.restore(path, _template(), FINGERPRINT)


def test_file_written_before_checksums_still_restores(tmp_path: Path) -> None:
    path = tmp_path / "old.npz"
    meta = json.dumps({"fingerprint": FINGERPRINT, "num_leaves": 3, "extra": {"step": 100}})
    leaves = jax.tree.leaves(_tree())
    arrays = {f"leaf_{i:05d}": np.asarray(jax.random.key_data(x) if ckpt._is_key(x) else x)
              for i, x in enumerate(leaves)}
    np.savez(path, __meta__=np.array(meta), **arrays)
    tree, extra = ckpt.restore(path, _template(), FINGERPRINT)
    assert extra["step"] == 100 and int(tree["n"]) == 7


def test_declared_shapes_are_checked_before_reading(tmp_path: Path) -> None:
    """A leaf whose header declares a huge array is refused from its header, allocating nothing."""
    path = tmp_path / "run.ckpt.npz"
    ckpt.save(path, _tree(), FINGERPRINT, step=150)
    members = _members(path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (1 << 27,)})
    members["leaf_00002.npy"] = header.getvalue() + bytes(64)  # declares 1 GiB, holds 64 bytes
    _rewrite(path, members)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointMismatchError, match="shape"):
            ckpt.restore(path, _template(), FINGERPRINT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


# ------------------------------------------------------------------------------------------------
# Through the driver: a bad checkpoint never resumes, finishes early, or trains extra steps.


def test_train_refuses_a_damaged_or_tampered_checkpoint(tmp_path: Path) -> None:
    method, key = regression_method(), jax.random.key(5)
    path = tmp_path / "run.ckpt.npz"
    train(method, key, 200, chunk_size=50, checkpoint=path, until=100, progress=False)
    good = path.read_bytes()

    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointCorruptError, match="delete it") as exc:
        train(method, key, 200, chunk_size=50, checkpoint=path, progress=False)
    assert str(path) in str(exc.value)

    for step in (10 ** 9, -100):  # "finished" at 1e9 steps; 300 steps trained from -100
        path.write_bytes(good)
        _edit_meta(path, lambda m: m["extra"].update(step=step))
        with pytest.raises(CheckpointCorruptError, match="step"):
            train(method, key, 200, chunk_size=50, checkpoint=path, progress=False)

    path.unlink()  # what the message says to do: the run starts afresh
    result = train(method, key, 200, chunk_size=50, checkpoint=path, progress=False)
    assert result.steps == 200 and result.finished
