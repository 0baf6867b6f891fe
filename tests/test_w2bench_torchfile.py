"""The torch-free, code-free checkpoint reader (otlib.w2bench.torchfile)."""

from __future__ import annotations

import io
import pickle
import pickletools
import shutil
import subprocess
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from otlib.w2bench import torchfile
from otlib.w2bench.torchfile import (CorruptCheckpointError, UnsafePickleError, UnsupportedCheckpointError,
                                     load_state_dict)

# ------------------------------------------------------------------------------------------------
# A tiny writer of torch-style zip checkpoints (hand-assembled pickle opcodes, no torch needed).


def _tensor_record(storage: str, key: str | bytes, numel: int, offset: int, size: tuple, stride: tuple) -> bytes:
    """Opcodes of one tensor; ``key`` as bytes is raw opcodes that push the storage key."""
    def tup(t: tuple) -> bytes:
        return b"(" + b"".join(b"I%d\n" % v for v in t) + b"t"
    key_ops = key if isinstance(key, bytes) else b"V" + key.encode() + b"\n"
    return (b"ctorch._utils\n_rebuild_tensor_v2\n("
            + b"(Vstorage\nctorch\n" + storage.encode() + b"\n" + key_ops + b"Vcpu\nI%d\ntQ" % numel
            + b"I%d\n" % offset + tup(size) + tup(stride) + b"I00\n"
            + b"ccollections\nOrderedDict\n)R" + b"tR")


def _state_dict_pickle(tensors: dict[str, tuple]) -> bytes:
    body = b"".join(b"V" + name.encode() + b"\n" + _tensor_record(*rec) for name, rec in tensors.items())
    return b"ccollections\nOrderedDict\n)R(" + body + b"u."


