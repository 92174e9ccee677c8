"""Fuzz of the checkpoint reader: every damaged or crafted file is a CheckpointError, never another
exception, never a crash, never a big allocation.

The subject is a real checkpoint (a GRU model compiled with Adam and fitted one epoch, so that the
optimizer's state is in it). Cases:

- truncations (every length for the first 200 bytes, then a stride) and seeded single-byte changes:
  the checksum makes every one of them a CheckpointError;
- crafted headers (huge or out-of-file header lengths, not JSON, not an object, nested garbage,
  dtype/shape/data_offsets of the wrong type, overlapping / holey / reversed offsets, shapes whose
  product overflows int64, metadata values of the wrong type, duplicate keys), unsigned and signed;
- "signed" files: crafted, then given a valid checksum the way the writer computes it (anyone can:
  it is not a MAC), so that the parser has to refuse them on their structure or metadata types;
  and seeded random edits of the header (a byte changed, a JSON value replaced) then re-signed,
  which must be refused or load with every type right.

Everything goes through ``pyrnn.checkpoint.load_checkpoint`` and ``pyrnn.load``. Peak memory is
measured in fresh child processes (VmHWM, Linux). ``PYRNN_FUZZ_LONG=1`` runs ~20 times more cases.

``TestLoadRebuild`` holds the cases that get past the checkpoint reader (valid file, well-typed
metadata) but carry model-config values that the rebuild of the model (``pyrnn.serialization``)
must refuse as a CheckpointError, within bounded memory.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import struct
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

import pyrnn
import pyrnn.checkpoint as ckpt
from pyrnn.checkpoint import CheckpointError, load_checkpoint

SEED = 20_240_917
LONG = os.environ.get("PYRNN_FUZZ_LONG") == "1"
SCALE = 20 if LONG else 1
SLOT = (41, 105)  # file bytes holding the checksum's 64 hex digits (see pyrnn.checkpoint)
LIMIT_MB = 768  # address-space limit of the memory children: a failure must not take the machine's memory


# ============================================================ the subject
@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    """The bytes of a real checkpoint: GRU -> LastStep -> Dense, Adam, one epoch fitted."""
    model = pyrnn.Sequential([pyrnn.GRU(3, 8, seed=0), pyrnn.layers.LastStep(), pyrnn.Dense(8, 1, seed=1)])
    model.compile("adam", "mse", lr=0.01)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 5, 3)).astype(np.float32)
    model.fit(x, x.sum(axis=(1, 2))[:, None], epochs=1, batch_size=8, verbose=0, seed=0)
    path = tmp_path_factory.mktemp("subject") / "model.safetensors"
    model.save(path)
    raw = path.read_bytes()
    header, _ = split(raw)
    assert set(header["__metadata__"]) >= {"pyrnn.config", "pyrnn.optimizer", "pyrnn.extra"}
    assert any(name.startswith("optimizer/") for name in header)
    return raw


def split(raw):
    """(header dict in file order, data bytes) of a well-formed file."""
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def resign(blob):
    """``blob`` with a valid checksum in bytes [41, 105), computed as the writer does."""
    blank = blob[: SLOT[0]] + b"0" * 64 + blob[SLOT[1] :]
    return blob[: SLOT[0]] + hashlib.sha256(blank).hexdigest().encode() + blob[SLOT[1] :]


def assemble(header, data, *, sign=True, edit=None, n=None):
    """A file from a header dict (``__metadata__`` first, ``pyrnn.sha256`` first in it, as pyrnn
    writes) and data; ``edit`` changes the JSON bytes, ``n`` overrides the length prefix."""
    raw = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
    raw = edit(raw) if edit else raw
    raw += b" " * (-len(raw) % 8)
    blob = struct.pack("<Q", len(raw) if n is None else n) + raw + data
    return resign(blob) if sign else blob


def with_meta(raw, key, value=None, change=None):
    """The subject with one metadata JSON value replaced (``value``) or changed (``change(obj)``), re-signed."""
    header, data = split(raw)
    header = copy.deepcopy(header)
    if change is not None:
        obj = json.loads(header["__metadata__"][key])
        change(obj)
        value = json.dumps(obj, separators=(",", ":"))
    header["__metadata__"][key] = value
    return assemble(header, data)


# ============================================================ outcomes
def outcome(load, path):
    try:
        result = load(path)
    except CheckpointError:
        return "CheckpointError", None
    except Exception as exc:  # noqa: BLE001 - what the fuzz is looking for
        return f"{type(exc).__name__}: {str(exc)[:150]}", None
    return "loaded", result


def assert_well_typed(ck):
    """What load_checkpoint returns: every type as documented."""
    assert sorted(ck) == ["config", "extra", "optimizer", "weights"]
    assert isinstance(ck["config"], dict)
    assert ck["extra"] is None or isinstance(ck["extra"], dict)
    groups = [ck["weights"]]
    if ck["optimizer"] is not None:
        opt = ck["optimizer"]
        assert isinstance(opt, dict) and isinstance(opt["buffers"], dict)
        assert isinstance(opt.get("class", ""), str) and isinstance(opt.get("config", {}), dict)
        for key in ("step", "num_params"):
            assert type(opt.get(key, 0)) is int and opt.get(key, 0) >= 0
        groups.append(opt["buffers"])
    for group in groups:
        for name, arr in group.items():
            assert isinstance(name, str) and name
            assert isinstance(arr, np.ndarray) and arr.dtype.kind == "f" and arr.dtype.isnative


class Tally:
    """Counts cases and outcomes; keeps the first wrong ones for the failure message."""

    def __init__(self, tmp_path):
        self.dir, self.counts, self.wrong = tmp_path, Counter(), []

    def run(self, name, blob, loaders=(("load_checkpoint", load_checkpoint), ("pyrnn.load", pyrnn.load)), may_load=False):
        """Each loader must raise CheckpointError (or, with ``may_load``, return well-typed results)."""
        self.counts["cases"] += 1
        # a new file each time: truncating and rewriting one file is ~100 times slower on some filesystems
        self.path = self.dir / f"case-{self.counts['cases']}.safetensors"
        self.path.write_bytes(blob)
        try:
            self._run(name, loaders, may_load)
        finally:
            self.path.unlink()

    def _run(self, name, loaders, may_load):
        for label, load in loaders:
            got, result = outcome(load, self.path)
            self.counts[f"{label}: {got.split(':')[0]}"] += 1
            if got == "loaded" and may_load and label == "load_checkpoint":
                try:
                    assert_well_typed(result)
                    continue
                except AssertionError:
                    got = "loaded with wrong types"
            elif got == "CheckpointError" or (got == "loaded" and may_load):
                continue
            self.counts["wrong"] += 1
            if len(self.wrong) < 10:
                self.wrong.append(f"{name} via {label}: {got}")

    def check(self, label):
        summary = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        print(f"\n[{label}] {summary}")
        assert not self.wrong, f"{self.counts['wrong']} wrong outcomes ({summary}):\n" + "\n".join(self.wrong)


# ============================================================ crafted cases
F32x1 = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}


def crafted_cases(raw):
    """(name, file bytes, signed) for every crafted family; each must be a CheckpointError."""
    header, data = split(raw)
    names = [k for k in header if k != "__metadata__"]
    first, second = names[0], names[1]
    n = struct.unpack("<Q", raw[:8])[0]
    cases = []

    def add(name, blob):
        cases.append((name, blob))

    def entry_edit(name, field, value, sign=True, who=first):
        h = copy.deepcopy(header)
        h[who][field] = value
        add(f"{name} ({'signed' if sign else 'unsigned'})", assemble(h, data, sign=sign))

    # header length
    for bad_n in (2**64 - 1, 2**63, 2**40, 2**30, len(raw) - 7, len(raw) - 8, 0, 1, 7):
        add(f"N={bad_n}", struct.pack("<Q", bad_n) + raw[8:])
    add("N one short", struct.pack("<Q", n - 1) + raw[8:])
    add("N one long", struct.pack("<Q", n + 1) + raw[8:])
    add("empty file", b"")
    add("only the length", raw[:8])
    # not JSON, not an object, nested garbage
    for name, text in {"not json": b"not json", "half an object": b'{"a":', "bad utf-8": b'{"\xff\xfe":1}',
                       "utf-8 BOM": b"\xef\xbb\xbf{}", "nul padding": b"{}\0\0\0\0\0\0", "garbage after": b"{}x",
                       "json array": b"[1,2,3]", "json string": b'"{}"', "json number": b"12345678", "json null": b"null",
                       "json true": b"true", "nested arrays": b"[" * 200_000, "nested objects": b'{"a":' * 100_000,
                       "nested in metadata": b'{"__metadata__":' + b'{"a":' * 50_000 + b"}" * 50_001,
                       "huge number": b'{"a":{"dtype":"F32","shape":[' + b"9" * 5000 + b'],"data_offsets":[0,4]}}',
                       "NaN offset": b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[NaN,4]}}',
                       "Infinity dim": b'{"a":{"dtype":"F32","shape":[Infinity],"data_offsets":[0,4]}}'}.items():
        add(name, assemble(None, b"\0" * 4, sign=False, edit=lambda _, t=text: t))
    # entries of the wrong type
    for value in (None, 3, "F64", [], ["F32"], {"F32": 1}, "BF16", "F8_E4M3", "f32", True):
        entry_edit(f"dtype={value!r}", "dtype", value, sign=False)
        entry_edit(f"dtype={value!r}", "dtype", value)
    for value in (None, 3, "24,3", {"0": 24}, [24.0, 3], [24, "3"], [24, True], [-24, -3], [24, 3, None], [[24, 3]],
                  [2**63, 0], [2**32, 2**32, 2**32], [0, 2**62, 2**62], [1] * 65, [2**64 + 72]):
        entry_edit(f"shape={str(value)[:40]}", "shape", value, sign=False)
        entry_edit(f"shape={str(value)[:40]}", "shape", value)
    b0, e0 = header[first]["data_offsets"]
    b1, e1 = header[second]["data_offsets"]
    for value in (None, 0, [b0], [b0, e0, e0], [e0, b0], [b0 - 1, e0 - 1], [b0 + 1, e0 + 1], [str(b0), e0], [b0, float(e0)],
                  [b0, True], [-e0, 0], [b0, e0 + 2**64], [2**63, 2**63 + e0 - b0], {"0": b0, "1": e0}):
        entry_edit(f"data_offsets={str(value)[:40]}", "data_offsets", value, sign=False)
        entry_edit(f"data_offsets={str(value)[:40]}", "data_offsets", value)
    for name, (o0, o1) in {"overlap": ([b0, e0], [b1 - 4, e1 - 4]), "hole": ([b0, e0], [b1 + 4, e1 + 4]),
                           "swapped sizes": ([b1, e1], [b0, e0])}.items():
        for sign in (False, True):
            h = copy.deepcopy(header)
            h[first]["data_offsets"], h[second]["data_offsets"] = o0, o1
            add(f"{name} ({sign})", assemble(h, data, sign=sign))
    for name, blob_data in {"data one short": data[:-1], "data one long": data + b"\0", "no data": b""}.items():
        add(name, assemble(header, blob_data, sign=True))
    for value in (3, [], {"dtype": "F32"}, {**F32x1, "extra": 1}, None):
        h = copy.deepcopy(header)
        h[first] = value
        add(f"entry={str(value)[:30]}", assemble(h, data))
    # duplicate keys: tensor names, metadata keys, nested config keys
    dup_name = json.dumps(first).encode()
    add("duplicate tensor name", assemble(header, data, edit=lambda r: r.replace(json.dumps(second).encode() + b":", dup_name + b":", 1)))
    add("duplicate metadata key", assemble(header, data, edit=lambda r: r.replace(b'"pyrnn.extra":', b'"pyrnn.config":', 1)))
    add("duplicate config key", with_meta(raw, "pyrnn.config", header["__metadata__"]["pyrnn.config"][:-1] + ',"model":{}}'))
    # metadata of the wrong type, in the header and in the JSON it holds (all signed)
    for value in (None, [], {}, 3, ["{}"], {"model": {}}):
        for key in ("pyrnn.config", "pyrnn.optimizer", "pyrnn.extra", "pyrnn.format", "pyrnn.sha256"):
            h = copy.deepcopy(header)
            h["__metadata__"][key] = value
            add(f"metadata[{key}]={value!r}", assemble(h, data))
    for value in (None, [], "x", 3, [["pyrnn.config", "{}"]]):
        h = copy.deepcopy(header)
        h["__metadata__"] = value
        add(f"__metadata__={value!r}", assemble(h, data, sign=False))
    for key in ("pyrnn.config", "pyrnn.optimizer", "pyrnn.extra"):
        for text in ("[]", "null", "3", '"x"', "{", "", "[" * 100_000, '{"a":1,"a":1}', "NaN", "1e999"):
            add(f"{key}={text[:10]!r}", with_meta(raw, key, text))
    for change in ({"class": ["Adam"]}, {"class": None}, {"config": [0.01]}, {"config": "lr=0.01"}, {"step": -1},
                   {"step": 2.0}, {"step": "2"}, {"step": True}, {"num_params": None}, {"buffers": {}}):
        add(f"optimizer {change}", with_meta(raw, "pyrnn.optimizer", change=lambda o, c=change: o.update(c)))
    h = copy.deepcopy(header)
    del h["__metadata__"]["pyrnn.config"]
    add("no config", assemble(h, data))
    h = copy.deepcopy(header)
    del h["__metadata__"]["pyrnn.optimizer"]
    add("buffers without optimizer", assemble(h, data))
    # (an integer model tensor is structurally valid: counters such as BatchNorm's num_batches_tracked;
    # pyrnn.load refuses one where the architecture has a float parameter: see TestLoadRebuild)
    h = copy.deepcopy(header)
    h["model/"] = h.pop(first)
    add("empty weight name", assemble(h, data))
    h = copy.deepcopy(header)
    h["other/" + first] = h.pop(first)
    add("unknown prefix", assemble(h, data))
    add("lone surrogate name", assemble(header, data, edit=lambda r: r.replace(json.dumps(first).encode(), b'"model/\\ud800"', 1)))
    add("checksum not hex", assemble(header, data, sign=False, edit=lambda r: r.replace(r[33:97], b"g" * 64, 1)))
    add("checksum zeroed", assemble(header, data, sign=False, edit=lambda r: r.replace(r[33:97], b"0" * 64, 1)))
    add("checksum upper case", raw[:41] + raw[41:105].upper() + raw[105:] if raw[41:105] != raw[41:105].upper() else raw[:41] + b"G" + raw[42:])
    add("format 2", with_meta(raw, "pyrnn.format", "2"))
    return cases


# ============================================================ the fuzz
class TestFuzz:
    def test_truncations(self, subject, tmp_path):
        tally = Tally(tmp_path)
        stride = 1 if LONG else 3
        cuts = list(range(0, min(200, len(subject)))) + list(range(200, len(subject), stride))
        for cut in cuts:
            tally.run(f"truncated at {cut}", subject[:cut])
        tally.check("truncations")
        assert tally.counts["cases"] == len(cuts) >= 1000 // stride

    def test_single_byte_changes(self, subject, tmp_path):
        rng = np.random.default_rng(SEED)
        tally = Tally(tmp_path)
        for _ in range(3000 * SCALE):
            i = int(rng.integers(len(subject)))
            mask = int(rng.integers(1, 256))
            bad = bytearray(subject)
            bad[i] ^= mask
            tally.run(f"byte {i} ^ {mask:#04x}", bytes(bad))
        tally.check("single-byte changes")

    def test_crafted_headers(self, subject, tmp_path):
        tally = Tally(tmp_path)
        cases = crafted_cases(subject)
        assert len({name for name, _ in cases}) == len(cases)
        for name, blob in cases:
            tally.run(name, blob)
        tally.check("crafted headers")
        assert tally.counts["cases"] >= 200

    def test_signed_header_byte_changes(self, subject, tmp_path):
        """Header bytes changed then re-signed: refused, or loaded with every type right."""
        rng = np.random.default_rng(SEED + 1)
        n = struct.unpack("<Q", subject[:8])[0]
        positions = [i for i in range(8 + n) if not SLOT[0] <= i < SLOT[1]]
        tally = Tally(tmp_path)
        for _ in range(3000 * SCALE):
            bad = bytearray(subject)
            for _ in range(int(rng.integers(1, 4))):
                i = positions[int(rng.integers(len(positions)))]
                bad[i] ^= int(rng.integers(1, 256))
            tally.run("signed byte change", resign(bytes(bad)), loaders=(("load_checkpoint", load_checkpoint),), may_load=True)
        tally.check("signed header byte changes")

    def test_signed_json_value_replacements(self, subject, tmp_path):
        """One JSON value anywhere in the header or in its metadata's JSON replaced, re-signed:
        refused, or loaded with every type right."""
        rng = np.random.default_rng(SEED + 2)
        header, data = split(subject)
        pool = [None, True, False, 0, -1, 1, 3, 2**31, 2**63, 2**64, -(2**63), 1.5, float("nan"), "", "x", "F32", "I64",
                [], [0], [1, 2], [-1], [2**40, 2**40], {}, {"a": 1}, {"class": "GRU"}, "[1]", "{}", "null"]
        tally = Tally(tmp_path)
        for _ in range(3000 * SCALE):
            h = copy.deepcopy(header)
            key = list(h)[int(rng.integers(len(h)))]
            if key == "__metadata__":
                mkey = ["pyrnn.config", "pyrnn.optimizer", "pyrnn.extra", "pyrnn.format"][int(rng.integers(4))]
                if mkey == "pyrnn.format":
                    h["__metadata__"][mkey] = pool[int(rng.integers(len(pool)))]
                else:
                    obj = json.loads(h["__metadata__"][mkey])
                    obj = replace_somewhere(obj, rng, pool)
                    h["__metadata__"][mkey] = json.dumps(obj, separators=(",", ":"))
            else:
                h[key] = replace_somewhere(h[key], rng, pool)
            tally.run(f"replaced under {key}", assemble(h, data), loaders=(("load_checkpoint", load_checkpoint),), may_load=True)
        tally.check("signed JSON value replacements")


def replace_somewhere(obj, rng, pool):
    """``obj`` with one value (the whole, or one nested at a random depth) replaced by a pool value."""
    if not isinstance(obj, (dict, list)) or not obj or rng.random() < 0.25:
        return copy.deepcopy(pool[int(rng.integers(len(pool)))])
    keys = list(obj) if isinstance(obj, dict) else list(range(len(obj)))
    k = keys[int(rng.integers(len(keys)))]
    obj[k] = replace_somewhere(obj[k], rng, pool)
    return obj


# ============================================================ peak memory
PEAK_CHILD = r"""
import resource, sys
limit = int(sys.argv[3]) * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # a failure must not take the machine's memory
import pyrnn
import pyrnn.checkpoint as ckpt

