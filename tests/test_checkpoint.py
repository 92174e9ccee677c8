"""Checkpoint files: safetensors layout, bitwise round trips, refusal of truncated / corrupted /
malformed files, crash safety of the atomic write, interop with the official safetensors package.

Legend: N = header length in bytes; "raw" = the file's bytes; "crafted" = a file built by hand here.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import json
import math
import os
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

import pyrnn.checkpoint as ckpt
from pyrnn.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_file,
    read_checkpoint_header,
    read_header,
    save_checkpoint,
    save_file,
)

# Written from the safetensors specification, independently of the module under test.
SPEC_DTYPES = {"bool": "BOOL", "uint8": "U8", "int8": "I8", "uint16": "U16", "int16": "I16", "float16": "F16",
               "uint32": "U32", "int32": "I32", "float32": "F32", "uint64": "U64", "int64": "I64", "float64": "F64"}


def many_tensors():
    """Every supported dtype; 0-d, empty, non-contiguous, big-endian, NaN-payload and large-ish arrays."""
    rng = np.random.default_rng(0)
    out = {}
    for name in SPEC_DTYPES:
        dt = np.dtype(name)
        if dt.kind == "b":
            a = rng.random((3, 4)) < 0.5
        elif dt.kind == "f":
            a = rng.standard_normal((3, 4)).astype(dt)
            a[0, :3] = [np.inf, -np.inf, -0.0]
        else:
            info = np.iinfo(dt)
            a = rng.integers(info.min, info.max, (3, 4), dtype=dt, endpoint=True)
            a[0, :2] = [info.min, info.max]
        out[f"{name}/matrix"] = a
        out[f"{name}/scalar"] = a[1, 1].copy().reshape(())  # 0-d
        out[f"{name}/empty"] = np.zeros((2, 0, 3), dt)
    out["nan_payloads"] = np.array([0x7FC00001, 0xFFA00000, 0x7F800001], np.uint32).view(np.float32)
    out["transposed"] = np.arange(24, dtype=np.float64).reshape(4, 6).T  # F-ordered view
    out["strided"] = np.arange(40, dtype=np.int32)[::3]
    out["big_endian"] = (np.arange(5) / 7).astype(">f8")
    out["large"] = rng.standard_normal((300, 257)).astype(np.float32)
    out["ids"] = rng.integers(-(2**62), 2**62, 100_000)
    out["numpy_scalar"] = np.float64(2.5)  # np.generic, stored 0-d
    return out


def assert_bitwise_equal(expected, got):
    """Same names in the same order; same shape, same value type (native order), same bytes."""
    assert list(got) == list(expected)
    for name, a in expected.items():
        a = np.asarray(a)
        b = got[name]
        native = a.dtype.newbyteorder("=")
        assert b.dtype == native and b.dtype.isnative, name
        assert b.shape == a.shape, name
        assert b.tobytes() == a.astype(native).tobytes(order="C"), name


def crafted_file(header, data=b"", pad=True):
    """A safetensors file built by hand (``header`` a dict, or raw bytes)."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


# ================================================================ round trip
def test_round_trip_many_dtypes_and_shapes_is_bitwise(tmp_path):
    tensors = many_tensors()
    path = tmp_path / "t.safetensors"
    save_file(path, tensors, {"note": "naïve ☃", "empty": ""})
    got, metadata = load_file(path)
    assert_bitwise_equal(tensors, got)
    assert metadata == {"note": "naïve ☃", "empty": ""}
    for b in got.values():  # fresh arrays, not views of a buffer or a map
        assert b.flags.owndata and b.flags.writeable and b.flags.c_contiguous


def test_empty_file_round_trip(tmp_path):
    save_file(tmp_path / "e", {})
    assert load_file(tmp_path / "e") == ({}, {})


def test_header_layout_follows_the_safetensors_spec(tmp_path):
    tensors = {"b": np.arange(3, dtype=np.uint8), "a": np.linspace(0, 1, 6).reshape(2, 3),
               "c": np.array(7, np.int32), "d": np.ones((2, 2), ">f4")}
    path = tmp_path / "t.safetensors"
    save_file(path, tensors, {"k": "v"})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and 8 + n <= len(raw)
    text = raw[8 : 8 + n].decode("utf-8")
    body = text.rstrip(" ")
    assert body.endswith("}") and len(text) - len(body) < 8  # padded with spaces to a multiple of 8
    header = json.loads(text)
    metadata = header.pop("__metadata__")
    assert metadata["k"] == "v" and metadata["pyrnn.format"] == "1"
    assert list(header) == list(tensors)  # header keeps the caller's order
    data = raw[8 + n :]
    spans = sorted(tuple(e["data_offsets"]) for e in header.values())
    assert spans[0][0] == 0 and spans[-1][1] == len(data)
    assert all(prev[1] == nxt[0] for prev, nxt in zip(spans, spans[1:]))  # contiguous, no overlap
    for name, a in tensors.items():
        entry = header[name]
        assert entry["dtype"] == SPEC_DTYPES[a.dtype.name]
        assert entry["shape"] == list(a.shape)
        begin, end = entry["data_offsets"]
        assert begin % a.dtype.itemsize == 0  # aligned for zero-copy readers
        assert data[begin:end] == a.astype(a.dtype.newbyteorder("<")).tobytes(order="C")
    # The documented checksum: SHA-256 of the whole file with its 64 hex digits zeroed.
    checksum = metadata["pyrnn.sha256"]
    slot = raw.index(checksum.encode())
    assert (slot, slot + 64) == (41, 105)
    assert hashlib.sha256(raw[:slot] + b"0" * 64 + raw[slot + 64 :]).hexdigest() == checksum


