"""The torch-free, code-free checkpoint reader (otlib.w2bench.torchfile; digest §7)."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from otlib.w2bench.torchfile import (CorruptCheckpointError, UnsafePickleError, UnsupportedCheckpointError,
                                     load_state_dict)

# ------------------------------------------------------------------------------------------------
# A tiny writer of torch-style zip checkpoints (hand-assembled pickle opcodes, no torch needed).


def _tensor_record(storage: str, key: str, numel: int, offset: int, size: tuple, stride: tuple) -> bytes:
    def tup(t: tuple) -> bytes:
        return b"(" + b"".join(b"I%d\n" % v for v in t) + b"t"
    return (b"ctorch._utils\n_rebuild_tensor_v2\n("
            + b"(Vstorage\nctorch\n" + storage.encode() + b"\nV" + key.encode() + b"\nVcpu\nI%d\ntQ" % numel
            + b"I%d\n" % offset + tup(size) + tup(stride) + b"I00\n"
            + b"ccollections\nOrderedDict\n)R" + b"tR")


def _state_dict_pickle(tensors: dict[str, tuple]) -> bytes:
    body = b"".join(b"V" + name.encode() + b"\n" + _tensor_record(*rec) for name, rec in tensors.items())
    return b"ccollections\nOrderedDict\n)R(" + body + b"u."


def _write_zip(path: Path, pkl: bytes, storages: dict[str, bytes] | None = None, *, prefix: str = "archive",
               byteorder: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{prefix}/data.pkl", pkl)
        for key, raw in (storages or {}).items():
            z.writestr(f"{prefix}/data/{key}", raw)
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