def vm_hwm_mb():  # this process's peak RSS; unlike ru_maxrss, not inherited from the parent across exec
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024

load = {"load_checkpoint": ckpt.load_checkpoint, "pyrnn.load": pyrnn.load}[sys.argv[2]]
before = vm_hwm_mb()
for path in sys.argv[4:]:
    try:
        load(path)
        outcome = "loaded"
    except ckpt.CheckpointError:
        outcome = "CheckpointError"
    except BaseException as exc:
        outcome = f"{type(exc).__name__}: {exc}"[:300].replace("\n", " ")
    print(f"{before:.1f} {vm_hwm_mb():.1f} {outcome}")
"""


def peak_rss(paths, loader):
    """[(peak RSS in MB before, after, outcome)] for ``paths`` loaded one after the other in one fresh child."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("peak RSS is read from /proc/self/status (Linux)")
    src = os.path.dirname(os.path.dirname(os.path.abspath(ckpt.__file__)))
    env = {**os.environ, "PYTHONPATH": src}
    args = [sys.executable, "-c", PEAK_CHILD, "-", loader, str(LIMIT_MB), *map(str, paths)]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"child died ({proc.returncode}): {proc.stderr[-2000:]}"
    rows = [line.split(" ", 2) for line in proc.stdout.splitlines()]
    return [(float(a), float(b), c) for a, b, c in rows]