# ============================================================= refusals
@pytest.fixture
def small_file(tmp_path):
    path = tmp_path / "small.safetensors"
    save_file(path, {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "step": np.array([3, -1], np.int64),
                     "mask": np.array([True, False, True])}, {"note": "v"})
    return path


@pytest.mark.parametrize("cut", ["0", "1", "7", "8", "9", "mid-header", "header-1", "header", "header+1", "mid-data", "size-1"])
@pytest.mark.parametrize("require_checksum", [True, False])
def test_truncated_file_is_refused(small_file, cut, require_checksum):
    raw = small_file.read_bytes()
    n = 8 + struct.unpack("<Q", raw[:8])[0]
    length = {"mid-header": n // 2, "header-1": n - 1, "header": n, "header+1": n + 1,
              "mid-data": (n + len(raw)) // 2, "size-1": len(raw) - 1}.get(cut) or int(cut)
    small_file.write_bytes(raw[:length])
    with pytest.raises(CheckpointError, match="truncated") as info:
        load_file(small_file, require_checksum=require_checksum)
    assert str(small_file) in str(info.value)


def test_every_single_changed_byte_is_refused(small_file):
    raw = small_file.read_bytes()
    assert load_file(small_file)[0]  # the intact file loads
    for i in range(len(raw)):
        for mask in (0x01, 0xFF):
            bad = bytearray(raw)
            bad[i] ^= mask
            small_file.write_bytes(bytes(bad))
            with pytest.raises(CheckpointError):
                load_file(small_file)
                pytest.fail(f"byte {i} ^ {mask:#x} loaded silently")


def test_checksum_covers_names_and_metadata_not_only_data(small_file):
    raw = small_file.read_bytes()
    for old, new in ((b'"note":"v"', b'"note":"w"'), (b'"step"', b'"stoP"')):  # valid JSON, same data
        assert raw.count(old) == 1
        small_file.write_bytes(raw.replace(old, new))
        with pytest.raises(CheckpointError, match="corrupted: checksum mismatch"):
            load_file(small_file)


def test_file_from_another_writer_needs_require_checksum_false(tmp_path):
    w = np.arange(6, dtype="<f4").reshape(3, 2)
    ids = np.array([5, -7], "<i8")
    header = {"ids": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]},
              "w": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 24]}, "__metadata__": {"format": "np"}}
    path = tmp_path / "foreign.safetensors"
    path.write_bytes(crafted_file(header, w.tobytes() + ids.tobytes(), pad=False))
    with pytest.raises(CheckpointError, match="require_checksum=False"):
        load_file(path)
    got, metadata = load_file(path, require_checksum=False)
    assert_bitwise_equal({"ids": ids, "w": w}, got)
    assert metadata == {"format": "np"}