def _write_zip(path: Path, pkl: bytes, storages: dict[str, bytes] | None = None, *, prefix: str = "archive",
               byteorder: str | None = None, compress: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{prefix}/data.pkl", pkl)
        for key, raw in (storages or {}).items():
            z.writestr(f"{prefix}/data/{key}", raw, compress_type=compress)
        z.writestr(f"{prefix}/version", "3\n")
        if byteorder is not None:
            z.writestr(f"{prefix}/byteorder", byteorder)
    return path


# ------------------------------------------------------------------------------------------------
# Security: forbidden globals are refused and never executed.


def test_os_system_is_refused_and_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    pkl = b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."
    ckpt = _write_zip(tmp_path / "evil.pt", pkl)
    with pytest.raises(UnsafePickleError, match=r"os\.system") as exc:
        load_state_dict(ckpt)
    assert str(ckpt) in str(exc.value)
    assert isinstance(exc.value, ValueError)
    assert not marker.exists()


def test_builtins_eval_is_refused_and_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned_eval"
    code = f"open({str(marker)!r}, 'w').write('x')"
    pkl = b"cbuiltins\neval\n(V" + code.encode() + b"\ntR."
    ckpt = _write_zip(tmp_path / "evil_eval.pt", pkl)
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval") as exc:
        load_state_dict(ckpt)
    assert "evil_eval.pt" in str(exc.value)
    assert not marker.exists()


class _Popen:
    """Pickles as subprocess.Popen([...]) (protocol 4: STACK_GLOBAL); never unpickled with plain pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return subprocess.Popen, (["touch", str(self.marker)],)


def test_stack_global_subprocess_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned_popen"
    ckpt = _write_zip(tmp_path / "evil_popen.pt", pickle.dumps({"w": _Popen(marker)}, protocol=4))
    with pytest.raises(UnsafePickleError, match=r"subprocess\.Popen"):
        load_state_dict(ckpt)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------
# Format: geometry, dtypes, prefix, byte order.


def test_strided_offset_scalar_shared_and_dtypes(tmp_path: Path) -> None:
    base = np.arange(12, dtype="<f4")
    longs = np.array([7, -3], dtype="<i8")
    doubles = np.array([1.5, -2.25, 3.0], dtype="<f8")
    pkl = _state_dict_pickle({
        "mat": ("FloatStorage", "10", 12, 0, (3, 4), (4, 1)),
        "transposed": ("FloatStorage", "10", 12, 0, (4, 3), (1, 4)),     # shares the storage
        "tail": ("FloatStorage", "10", 12, 5, (3,), (2,)),                # offset + stride 2
        "count": ("LongStorage", "7", 2, 1, (), ()),                      # 0-dim int64
        "d": ("DoubleStorage", "8", 3, 0, (3,), (1,)),
        "empty": ("FloatStorage", "10", 12, 0, (0, 4), (4, 1)),
    })
    ckpt = _write_zip(tmp_path / "model.pt", pkl, {"10": base.tobytes(), "7": longs.tobytes(),
                                                   "8": doubles.tobytes()}, prefix="model")
    sd = load_state_dict(ckpt)
    assert list(sd) == ["mat", "transposed", "tail", "count", "d", "empty"]
    np.testing.assert_array_equal(sd["mat"], base.reshape(3, 4))
    np.testing.assert_array_equal(sd["transposed"], base.reshape(3, 4).T)
    np.testing.assert_array_equal(sd["tail"], [5.0, 7.0, 9.0])
    assert sd["count"].shape == () and sd["count"].dtype == np.int64 and sd["count"] == -3
    assert sd["d"].dtype == np.float64 and list(sd["d"]) == [1.5, -2.25, 3.0]
    assert sd["empty"].shape == (0, 4)


def test_big_endian_byteorder_record(tmp_path: Path) -> None:
    values = np.array([1.0, -2.5, 3.25], dtype=">f4")
    pkl = _state_dict_pickle({"w": ("FloatStorage", "0", 3, 0, (3,), (1,))})
    ckpt = _write_zip(tmp_path / "be.pt", pkl, {"0": values.tobytes()}, byteorder="big")
    np.testing.assert_array_equal(load_state_dict(ckpt)["w"], [1.0, -2.5, 3.25])


def test_out_of_bounds_geometry_is_corrupt(tmp_path: Path) -> None:
    pkl = _state_dict_pickle({"w": ("FloatStorage", "0", 4, 2, (4,), (1,))})
    ckpt = _write_zip(tmp_path / "oob.pt", pkl, {"0": np.zeros(4, "<f4").tobytes()})
    with pytest.raises(CorruptCheckpointError, match="oob.pt"):
        load_state_dict(ckpt)


def test_official_file_decodes(w2bench_data: Path) -> None:
    sd = load_state_dict(w2bench_data / "2_v1.pt")
    assert len(sd) == 12 and all(v.dtype == np.float32 for v in sd.values())
    assert sd["quadratic_layers.0.quadratic_decomposed"].shape == (2, 1, 64)
    assert sd["convex_layers.0.weight"].min() >= 0


# ------------------------------------------------------------------------------------------------
# Damaged and unsupported files.


def test_truncated_file_names_the_file(w2bench_data: Path, tmp_path: Path) -> None:
    raw = (w2bench_data / "2_v1.pt").read_bytes()
    bad = tmp_path / "2_v1_truncated.pt"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptCheckpointError, match="2_v1_truncated.pt"):
        load_state_dict(bad)


def test_flipped_byte_is_caught_by_crc(w2bench_data: Path, tmp_path: Path) -> None:
    shutil.copy(w2bench_data / "2_v1.pt", tmp_path / "flipped.pt")
    with zipfile.ZipFile(tmp_path / "flipped.pt") as z:
        info = next(i for i in z.infolist() if "/data/" in i.filename)
    raw = bytearray((tmp_path / "flipped.pt").read_bytes())
    raw[info.header_offset + 200] ^= 0xFF  # inside the (stored, 64-byte aligned) tensor bytes
    (tmp_path / "flipped.pt").write_bytes(bytes(raw))
    with pytest.raises(CorruptCheckpointError, match="flipped.pt"):
        load_state_dict(tmp_path / "flipped.pt")


@pytest.mark.parametrize("content", [b"", b"PK", b"garbage that is not a checkpoint"])
def test_empty_or_garbage_is_corrupt(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "junk.pt").write_bytes(content)
    with pytest.raises(CorruptCheckpointError, match="junk.pt"):
        load_state_dict(tmp_path / "junk.pt")


def test_legacy_format_is_unsupported(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + b"\x80\x02K\x03.")
    with pytest.raises(UnsupportedCheckpointError, match=r"legacy.*not supported"):
        load_state_dict(legacy)


# ------------------------------------------------------------------------------------------------
# A refused file cannot change how later files load: BUILD (set an object's state) is refused on
# everything but a state dict of the same load, and nothing a load sees is shared with the next.


def _good_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    values = np.array([0.3024, -1.5, 2.0], "<f4")
    pkl = _state_dict_pickle({"w": ("FloatStorage", "0", 3, 0, (3,), (1,))})
    return _write_zip(tmp_path / "good.pt", pkl, {"0": values.tobytes()}), values


_ONE_TENSOR = _tensor_record("FloatStorage", "0", 3, 0, (3,), (1,))
_BUILD_ATTACKS = {
    # the storage-type stand-in renamed: a shared one made every later float32 tensor decode as bfloat16
    "storage type __dict__": b"ctorch\nFloatStorage\n}(Vname\nVBFloat16Storage\nub0}.",
    "storage type dtype": b"ctorch\nFloatStorage\n}(Vdtype\nVx\nub0}.",
    # the rebuild function's defaults emptied: every later tensor record of 6 arguments failed
    "function slot state": b"ctorch._utils\n_rebuild_tensor_v2\n(N}(V__defaults__\n)utb0}.",
    "OrderedDict class": b"ccollections\nOrderedDict\n}(Vx\nI1\nub0}.",
    "tensor": b"ccollections\nOrderedDict\n)R(Vw\n" + _ONE_TENSOR + b"}(Vx\nI1\nubu.",
    "storage": b"ccollections\nOrderedDict\n)R(Vw\n" + _ONE_TENSOR.replace(b"tQ", b"tQ}(Vdata\nI1\nub")
                + b"u.",
    "state dict, non-dict state": b"ccollections\nOrderedDict\n)R(Vw\n" + _ONE_TENSOR + b"u(N}tb.",
}


@pytest.mark.parametrize("attack", list(_BUILD_ATTACKS))
def test_build_is_refused_and_later_loads_are_unchanged(tmp_path: Path, attack: str) -> None:
    good, values = _good_file(tmp_path)
    evil = _write_zip(tmp_path / "evil.pt", _BUILD_ATTACKS[attack], {"0": values.tobytes()})
    for _ in range(2):  # refused the same way twice: the first load left nothing behind
        with pytest.raises(UnsafePickleError, match="BUILD") as exc:
            load_state_dict(evil)
        assert "evil.pt" in str(exc.value)
        sd = load_state_dict(good)
        assert list(sd) == ["w"] and sd["w"].dtype == np.float32
        np.testing.assert_array_equal(sd["w"], values)


def test_metadata_build_on_the_state_dict_is_accepted(tmp_path: Path) -> None:
    pkl = (b"ccollections\nOrderedDict\n)R(Vw\n" + _ONE_TENSOR + b"u"
           + b"}(V_metadata\nccollections\nOrderedDict\n)R(V\n}(Vversion\nI1\nuuub.")
    values = np.array([1.0, 2.0, 3.0], "<f4")
    sd = load_state_dict(_write_zip(tmp_path / "meta.pt", pkl, {"0": values.tobytes()}))
    assert list(sd) == ["w"]
    np.testing.assert_array_equal(sd["w"], values)


def test_refused_files_leave_the_official_file_intact(w2bench_data: Path, tmp_path: Path) -> None:
    before = load_state_dict(w2bench_data / "2_v1.pt")
    for i, pkl in enumerate(_BUILD_ATTACKS.values()):
        with pytest.raises(UnsafePickleError):
            load_state_dict(_write_zip(tmp_path / f"evil{i}.pt", pkl, {"0": bytes(12)}))
    after = load_state_dict(w2bench_data / "2_v1.pt")
    assert list(after) == list(before)
    for k in before:
        assert after[k].dtype == before[k].dtype
        np.testing.assert_array_equal(after[k], before[k])


@pytest.mark.parametrize("pkl", [b"cbuiltins\nobject\n)\x81.", b"(cbuiltins\nobject\no.", b"\x82\x01.",
                                 b"\x80\x04\x8f(K\x01\x90."],
                         ids=["NEWOBJ", "OBJ", "EXT1", "EMPTY_SET"])
def test_object_building_opcodes_are_refused(tmp_path: Path, pkl: bytes) -> None:
    with pytest.raises(UnsafePickleError, match="evilop.pt"):
        load_state_dict(_write_zip(tmp_path / "evilop.pt", pkl))


# ------------------------------------------------------------------------------------------------
# Memory bombs from tiny files: nothing is allocated from a declared size before it is checked.


def _peak_of(fn) -> tuple[BaseException | None, int, float]:
    """Run ``fn``; return (the exception it raised, the peak traced memory in bytes, seconds)."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        fn()
        err = None
    except Exception as e:  # noqa: BLE001 - handed back to the caller's assertions
        err = e
    finally:
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return err, peak, seconds


@pytest.mark.parametrize("size, stride, numel", [
    ((1 << 20,), (0,), 1),          # stride 0: one float read 2**20 times (4 MiB from a 0.6 kB file)
    ((3, 3), (1, 1), 9),            # rows overlap
    ((4, 2), (1, 2), 8),            # columns land inside the rows
    ((2, 1 << 18, 2), (1, 0, 2), 4),
])
def test_aliasing_strides_are_refused(tmp_path: Path, size: tuple, stride: tuple, numel: int) -> None:
    pkl = _state_dict_pickle({"w": ("FloatStorage", "0", numel, 0, size, stride)})
    ckpt = _write_zip(tmp_path / "alias.pt", pkl, {"0": np.zeros(numel, "<f4").tobytes()})
    assert ckpt.stat().st_size < 1024
    err, peak, _ = _peak_of(lambda: load_state_dict(ckpt))
    assert isinstance(err, CorruptCheckpointError) and "alias" in str(err) and "alias.pt" in str(err)
    assert peak < 256 << 10


def test_size_one_dims_and_sliced_views_load(tmp_path: Path) -> None:
    base = np.arange(12, dtype="<f4")
    pkl = _state_dict_pickle({"row": ("FloatStorage", "0", 12, 0, (1, 3), (7, 1)),       # size-1 dim: any stride
                              "every_other": ("FloatStorage", "0", 12, 0, (2, 2), (6, 2)),
                              "column": ("FloatStorage", "0", 12, 3, (4, 1), (2, 0))})
    sd = load_state_dict(_write_zip(tmp_path / "views.pt", pkl, {"0": base.tobytes()}))
    np.testing.assert_array_equal(sd["row"], [[0, 1, 2]])
    np.testing.assert_array_equal(sd["every_other"], [[0, 2], [6, 8]])
    np.testing.assert_array_equal(sd["column"], [[3], [5], [7], [9]])


@pytest.mark.parametrize("member", ["storage", "pickle"])
def test_compressed_member_is_refused_before_inflating(tmp_path: Path, member: str) -> None:
    n = 1 << 20  # 4 MiB of float32 zeros deflate to a few kB
    pkl = _state_dict_pickle({"w": ("FloatStorage", "0", n, 0, (n,), (1,))})
    ckpt = tmp_path / "deflated.pt"
    with zipfile.ZipFile(ckpt, "w") as z:
        z.writestr("archive/data.pkl", pkl + bytes(n) if member == "pickle" else pkl,
                   compress_type=zipfile.ZIP_DEFLATED if member == "pickle" else zipfile.ZIP_STORED)
        z.writestr("archive/data/0", bytes(4 * n),
                   compress_type=zipfile.ZIP_DEFLATED if member == "storage" else zipfile.ZIP_STORED)
    if member == "storage":
        assert ckpt.stat().st_size < 64 << 10
    err, peak, _ = _peak_of(lambda: load_state_dict(ckpt))
    assert isinstance(err, UnsupportedCheckpointError) and "compressed" in str(err)
    assert "deflated.pt" in str(err)
    assert peak < 256 << 10


def _doubling_tuple(depth: int) -> bytes:
    """Opcodes that leave memo[depth] = a tuple of 2**depth leaves built from shared references."""
    ops = b"Vx\nq\x000"
    for i in range(1, depth + 1):
        ops += b"h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"\x86q" + bytes([i]) + b"0"
    return ops


@pytest.mark.parametrize("where", ["storage key", "state dict key"])
def test_non_string_keys_are_refused_at_once(tmp_path: Path, where: str) -> None:
    depth = 20  # its str() has 7 MB; at depth 40 (a 300-byte file) 7 TB
    get = b"h" + bytes([depth])
    if where == "storage key":
        pkl = _doubling_tuple(depth) + _state_dict_pickle({"w": ("FloatStorage", get, 1, 0, (1,), (1,))})
    else:
        pkl = _doubling_tuple(depth) + b"ccollections\nOrderedDict\n)R(" + get + b"I1\nu."
    ckpt = _write_zip(tmp_path / "keys.pt", pkl, {"0": bytes(4)})
    err, peak, seconds = _peak_of(lambda: load_state_dict(ckpt))
    assert isinstance(err, CorruptCheckpointError) and "not a string" in str(err)
    assert peak < 256 << 10 and seconds < 5.0


@pytest.mark.parametrize("opcode, width", [(b"\x8e", 8), (b"\x8d", 8), (b"B", 4), (b"X", 4)],
                         ids=["BINBYTES8", "BINUNICODE8", "BINBYTES", "BINUNICODE"])
def test_huge_declared_pickle_lengths_allocate_nothing(tmp_path: Path, opcode: bytes, width: int) -> None:
    length = (1 << 40) if width == 8 else (1 << 31) - 1
    ckpt = _write_zip(tmp_path / "long.pt", b"\x80\x04" + opcode + length.to_bytes(width, "little") + b"xx.")
    err, peak, _ = _peak_of(lambda: load_state_dict(ckpt))
    assert isinstance(err, CorruptCheckpointError) and "long.pt" in str(err)
    assert peak < 256 << 10


def test_declared_storage_size_is_checked_before_reading(tmp_path: Path) -> None:
    n = 10 ** 12
    pkl = _state_dict_pickle({"w": ("FloatStorage", "0", n, 0, (n,), (1,))})
    ckpt = _write_zip(tmp_path / "numel.pt", pkl, {"0": bytes(16)})
    err, peak, _ = _peak_of(lambda: load_state_dict(ckpt))
    assert isinstance(err, CorruptCheckpointError) and "expected" in str(err) and "numel.pt" in str(err)
    assert peak < 256 << 10


def test_tensors_sharing_one_storage_stay_under_the_limit(tmp_path: Path) -> None:
    n = 1 << 14  # one 64 KiB storage viewed by 300 records: 19 MiB of tensors from a 110 kB file
    base = np.arange(n, dtype="<f4")
    pkl = _state_dict_pickle({f"t{i}": ("FloatStorage", "0", n, 0, (n,), (1,)) for i in range(300)})
    ckpt = _write_zip(tmp_path / "shared.pt", pkl, {"0": base.tobytes()})
    size = ckpt.stat().st_size
    limit = torchfile.default_max_bytes(size)
    assert 300 * 4 * n > limit
    err, peak, _ = _peak_of(lambda: load_state_dict(ckpt))
    assert isinstance(err, CorruptCheckpointError) and "max_bytes" in str(err) and "shared.pt" in str(err)
    assert peak < limit + 2 * size + (1 << 20)
    err, peak, _ = _peak_of(lambda: load_state_dict(ckpt, max_bytes=1 << 20))
    assert isinstance(err, CorruptCheckpointError) and peak < (1 << 20) + 2 * size + (1 << 20)
    sd = load_state_dict(ckpt, max_bytes=300 * 4 * n)  # a caller may raise the limit
    assert len(sd) == 300
    np.testing.assert_array_equal(sd["t299"], base)


# ------------------------------------------------------------------------------------------------
# Property: mutated copies of a real file give a clear error or the correct values, within a memory bound.


def _rezip(raw: bytes, pkl: bytes) -> bytes:
    """``raw`` (a torch zip) with its ``data.pkl`` replaced by ``pkl``; the CRCs are recomputed."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, pkl if info.filename.endswith("/data.pkl") else src.read(info))
    return out.getvalue()


def _mutants(raw: bytes, rng: np.random.Generator) -> Iterator[tuple[str, str, bytes]]:
    """(kind, label, bytes) for flipped bytes, truncations and altered pickle opcodes of ``raw``."""
    for pos in rng.integers(0, len(raw), 200):
        b = bytearray(raw)
        b[pos] ^= int(rng.integers(1, 256))
        yield "exact", f"byte {pos} flipped", bytes(b)
    for n in rng.integers(0, len(raw), 40):
        yield "exact", f"truncated to {n} bytes", raw[:n]
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        pkl = z.read("archive/data.pkl")
    ops = list(pickletools.genops(pkl))
    starts = [pos for _, _, pos in ops] + [len(pkl)]
    codes = sorted({op.code.encode("latin-1") for op in pickletools.opcodes})
    for i in rng.integers(0, len(ops), 150):  # an opcode replaced by another one
        a = starts[i]
        new = codes[int(rng.integers(len(codes)))]
        yield "exact", f"opcode at {a} replaced by {new!r}", _rezip(raw, pkl[:a] + new + pkl[a + 1:])
    for i in rng.integers(0, len(ops) - 1, 60):  # an opcode dropped or doubled
        a, b = starts[i], starts[i + 1]
        yield "exact", f"opcode at {a} dropped", _rezip(raw, pkl[:a] + pkl[b:])
        yield "exact", f"opcode at {a} doubled", _rezip(raw, pkl[:b] + pkl[a:b] + pkl[b:])
    ints = [(pos, op.name) for op, _, pos in ops if op.name in ("BININT1", "BININT2")]
    for j in rng.integers(0, len(ints), 100):  # a size, stride, offset or element count changed
        pos, name = ints[j]
        value = int(rng.choice([0, 1, 2, 3, 63, 64, 65, 127, 128, 255] + ([256, 4095, 65535] if name == "BININT2"
                                                                             else [])))
        width = 1 if name == "BININT1" else 2
        mutated = pkl[:pos + 1] + value.to_bytes(width, "little") + pkl[pos + 1 + width:]
        yield "geometry", f"{name} at {pos} set to {value}", _rezip(raw, mutated)


def test_mutated_real_file_gives_error_or_correct_values(w2bench_data: Path, tmp_path: Path) -> None:
    """Flipped bytes, truncations and altered opcodes (re-zipped with valid CRCs) of ``2_v1.pt``.

    Each mutant either raises one of the reader's three errors naming the file, or returns the
    original state dict exactly. A changed size, stride, offset or element count may describe other
    valid tensors of the same storages; those must hold only values of the tensor's own storage. No
    load may trace more than 4 x the file's size + 512 KiB of memory or take over 5 s (a hang).
    """
    raw = (w2bench_data / "2_v1.pt").read_bytes()
    expected = load_state_dict(w2bench_data / "2_v1.pt")
    bound = 4 * len(raw) + (512 << 10)
    target = tmp_path / "mutant.pt"
    outcomes = {"error": 0, "exact": 0, "other valid tensors": 0}
    failures = []
    for kind, label, data in _mutants(raw, np.random.default_rng(24)):
        target.write_bytes(data)
        result: dict[str, np.ndarray] = {}
        err, peak, seconds = _peak_of(lambda: result.update(load_state_dict(target)))
        if peak > bound or seconds > 5.0:
            failures.append(f"{label}: {peak} bytes traced, {seconds:.2f} s")
        elif err is not None:
            if not (isinstance(err, (CorruptCheckpointError, UnsafePickleError, UnsupportedCheckpointError))
                    and str(target) in str(err)):
                failures.append(f"{label}: {type(err).__name__}: {str(err)[:200]}")
            outcomes["error"] += 1
        elif list(result) == list(expected) and all(
                result[k].dtype == v.dtype and result[k].shape == v.shape and np.array_equal(result[k], v)
                for k, v in expected.items()):
            outcomes["exact"] += 1
        elif kind == "geometry" and list(result) == list(expected) and all(
                np.isin(result[k], v).all() for k, v in expected.items()):
            outcomes["other valid tensors"] += 1
        else:
            failures.append(f"{label}: loaded wrong values without an error")
    assert not failures, f"{len(failures)} bad outcomes, e.g. {failures[:5]}"
    assert outcomes["error"] > 300 and outcomes["exact"] > 20, outcomes


def test_celeba64_fixtures_load(w2bench_shared: Path) -> None:
    """The CelebA64 stand-ins (ConvICNN64 and ResNet_G state dicts, 141 MB) load with every tensor."""
    folder = w2bench_shared / "celeba64_fixtures"
    if not (folder / "convicnn64_v1.pt").is_file() or not (folder / "resnet_g.pt").is_file():
        pytest.skip(f"CelebA64 fixture files not found in {folder}")
    psi = load_state_dict(folder / "convicnn64_v1.pt")
    assert len(psi) == 12 and all(v.dtype == np.float32 for v in psi.values())
    assert sum(v.size for v in psi.values()) == 11_247_105
    assert psi["convex_layers.0.weight"].shape == (256, 128, 4, 4) and psi["convex_layers.0.weight"].min() >= 0
    g = load_state_dict(folder / "resnet_g.pt")
    counts = [k for k in g if k.endswith("num_batches_tracked")]
    floats = [v for v in g.values() if v.dtype == np.float32]
    assert len(g) == 147 and len(counts) == 24 and len(floats) == 123
    assert sum(v.size for v in floats) == 24_033_731
    assert all(g[k].shape == () and g[k].dtype == np.int64 for k in counts)
    assert sorted(int(g[k]) for k in counts) == list(range(100_000, 100_024))