def memory_cases(raw, directory):
    """Crafted files aimed at the reader's memory: (name, path, what load_checkpoint does with it)."""
    header, data = split(raw)
    big, cap, items = 2**30, ckpt.MAX_HEADER_BYTES, ckpt.MAX_HEADER_ITEMS
    out = []

    def write(name, expected, blob=None, sparse=None):
        path = directory / name.replace(" ", "-")
        with open(path, "wb") as f:
            f.write(blob if blob is not None else sparse[0])
            if sparse:
                f.truncate(sparse[1])
        out.append((name, path, expected))

    def meta(**entries):
        h = copy.deepcopy(header)
        h["__metadata__"].update(entries)
        return h

    write("1 GiB header claimed, sparse file", "CheckpointError", sparse=(struct.pack("<Q", big), 8 + big))
    write("1 GiB header claimed, 8-byte file", "CheckpointError", struct.pack("<Q", big))
    write("2**64-1 header claimed", "CheckpointError", struct.pack("<Q", 2**64 - 1) + raw[8:])
    filler = "\U0001f600" + "x" * (cap - len(json.dumps(header)) - 100)  # held as 4 bytes per character
    write("header at the cap, one astral char", "loaded", assemble(meta(filler=filler), data))
    write("one-key dicts up to the item cap", "loaded",
          assemble(meta(**{"pyrnn.extra": '{"a":[' + '{"a":0},' * (items // 3 - 2000) + "{}]}"}), data))
    write("metadata keys up to the item cap", "loaded", assemble(meta(**{f"k{i}": "" for i in range(items // 2 - 2000)}), data))
    h = copy.deepcopy(header)
    h.update({f"model/z{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(items // 11 - 2000)})
    write("empty tensors up to the item cap", "loaded", assemble(h, data))
    for name, k, expected in (("under", items // 2 - 2000, "loaded"), ("over", items, "CheckpointError")):
        # "{}," written as JSON escapes in the header: no item there, 2 items each in the extra's JSON
        extra = '{"a":[' + "{}," * k + "{}]}"
        write(f"escaped items {name} the item cap", expected,
              assemble(meta(**{"pyrnn.extra": extra}), data, edit=lambda r: r.replace(b"{},", b"\\u007b}\\u002c")))
    h = copy.deepcopy(header)
    h[next(k for k in h if k != "__metadata__")]["shape"] = [2**31, 2**31]
    write("shape of 2**62 items", "CheckpointError", assemble(h, data))
    h = {"__metadata__": header["__metadata__"], "model/big": {"dtype": "F64", "shape": [2**27], "data_offsets": [0, 2**30]}}
    blob = assemble(h, b"")
    write("1 GiB tensor claimed, no data", "CheckpointError", blob)
    write("1 GiB tensor claimed, sparse file 1 byte short", "CheckpointError", sparse=(blob, len(blob) + 2**30 - 1))
    return out


# VmHWM is a high-water mark: each row bounds the cases before it too. 80 MB covers the parse of an
# 8 MiB header at worst (a 4-byte-per-character string, or 2**19 JSON items) and the bytes on disk.
EXTRA_MB = 80


def memory_report(subject, tmp_path, loader):
    cases = memory_cases(subject, tmp_path)
    results = peak_rss([path for _, path, _ in cases], loader)
    assert len(results) == len(cases)
    rows, worst = [], 0.0
    for (name, path, expected), (before, after, got) in zip(cases, results):
        on_disk = os.stat(path).st_blocks * 512 / 2**20  # a sparse hole is no data
        worst = max(worst, after - before - on_disk)
        rows.append((name, expected, got, f"{name}: peak {after:.0f} MB (+{after - before:.0f}), {on_disk:.1f} MB on disk, {got}"))
    text = "\n".join(row[-1] for row in rows)
    print("\n" + text)
    assert worst < EXTRA_MB, text
    return rows, text


def test_peak_memory_of_crafted_files_stays_small(subject, tmp_path):
    rows, text = memory_report(subject, tmp_path, "load_checkpoint")
    assert [got for _, _, got, _ in rows] == [expected for _, expected, _, _ in rows], text


# ============================================================ rebuild (serialization.load)
def config_change(path_keys, value):
    def change(cfg):
        node = cfg
        for k in path_keys[:-1]:
            node = node[k]
        if value is DELETE:
            del node[path_keys[-1]]
        else:
            node[path_keys[-1]] = value

    return change


DELETE = object()
GRU_CFG = ("model", "layers", 0, "config")
REBUILD = {
    # (metadata key, path inside its JSON, new value)
    "hidden_size [3]": ("pyrnn.config", (*GRU_CFG, "hidden_size"), [3]),
    "hidden_size '8'": ("pyrnn.config", (*GRU_CFG, "hidden_size"), "8"),
    "hidden_size -1": ("pyrnn.config", (*GRU_CFG, "hidden_size"), -1),
    "hidden_size 0": ("pyrnn.config", (*GRU_CFG, "hidden_size"), 0),
    "hidden_size 2.5": ("pyrnn.config", (*GRU_CFG, "hidden_size"), 2.5),
    "hidden_size null": ("pyrnn.config", (*GRU_CFG, "hidden_size"), None),
    "hidden_size 9 (weights of 8)": ("pyrnn.config", (*GRU_CFG, "hidden_size"), 9),
    "input_size {}": ("pyrnn.config", (*GRU_CFG, "input_size"), {}),
    "num_layers true": ("pyrnn.config", (*GRU_CFG, "num_layers"), True),
    "dtype 'int8'": ("pyrnn.config", (*GRU_CFG, "dtype"), "int8"),
    "unknown config key": ("pyrnn.config", (*GRU_CFG, "nope"), 1),
    "GRU config a list": ("pyrnn.config", GRU_CFG, [3, 8]),
    "layer class unknown": ("pyrnn.config", ("model", "layers", 0, "class"), "Nope"),
    "layer class a list": ("pyrnn.config", ("model", "layers", 0, "class"), ["GRU"]),
    "layer a string": ("pyrnn.config", ("model", "layers", 0), "GRU"),
    "layers an object": ("pyrnn.config", ("model", "layers"), {"0": {}}),
    "model class unknown": ("pyrnn.config", ("model", "class"), "Nope"),
    "model class a list": ("pyrnn.config", ("model", "class"), ["Sequential"]),
    "model a list": ("pyrnn.config", ("model",), []),
    "no model": ("pyrnn.config", ("model",), DELETE),
    "compile a list": ("pyrnn.config", ("compile",), []),
    "compile without loss": ("pyrnn.config", ("compile", "loss"), DELETE),
    "loss class unknown": ("pyrnn.config", ("compile", "loss", 0, "class"), "NopeLoss"),
    "loss a number": ("pyrnn.config", ("compile", "loss"), 3),
    "metrics [1]": ("pyrnn.config", ("compile", "metrics"), [1]),
    "metric unknown": ("pyrnn.config", ("compile", "metrics"), ["nope"]),
    "clip_norm 'x'": ("pyrnn.config", ("compile", "clip_norm"), "x"),
    "optimizer class unknown": ("pyrnn.optimizer", ("class",), "Nope"),
    "optimizer config lr 'x'": ("pyrnn.optimizer", ("config", "lr"), "x"),
    "optimizer config key unknown": ("pyrnn.optimizer", ("config", "nope"), 1),
    "optimizer num_params 99": ("pyrnn.optimizer", ("num_params",), 99),
    "optimizer without step": ("pyrnn.optimizer", ("step",), DELETE),
    "epochs_done 'x'": ("pyrnn.extra", ("epochs_done",), "x"),
    "epochs_done [1]": ("pyrnn.extra", ("epochs_done",), [1]),
    "rng a list": ("pyrnn.extra", ("rng",), [1]),
    "rng generator unknown": ("pyrnn.extra", ("rng", "bit_generator"), "Nope"),
    "rng state a string": ("pyrnn.extra", ("rng", "state"), "x"),
    "layer_rngs index 99": ("pyrnn.extra", ("layer_rngs", "99"), {"bit_generator": "PCG64"}),
    "layer_rngs index 'x'": ("pyrnn.extra", ("layer_rngs", "x"), {}),
    "layer_rngs a list": ("pyrnn.extra", ("layer_rngs",), [1]),
    "history 3": ("pyrnn.extra", ("history",), 3),
    "history without epoch": ("pyrnn.extra", ("history", "epoch"), DELETE),
}


class TestLoadRebuild:
    """Valid, well-typed checkpoint files whose model config is bad: ``pyrnn.load`` must refuse them
    as a CheckpointError (the rebuild is ``pyrnn.serialization``'s), in bounded memory."""

    @pytest.mark.parametrize("case", list(REBUILD))
    def test_bad_config_value_is_a_checkpoint_error(self, subject, tmp_path, case):
        key, keys, value = REBUILD[case]
        path = tmp_path / "case.safetensors"
        path.write_bytes(with_meta(subject, key, change=config_change(keys, value)))
        assert_well_typed(load_checkpoint(path))  # the file itself is fine
        with pytest.raises(CheckpointError):
            pyrnn.load(path)

    @pytest.mark.parametrize("key, value", [("hidden_size", 20_000), ("num_layers", 200_000)])
    def test_huge_config_is_refused_in_bounded_memory(self, subject, tmp_path, key, value):
        # Weights of the real (hidden 8, 1 layer) model, config claiming a model of ~12 GiB or of
        # 200,000 layers: refuse it from the header's shapes, before building anything.
        path = tmp_path / f"{key}.safetensors"
        path.write_bytes(with_meta(subject, "pyrnn.config", change=config_change((*GRU_CFG, key), value)))
        assert_well_typed(load_checkpoint(path))
        ((before, after, got),) = peak_rss([path], "pyrnn.load")
        assert got == "CheckpointError" and after < 300, f"{key}={value}: peak {after:.0f} MB (from {before:.0f}), {got}"

    def test_peak_memory_of_crafted_files_via_pyrnn_load(self, subject, tmp_path):
        rows, text = memory_report(subject, tmp_path, "pyrnn.load")  # the memory bound holds
        assert all(got in ("loaded", "CheckpointError") for _, _, got, _ in rows), text

    def test_signed_config_byte_changes_are_refused_or_load(self, subject, tmp_path):
        """Bytes of the config's JSON changed then re-signed: pyrnn.load loads a model or raises CheckpointError."""
        rng = np.random.default_rng(SEED + 3)
        n = struct.unpack("<Q", subject[:8])[0]
        start = subject.index(b'"pyrnn.config":"') + len(b'"pyrnn.config":"')
        stop = subject.index(b'","', start)
        assert stop < 8 + n
        tally = Tally(tmp_path)
        for _ in range(300 * SCALE):
            bad = bytearray(subject)
            i = int(rng.integers(start, stop))
            bad[i] = int(rng.choice(list(b'0123456789-.,:[]{}"ae')))
            tally.run(f"config byte {i} = {chr(bad[i])!r}", resign(bytes(bad)), loaders=(("pyrnn.load", pyrnn.load),), may_load=True)
        tally.check("signed config byte changes via pyrnn.load")