F32x1 = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
MALFORMED = {
    "not utf-8": (b'{"a\xff":1}', b"", "not valid UTF-8"),
    "not json": (b'{"a":', b"", "not valid JSON"),
    "deeply nested": (b"[" * 100_000, b"", "not valid JSON"),
    "json array": (b"[1, 2]", b"", "not a JSON object"),
    "duplicate key": (b'{"a":' + json.dumps(F32x1).encode() + b',"a":' + json.dumps(F32x1).encode() + b"}", b"\0" * 4, "duplicate keys"),
    "unknown dtype": ({"a": {**F32x1, "dtype": "BF16"}}, b"\0" * 4, "unsupported dtype 'BF16'"),
    "shape mismatch": ({"a": {**F32x1, "shape": [2]}}, b"\0" * 4, "needs 8 bytes"),
    "negative dim": ({"a": {**F32x1, "shape": [-1]}}, b"\0" * 4, "list of integers in"),
    "float dim": ({"a": {**F32x1, "shape": [1.0]}}, b"\0" * 4, "list of integers in"),
    "bool dim": ({"a": {**F32x1, "shape": [True]}}, b"\0" * 4, "list of integers in"),
    "str dim": ({"a": {**F32x1, "shape": ["1"]}}, b"\0" * 4, "list of integers in"),
    "shape not a list": ({"a": {**F32x1, "shape": {"0": 1}}}, b"\0" * 4, "list of integers in"),
    "dim over int64": ({"a": {**F32x1, "shape": [0, 2**63], "data_offsets": [0, 0]}}, b"", r"list of integers in \[0, 2\*\*63 - 1\]"),
    "product overflows int64": ({"a": {**F32x1, "shape": [2**31, 2**31, 2**2], "data_offsets": [0, 0]}}, b"", "overflows"),
    "overflow behind a zero dim": ({"a": {**F32x1, "shape": [0, 2**40, 2**40], "data_offsets": [0, 0]}}, b"", "overflows"),
    "65 dims": ({"a": {**F32x1, "shape": [1] * 65}}, b"\0" * 4, "65 dimensions, more than NumPy's 64"),
    # dtype, shape and offsets of the wrong JSON type: once a TypeError (unhashable type: 'list')
    "dtype list": ({"a": {**F32x1, "dtype": ["F32"]}}, b"\0" * 4, r"unsupported dtype \['F32'\]"),
    "dtype object": ({"a": {**F32x1, "dtype": {"F32": 1}}}, b"\0" * 4, "unsupported dtype"),
    "dtype null": ({"a": {**F32x1, "dtype": None}}, b"\0" * 4, "unsupported dtype None"),
    "dtype lower case": ({"a": {**F32x1, "dtype": "f32"}}, b"\0" * 4, "unsupported dtype 'f32'"),
    "offsets not a list": ({"a": {**F32x1, "data_offsets": {"0": 4}}}, b"\0" * 4, r"is not \[begin, end\]"),
    "offset str": ({"a": {**F32x1, "data_offsets": ["0", 4]}}, b"\0" * 4, r"is not \[begin, end\]"),
    "offset over int64": ({"a": {**F32x1, "data_offsets": [2**63, 2**63 + 4]}}, b"\0" * 4, r"is not \[begin, end\]"),
    "lone surrogate name": (b'{"\\ud800":' + json.dumps(F32x1).encode() + b"}", b"\0" * 4, "lone surrogate"),
    "lone surrogate metadata": (b'{"__metadata__":{"k":"\\udfff"}}', b"", "lone surrogate"),
    "lone surrogate checksum": (b'{"__metadata__":{"pyrnn.sha256":"\\ud800' + b"0" * 58 + b'"}}', b"", "lone surrogate"),
    "metadata null": ({"__metadata__": None}, b"", "'__metadata__' is not an object of str -> str"),
    "metadata list": ({"__metadata__": [["k", "v"]]}, b"", "'__metadata__' is not an object of str -> str"),
    "metadata value list": ({"__metadata__": {"k": ["v"]}}, b"", "'__metadata__' is not an object of str -> str"),
    "one offset": ({"a": {**F32x1, "data_offsets": [0]}}, b"\0" * 4, r"is not \[begin, end\]"),
    "reversed offsets": ({"a": {**F32x1, "data_offsets": [4, 0]}}, b"\0" * 4, r"is not \[begin, end\]"),
    "entry not object": ({"a": 3}, b"", "expected an object with keys"),
    "entry extra key": ({"a": {**F32x1, "x": 1}}, b"\0" * 4, "expected an object with keys"),
    "metadata not str": ({"__metadata__": {"k": 1}}, b"", "'__metadata__' is not an object of str -> str"),
    "overlap": ({"a": {**F32x1, "shape": [2], "data_offsets": [0, 8]}, "b": {**F32x1, "shape": [2], "data_offsets": [4, 12]}},
                b"\0" * 12, "overlap the previous tensor"),
    "gap": ({"a": F32x1, "b": {**F32x1, "data_offsets": [8, 12]}}, b"\0" * 12, r"leave bytes \[4, 8\)"),
    "beyond the data": ({"a": {**F32x1, "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, "truncated"),
    "trailing bytes": ({"a": F32x1}, b"\0" * 8, "4 trailing bytes"),
    "bool not 0/1": ({"a": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x02", "BOOL data"),
    "newer format": ({"__metadata__": {"pyrnn.format": "2"}}, b"", "format '2'"),
    "malformed checksum": ({"__metadata__": {"pyrnn.sha256": "abc"}}, b"", "malformed 'pyrnn.sha256'"),
    "checksum out of place": ({"__metadata__": {"k": "v", "pyrnn.sha256": "0" * 64}}, b"", "malformed 'pyrnn.sha256'"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_is_refused_with_its_problem(tmp_path, case):
    header, data, message = MALFORMED[case]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(crafted_file(header, data))
    with pytest.raises(CheckpointError, match=message) as info:
        load_file(path, require_checksum=False)
    assert str(info.value).startswith(f"{path}: ")


# ============================================================ crash safety
class BrokenFile:
    """A real file whose second write (the first tensor) stores half its bytes, then raises."""

    def __init__(self, f, exc):
        self._f, self._exc, self._writes = f, exc, 0

    def write(self, chunk):
        self._writes += 1
        if self._writes == 2:
            b = bytes(chunk)
            self._f.write(b[: len(b) // 2])
            raise self._exc
        return self._f.write(chunk)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def _raise(exc):
    def fn(*args, **kwargs):
        raise exc

    return fn


def _broken_open(exc):
    def patch(monkeypatch):  # the module's open() (not builtins.open) hands out a BrokenFile
        monkeypatch.setattr(ckpt, "open", lambda p, mode: BrokenFile(builtins.open(p, mode), exc), raising=False)

    return patch


FAILURES = {
    "write: disk full": (OSError, _broken_open(OSError(errno.ENOSPC, "No space left"))),
    "write: Ctrl-C": (KeyboardInterrupt, _broken_open(KeyboardInterrupt())),
    "fsync": (OSError, lambda mp: mp.setattr(os, "fsync", _raise(OSError(errno.EIO, "I/O error")))),
    "rename": (PermissionError, lambda mp: mp.setattr(os, "replace", _raise(PermissionError(errno.EACCES, "denied")))),
}


@pytest.mark.parametrize("where", list(FAILURES))
def test_failed_save_keeps_previous_file_and_removes_temporary(tmp_path, monkeypatch, where):
    path = tmp_path / "model.safetensors"
    old = {"w": np.arange(4.0)}
    save_file(path, old)
    exc_type, patch = FAILURES[where]
    patch(monkeypatch)
    with pytest.raises(exc_type):
        save_file(path, {"w": np.full(10_000, 9.0), "v": np.ones(3, np.int8)})
    monkeypatch.undo()
    assert_bitwise_equal(old, load_file(path)[0])
    assert os.listdir(tmp_path) == [path.name]


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", _raise(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError):
        save_file(tmp_path / "new", {"w": np.ones(3)})
    assert os.listdir(tmp_path) == []


def test_save_onto_a_directory_fails_cleanly(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        save_file(tmp_path / "d", {"w": np.ones(3)})
    assert os.listdir(tmp_path) == ["d"] and os.listdir(tmp_path / "d") == []


def test_successful_overwrite_leaves_only_the_new_file(tmp_path):
    path = tmp_path / "m"
    save_file(str(path), {"w": np.zeros(3)})
    new = {"w": np.arange(5, dtype=np.int16), "x": np.ones((2, 2), np.float16)}
    save_file(path, new)
    assert_bitwise_equal(new, load_file(path)[0])
    assert os.listdir(tmp_path) == ["m"]


CRASHING_CHILD = r"""
import builtins, os, sys
import numpy as np
import pyrnn.checkpoint as ckpt

path, where = sys.argv[1], sys.argv[2]

class Crashing:  # the process dies in the middle of writing the first tensor
    def __init__(self, f):
        self.f, self.n = f, 0
    def write(self, chunk):
        self.n += 1
        if self.n == 2:
            b = bytes(chunk)
            self.f.write(b[: len(b) // 2])
            self.f.flush()
            os._exit(17)
        return self.f.write(chunk)
    def __getattr__(self, name):
        return getattr(self.f, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self.f.close()

if where == "mid-write":
    ckpt.open = lambda p, mode: Crashing(builtins.open(p, mode))
elif where == "before-fsync":
    os.fsync = lambda fd: os._exit(17)
else:
    os.replace = lambda src, dst: os._exit(17)
ckpt.save_file(path, {"w": np.full(50_000, 2.0)})
"""


@pytest.mark.parametrize("where", ["mid-write", "before-fsync", "before-rename"])
def test_process_killed_while_saving_keeps_previous_file(tmp_path, where):
    path = tmp_path / "model.safetensors"
    old = {"w": np.arange(4.0)}
    save_file(path, old)
    src = os.path.dirname(os.path.dirname(os.path.abspath(ckpt.__file__)))
    env = {**os.environ, "PYTHONPATH": src}
    proc = subprocess.run([sys.executable, "-c", CRASHING_CHILD, str(path), where], env=env, capture_output=True, timeout=120)
    assert proc.returncode == 17, proc.stderr.decode()
    assert_bitwise_equal(old, load_file(path)[0])
    # A hard crash cannot clean up: one stray temporary beside the target, never the target itself.
    (stray,) = [name for name in os.listdir(tmp_path) if name != path.name]
    assert re.fullmatch(re.escape(path.name) + r"\.tmp-\d+-[0-9a-f]{8}", stray)
    if where == "mid-write":
        with pytest.raises(CheckpointError, match="truncated"):
            load_file(tmp_path / stray)


# ====================================================== official safetensors
def test_official_reader_loads_our_files(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    import safetensors

    tensors = many_tensors()
    path = tmp_path / "ours.safetensors"
    save_file(path, tensors, {"k": "v"})
    got = st_numpy.load_file(str(path))
    assert sorted(got) == sorted(tensors)
    assert_bitwise_equal(tensors, {name: np.asarray(got[name]) for name in tensors})
    with safetensors.safe_open(str(path), framework="np") as f:
        assert f.metadata()["k"] == "v" and f.metadata()["pyrnn.format"] == "1"


def test_we_load_the_official_writers_files(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    # the official numpy writer dumps a non-contiguous array's raw buffer: give it C order
    tensors = {name: np.ascontiguousarray(a) for name, a in many_tensors().items()}
    path = tmp_path / "theirs.safetensors"
    st_numpy.save_file(tensors, str(path), metadata={"format": "np"})
    with pytest.raises(CheckpointError, match="require_checksum=False"):
        load_file(path)
    got, metadata = load_file(path, require_checksum=False)
    assert metadata == {"format": "np"}
    assert sorted(got) == sorted(tensors)
    assert_bitwise_equal(tensors, {name: got[name] for name in tensors})


# ============================================================== checkpoints
def test_checkpoint_round_trip_with_optimizer_and_extra(tmp_path):
    rng = np.random.default_rng(3)
    weights = {"weight_ih_l0": rng.standard_normal((64, 8)).astype(np.float32),
               "weight_hh_l0": rng.standard_normal((64, 16)).astype(np.float32),
               "bias_ih_l0": rng.standard_normal(64).astype(np.float32)}
    config = {"class": "LSTM", "input_size": 8, "hidden_size": 16, "num_layers": 1, "bidirectional": False,
              "bias": True, "dropout": 0.1, "dtype": "float32", "name": "naïve ☃", "head": [{"units": 3}, None]}
    optimizer = {"class": "Adam", "config": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8}, "step": 12,
                 "buffers": {f"{kind}/{name}": rng.standard_normal(w.shape).astype(np.float32)
                             for kind in ("exp_avg", "exp_avg_sq") for name, w in weights.items()}}
    train_rng = np.random.default_rng(11)
    train_rng.standard_normal(5)
    extra = {"epoch": np.int64(3), "rng": train_rng.bit_generator.state, "done": np.bool_(False),
             "history": {"loss": [np.float32(0.5), float("nan"), -0.0, float("inf")]}, "lr": np.array([0.1, 0.01])}
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, weights=weights, config=config, optimizer=optimizer, extra=extra)

    got = load_checkpoint(path)
    assert sorted(got) == ["config", "extra", "optimizer", "weights"]
    assert_bitwise_equal(weights, got["weights"])
    assert got["config"] == config
    assert {k: v for k, v in got["optimizer"].items() if k != "buffers"} == {k: v for k, v in optimizer.items() if k != "buffers"}
    assert_bitwise_equal(optimizer["buffers"], got["optimizer"]["buffers"])
    e = got["extra"]
    assert e["epoch"] == 3 and type(e["epoch"]) is int and e["done"] is False and e["lr"] == [0.1, 0.01]
    loss = e["history"]["loss"]
    assert loss[0] == 0.5 and math.isnan(loss[1]) and math.copysign(1, loss[2]) == -1 and loss[3] == math.inf
    restored = np.random.default_rng()
    restored.bit_generator.state = e["rng"]
    np.testing.assert_array_equal(restored.standard_normal(8), train_rng.standard_normal(8))
    # One safetensors file: weights and buffers under their prefixes.
    tensors, metadata = load_file(path)
    assert sorted(tensors) == sorted([f"model/{n}" for n in weights] + [f"optimizer/{n}" for n in optimizer["buffers"]])
    assert json.loads(metadata["pyrnn.config"]) == config


def test_checkpoint_without_optimizer_or_extra(tmp_path):
    path = tmp_path / "c"
    save_checkpoint(path, weights={"w": np.ones((2, 2))}, config={"hidden_size": 2, "sizes": (1, 2), "dtype": np.dtype(np.float64)})
    got = load_checkpoint(path)
    assert got["optimizer"] is None and got["extra"] is None
    assert got["config"] == {"hidden_size": 2, "sizes": [1, 2], "dtype": "float64"}  # JSON has lists, not tuples
    save_checkpoint(path, weights={}, config={}, optimizer={"class": "SGD", "config": {"lr": 0.1}, "step": 0, "buffers": {}})
    assert load_checkpoint(path)["optimizer"] == {"class": "SGD", "config": {"lr": 0.1}, "step": 0, "buffers": {}}


OPT = {"pyrnn.optimizer": '{"class":"SGD","config":{"lr":0.1},"step":0,"num_params":0}'}
OTHER_FILES = [
    ({"w": np.ones(2)}, {}, "not a pyrnn checkpoint"),
    ({"w": np.ones(2)}, {"pyrnn.config": "{}"}, "'w' is neither 'model/...' nor 'optimizer/...'"),
    ({"optimizer/m": np.ones(2)}, {"pyrnn.config": "{}"}, "optimizer tensors without 'pyrnn.optimizer'"),
    ({}, {"pyrnn.config": "{"}, "metadata 'pyrnn.config' is not valid JSON"),
    ({}, {"pyrnn.config": '{"a":1,"a":2}'}, r"metadata 'pyrnn.config' is not valid JSON \(duplicate keys \['a'\]\)"),
    ({}, {"pyrnn.config": "[" * 100_000}, "metadata 'pyrnn.config' is not valid JSON"),
    # Checksum-valid files whose metadata has the wrong JSON types: once returned as they were (and
    # failing later as TypeError / AttributeError / KeyError), or a TypeError here.
    ({}, {"pyrnn.config": "[1]"}, "metadata 'pyrnn.config' is not a JSON object \\(got list\\)"),
    ({}, {"pyrnn.config": "null"}, "'pyrnn.config' is not a JSON object \\(got NoneType\\)"),
    ({}, {"pyrnn.config": '"model"'}, "'pyrnn.config' is not a JSON object \\(got str\\)"),
    ({}, {"pyrnn.config": "{}", "pyrnn.extra": "[]"}, "'pyrnn.extra' is not a JSON object \\(got list\\)"),
    ({}, {"pyrnn.config": "{}", "pyrnn.extra": "1e999"}, "'pyrnn.extra' is not a JSON object \\(got float\\)"),
    ({}, {"pyrnn.config": "{}", "pyrnn.optimizer": "[]"}, "'pyrnn.optimizer': expected a JSON object, got list"),
    ({}, {"pyrnn.config": "{}", "pyrnn.optimizer": '{"class":["SGD"]}'}, "'class' is not a str"),
    ({}, {"pyrnn.config": "{}", "pyrnn.optimizer": '{"class":"SGD","config":[0.1]}'}, "'config' is not an object"),
    ({}, {"pyrnn.config": "{}", "pyrnn.optimizer": '{"step":-1}'}, "'step' is not a non-negative integer"),
    ({}, {"pyrnn.config": "{}", "pyrnn.optimizer": '{"step":1.5}'}, "'step' is not a non-negative integer"),
    ({}, {"pyrnn.config": "{}", "pyrnn.optimizer": '{"step":true}'}, "'step' is not a non-negative integer"),
    ({}, {"pyrnn.config": "{}", "pyrnn.optimizer": '{"num_params":"2"}'}, "'num_params' is not a non-negative integer"),
    ({}, {"pyrnn.config": "{}", "pyrnn.optimizer": '{"buffers":{}}'}, "'buffers' is stored as 'optimizer/...' tensors"),
    ({"model/w": np.ones(2, bool)}, {"pyrnn.config": "{}"}, "'model/w': dtype bool is not a float type"),
    ({"optimizer/w": np.ones(2, np.int32)}, {"pyrnn.config": "{}"}, "'optimizer/w': dtype int32 is not a float type"),
    ({"model/w": np.ones(2, bool)}, {"pyrnn.config": "{}"}, "'model/w': dtype bool is not a float type"),
    ({"optimizer/m": np.ones(2, np.uint8)}, {"pyrnn.config": "{}", **OPT}, "'optimizer/m': dtype uint8 is not a float type"),
    ({"model/": np.ones(2)}, {"pyrnn.config": "{}"}, "'model/': an empty name after 'model/'"),
    ({"optimizer/": np.ones(2)}, {"pyrnn.config": "{}", **OPT}, "an empty name after 'optimizer/'"),
]


@pytest.mark.parametrize("tensors, metadata, message", OTHER_FILES)
def test_load_checkpoint_refuses_other_files(tmp_path, tensors, metadata, message):
    path = tmp_path / "x"
    save_file(path, tensors, metadata)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint_header(path)


def signed_file(metadata, table=None, data=b"", edit=None):
    """A crafted file that carries a valid pyrnn checksum, computed as the writer does: SHA-256 of the
    whole file with the 64 hex digits at bytes [41, 105) zeroed. (Anyone can do this: not a MAC.)
    ``edit`` (bytes -> bytes) changes the header's JSON text before it is padded and signed."""
    meta = {"pyrnn.sha256": "0" * 64, "pyrnn.format": "1", **metadata}
    raw = json.dumps({"__metadata__": meta, **(table or {})}, separators=(",", ":")).encode()
    raw = edit(raw) if edit else raw
    raw += b" " * (-len(raw) % 8)
    blank = struct.pack("<Q", len(raw)) + raw + data
    return blank[:41] + hashlib.sha256(blank).hexdigest().encode() + blank[105:]


def test_json_items_hidden_by_escapes_in_the_metadata_are_counted_too(tmp_path):
    # The JSON escape \u005b in the header: no '[' in the header's bytes, but one in the decoded config.
    n = ckpt.MAX_HEADER_ITEMS
    path = tmp_path / "escaped"
    path.write_bytes(signed_file({"pyrnn.config": "[" * (n + 1)}, edit=lambda raw: raw.replace(b"[" * (n + 1), b"\\u005b" * (n + 1))))
    assert load_file(path)[1]["pyrnn.config"] == "[" * (n + 1)  # the header itself is fine
    with pytest.raises(CheckpointError, match=f"metadata JSON holds {n + 1} items, over the limit of {n}"):
        load_checkpoint(path)


# ================================================================ bad inputs
class Loop(dict):
    pass


LOOP = Loop()
LOOP["self"] = LOOP
W = np.ones(2)

BAD_SAVE_FILE = [
    ([("a", W)], None, TypeError, "tensors: expected a dict of name -> NumPy array, got list"),
    ({1: W}, None, TypeError, "expected str names, got int 1"),
    ({"": W}, None, ValueError, "expected a non-empty name"),
    ({"__metadata__": W}, None, ValueError, "other than '__metadata__'"),
    ({"\ud800": W}, None, ValueError, "encodable as UTF-8"),
    ({"a": [1.0, 2.0]}, None, TypeError, r"tensors\['a'\]: expected a NumPy array, got list"),
    ({"a": np.array([1 + 2j])}, None, TypeError, "got dtype complex128"),
    ({"a": np.array(["x"])}, None, TypeError, "got dtype <U1"),
    ({"a": np.array([None])}, None, TypeError, "got dtype object"),
    ({"a": W}, "k=v", TypeError, "metadata: expected a dict of str -> str, got str"),
    ({"a": W}, {"k": 1}, TypeError, "metadata value 1: expected str, got int"),
    ({"a": W}, {"pyrnn.sha256": "0"}, ValueError, "reserved"),
]


@pytest.mark.parametrize("tensors, metadata, exc, message", BAD_SAVE_FILE)
def test_save_file_bad_inputs(tmp_path, tensors, metadata, exc, message):
    with pytest.raises(exc, match=message):
        save_file(tmp_path / "x", tensors, metadata)
    assert os.listdir(tmp_path) == []


BAD_SAVE_CHECKPOINT = [
    (dict(weights={"w": [1.0]}), TypeError, r"weights\['w'\]: expected a NumPy array, got list"),
    (dict(config=[1]), TypeError, "config: expected a dict, got list"),
    (dict(config={"a": {1, 2}}), TypeError, r"config\['a'\]: expected a JSON-serialisable value .* got set"),
    (dict(config={"a": {"b": object()}}), TypeError, r"config\['a'\]\['b'\]: .* got object"),
    (dict(config={1: "a"}), TypeError, "config: expected str keys .* got int key 1"),
    (dict(config={"a": 1j}), TypeError, r"config\['a'\]: .* got complex"),
    (dict(config=LOOP), ValueError, "circular reference"),
    (dict(optimizer={"class": "SGD", "step": 0}), ValueError, "optimizer: expected a state dict with a 'buffers' entry"),
    (dict(optimizer={"buffers": {"m": "x"}}), TypeError, r"optimizer\['buffers'\]\['m'\]: expected a NumPy array, got str"),
    (dict(optimizer={"buffers": {}, "step": {2}}), TypeError, r"optimizer\['step'\]: .* got set"),
    (dict(extra=5), TypeError, "extra: expected a dict, got int"),
    # what load_checkpoint would refuse is not written
    (dict(weights={"w": np.ones(2, bool)}), TypeError, r"weights\['w'\]: expected a float or integer array, got dtype bool"),
    (dict(optimizer={"buffers": {"m": np.ones(2, bool)}}), TypeError, r"optimizer\['buffers'\]\['m'\]: expected a float"),
    (dict(optimizer={"buffers": {}, "class": 3}), TypeError, "optimizer: 'class' is not a str"),
    (dict(optimizer={"buffers": {}, "step": -2}), TypeError, "optimizer: 'step' is not a non-negative integer"),
    (dict(extra={"x": np.array([object()])}), TypeError, r"extra\['x'\]: .* got ndarray"),
]


@pytest.mark.parametrize("kwargs, exc, message", BAD_SAVE_CHECKPOINT)
def test_save_checkpoint_bad_inputs(tmp_path, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        save_checkpoint(tmp_path / "x", **{"weights": {"w": W}, "config": {}, **kwargs})
    assert os.listdir(tmp_path) == []


# ================================================================ read_header
def test_read_header_gives_what_load_file_would_without_the_data(tmp_path):
    tensors = many_tensors()
    path = tmp_path / "t.safetensors"
    save_file(path, tensors, {"k": "v"})
    loaded, metadata = load_file(path)
    for verify in (True, False):
        header, meta = read_header(path, verify_checksum=verify)
        assert meta == metadata == {"k": "v"}
        assert list(header) == list(loaded)
        assert header == {name: (a.dtype, a.shape) for name, a in loaded.items()}
        assert all(dtype.isnative for dtype, _ in header.values())


def test_read_header_checks_the_structure_and_the_checksum(tmp_path, small_file):
    raw = small_file.read_bytes()
    n = 8 + struct.unpack("<Q", raw[:8])[0]
    flipped = bytearray(raw)
    flipped[-1] ^= 1  # in the data
    small_file.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        read_header(small_file)
    assert "w" in read_header(small_file, verify_checksum=False)[0]  # the header alone is intact
    for cut in (n - 1, n + 1, len(raw) - 1):  # the layout is checked against the file's size: no data read
        small_file.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match="truncated"):
            read_header(small_file, verify_checksum=False)
    small_file.write_bytes(raw + b"\0")
    with pytest.raises(CheckpointError, match="1 trailing bytes"):
        read_header(small_file, verify_checksum=False)
    foreign = tmp_path / "foreign"
    foreign.write_bytes(crafted_file({"a": F32x1}, b"\0" * 4))
    with pytest.raises(CheckpointError, match="require_checksum=False"):
        read_header(foreign)
    assert read_header(foreign, require_checksum=False) == ({"a": (np.dtype(np.float32), (1,))}, {})


@pytest.mark.parametrize("case", list(MALFORMED))
def test_read_header_refuses_what_load_file_refuses(tmp_path, case):
    header, data, message = MALFORMED[case]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(crafted_file(header, data))
    if case == "bool not 0/1":  # the one check on the data's values
        assert read_header(path, require_checksum=False)[0] == {"a": (np.dtype(bool), (2,))}
        return
    with pytest.raises(CheckpointError, match=message):
        read_header(path, require_checksum=False)


def test_read_header_does_not_read_a_gigabyte_of_data(tmp_path):
    header = json.dumps({"big": {"dtype": "F32", "shape": [2**28], "data_offsets": [0, 2**30]}}).encode()
    header += b" " * (-len(header) % 8)
    path = sparse_file(tmp_path / "big", struct.pack("<Q", len(header)) + header, 8 + len(header) + 2**30)
    assert read_header(path, require_checksum=False) == ({"big": (np.dtype(np.float32), (2**28,))}, {})
    before, after, outcome = peak_rss(path, "read_header")
    assert outcome == "loaded" and after - before < 10, (before, after)


def test_read_checkpoint_header_matches_load_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    weights = {"w": rng.standard_normal((4, 3)).astype(np.float32), "b": np.zeros(4, np.float64)}
    optimizer = {"class": "Adam", "config": {"lr": 0.01}, "step": 3, "num_params": 2,
                 "buffers": {"m.0": np.ones((4, 3), np.float32), "m.1": np.ones(4)}}
    path = tmp_path / "c"
    save_checkpoint(path, weights=weights, config={"hidden_size": 4}, optimizer=optimizer, extra={"epochs_done": 1})
    full = load_checkpoint(path)
    for verify in (True, False):
        head = read_checkpoint_header(path, verify_checksum=verify)
        assert head["config"] == full["config"] and head["extra"] == full["extra"]
        assert head["weights"] == {name: (a.dtype, a.shape) for name, a in full["weights"].items()}
        assert {k: v for k, v in head["optimizer"].items() if k != "buffers"} == {
            k: v for k, v in full["optimizer"].items() if k != "buffers"}
        assert head["optimizer"]["buffers"] == {name: (a.dtype, a.shape) for name, a in full["optimizer"]["buffers"].items()}


def test_messages_about_a_crafted_header_stay_short(tmp_path):
    path = tmp_path / "long"
    path.write_bytes(crafted_file({"x" * 100_000: {**F32x1, "dtype": ["F32"] * 100_000}}, b"\0" * 4))
    with pytest.raises(CheckpointError, match="unsupported dtype") as info:
        load_file(path, require_checksum=False)
    assert len(str(info.value)) < 400 + len(str(path))


def test_missing_file_is_an_oserror_not_a_checkpoint_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_file(tmp_path / "nope")


# ================================================================ bounded memory
PEAK_CHILD = r"""
import sys
import pyrnn
import pyrnn.checkpoint as ckpt
from pyrnn.checkpoint import CheckpointError

def vm_hwm_mb():  # this process's peak RSS; unlike ru_maxrss, not inherited from the parent across exec
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024

loader = {"load_file": lambda p: ckpt.load_file(p, require_checksum=False), "load_checkpoint": lambda p: ckpt.load_checkpoint(p),
          "read_header": lambda p: ckpt.read_header(p, require_checksum=False), "pyrnn.load": pyrnn.load}[sys.argv[2]]
before = vm_hwm_mb()
try:
    loader(sys.argv[1])
    outcome = "loaded"
except CheckpointError:
    outcome = "CheckpointError"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"[:300]
print(f"{before:.1f} {vm_hwm_mb():.1f} {outcome}")
"""


def peak_rss(path, loader="load_file"):
    """(peak RSS in MB of a fresh child after its imports, peak RSS after loading ``path``, outcome)."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("peak RSS is read from /proc/self/status (Linux)")
    src = os.path.dirname(os.path.dirname(os.path.abspath(ckpt.__file__)))
    env = {**os.environ, "PYTHONPATH": src}
    proc = subprocess.run([sys.executable, "-c", PEAK_CHILD, str(path), loader], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    before, after, outcome = proc.stdout.split(" ", 2)
    return float(before), float(after), outcome.strip()


def sparse_file(path, prefix, size):
    """A file of ``size`` bytes that starts with ``prefix`` and is a hole after it (no disk used)."""
    with open(path, "wb") as f:
        f.write(prefix)
        f.truncate(size)
    return path


def test_header_over_the_cap_is_refused_before_it_is_read(tmp_path):
    # A sparse file claiming a 1 GiB header: once read into 2.1 GB of RSS, now refused from its length.
    path = sparse_file(tmp_path / "huge-header", struct.pack("<Q", 2**30), 8 + 2**30)
    with pytest.raises(CheckpointError, match=r"header length 1073741824 is over the limit of 8388608 bytes"):
        load_file(path)
    before, after, outcome = peak_rss(path)
    assert outcome == "CheckpointError" and after - before < 10, (before, after)


def test_header_at_the_cap_loads_and_one_byte_over_is_refused(tmp_path):
    assert ckpt.MAX_HEADER_BYTES == 8 * 2**20  # 8 MiB, below safetensors' 100 MB
    base = len(crafted_file({"__metadata__": {"k": ""}}, pad=False)) - 8
    for extra, ok in ((0, True), (1, False)):
        raw = crafted_file({"__metadata__": {"k": "x" * (ckpt.MAX_HEADER_BYTES - base + extra)}}, pad=False)
        path = tmp_path / f"h{extra}"
        path.write_bytes(raw)
        if ok:
            assert len(load_file(path, require_checksum=False)[1]["k"]) == ckpt.MAX_HEADER_BYTES - base
        else:
            with pytest.raises(CheckpointError, match="over the limit"):
                load_file(path, require_checksum=False)


def test_header_with_too_many_json_items_is_refused_before_parsing(tmp_path):
    n = ckpt.MAX_HEADER_ITEMS
    path = tmp_path / "items"
    path.write_bytes(crafted_file(b'{"__metadata__":{"k":"' + b"," * n + b'"}}'))
    with pytest.raises(CheckpointError, match=rf"holds {n + 4} JSON items .* over the limit of {n}"):
        load_file(path, require_checksum=False)


def test_save_file_refuses_a_header_that_load_file_would_refuse(tmp_path):
    with pytest.raises(ValueError, match="over the limits that load_file reads"):
        save_file(tmp_path / "x", {}, {"k": "x" * ckpt.MAX_HEADER_BYTES})
    with pytest.raises(ValueError, match="over the limits that load_file reads"):
        save_file(tmp_path / "x", {}, {"k": "[" * ckpt.MAX_HEADER_ITEMS})
    assert os.listdir(tmp_path) == []


def test_bfloat16_layers_save_and_load_as_float32_weights(tmp_path):
    """dtype="bfloat16" is in the config, the weights are float32 (master weights): a checkpoint round trip
    gives the same bf16 layers and the same predictions."""
    import pyrnn
    from pyrnn.layers import Dense, LastStep

    model = pyrnn.Sequential([pyrnn.LSTM(3, 8, dtype="bfloat16", seed=0), LastStep(), Dense(8, 2, dtype="bfloat16", seed=1)])
    x = np.random.default_rng(0).standard_normal((4, 6, 3)).astype(np.float32)
    path = tmp_path / "bf16.safetensors"
    model.save(str(path))
    again = pyrnn.load(str(path))
    assert [getattr(layer, "bfloat16", None) for layer in again.layers] == [True, False, True]
    assert all(v.dtype == np.float32 for v in again.state_dict().values())
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
