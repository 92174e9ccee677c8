"""Checkpoint files: the safetensors format, written atomically, read with every check; never pickle.

Legend: N = header length in bytes, D = data length in bytes, hex = 64 lowercase hexadecimal digits.

File layout (safetensors, https://github.com/huggingface/safetensors)::

    [8 bytes: N, little-endian u64] [N bytes: UTF-8 JSON header, padded with spaces] [D bytes: data]

    header = {"__metadata__": {str: str, ...},
              name: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}

Offsets count from the start of the data; the tensors' byte ranges tile the data exactly (no gap,
no overlap, nothing after the last one); each tensor is little-endian and C-ordered.

Integrity. pyrnn writes ``"__metadata__"`` first in the header and ``"pyrnn.sha256"`` first inside
it, so the checksum's hex digits sit at a fixed place: file bytes ``[41, 105)``. The checksum is::

    sha256(the whole file with those 64 bytes replaced by ASCII '0')

so it covers the length prefix, every name, dtype, shape, offset and metadata value, the padding
and the data: changing any single byte of the file makes :func:`load_file` refuse it. Files from
other writers carry no checksum; they load with ``require_checksum=False`` after the same
structural checks.

The checksum detects **corruption, not tampering**: it is a plain, unkeyed SHA-256 that anyone can
recompute after editing a file (it is not a MAC and not a signature), so a file that passes it
proves only that it is the file some writer wrote, not who wrote it or that its content is sane.

Untrusted files. Loading any file is safe in two senses, and only these: it never runs code (no
pickle: the header is JSON, the data raw little-endian numbers), and its memory is bounded. The
header length is refused above :data:`MAX_HEADER_BYTES` (8 MiB; safetensors allows 100 MB) before
it is read, and a header holding more than :data:`MAX_HEADER_ITEMS` JSON structural characters
before it is parsed, so parsing costs at most ~70 MB whatever the header says; every shape is
checked against the byte range it claims and the byte ranges must tile the file exactly before
any tensor is allocated, so the tensors take exactly the file's data size. Loading a file therefore
allocates at most its own size plus a constant. But the *content* of a file that loads can be
anything: weights of any value (NaN included), a config describing any architecture (a model
built from it can be arbitrarily large: bound it before building, with :func:`read_checkpoint_header`,
which gives names, dtypes and shapes without reading the data), any training state.

Crash safety. :func:`save_file` writes a temporary file beside the target
(``<name>.tmp-<pid>-<random>``), flushes and fsyncs it, renames it over the target with
:func:`os.replace` (atomic on POSIX and Windows) and fsyncs the directory. A failure before the
rename removes the temporary file and leaves the previous file untouched; a hard crash
(power loss, ``kill -9``) can leave a stray ``.tmp-`` file but never a half-written target.

A checkpoint (:func:`save_checkpoint`) is one such file: weights as ``model/<name>``, optimizer
buffers as ``optimizer/<name>``, the architecture config, the optimizer's other state and any
extra training state as JSON in the metadata (``pyrnn.config``, ``pyrnn.optimizer``,
``pyrnn.extra``). :func:`load_checkpoint` checks the types of all of it (see there), so that a bad
file is always a :class:`CheckpointError`, never a ``TypeError`` or ``KeyError`` further on.

Reading: :func:`load_file` and :func:`load_checkpoint` read everything; :func:`read_header` and
:func:`read_checkpoint_header` make the same checks but give ``(dtype, shape)`` in place of each
array, without allocating the data.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import numbers
import os
import re
import reprlib
import secrets
import struct
from collections import Counter
from collections.abc import Mapping

import numpy as np

__all__ = [
    "CheckpointError", "save_file", "load_file", "read_header", "save_checkpoint", "load_checkpoint",
    "read_checkpoint_header", "MAX_HEADER_BYTES", "MAX_HEADER_ITEMS",
]

FORMAT_VERSION = "1"
_CHECKSUM_KEY = "pyrnn.sha256"
_FORMAT_KEY = "pyrnn.format"
_CONFIG_KEY, _OPTIMIZER_KEY, _EXTRA_KEY = "pyrnn.config", "pyrnn.optimizer", "pyrnn.extra"
_MODEL_PREFIX, _OPTIMIZER_PREFIX = "model/", "optimizer/"
_HEADER_START = b'{"__metadata__":{"' + _CHECKSUM_KEY.encode() + b'":"'
_SLOT = (8 + len(_HEADER_START), 8 + len(_HEADER_START) + 64)  # file bytes holding the checksum
_HEX64 = re.compile("[0-9a-f]{64}")
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}
_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON's \uXXXX escapes can spell them; UTF-8 cannot
_INT64_MAX = 2**63 - 1
_MAX_NDIM = 64  # NumPy's limit
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlist = _REPR.maxdict = 8
_REPR.maxlevel = 3

# Limits on the header, checked before it is read (the length) and before it is parsed (the items), so
# that parsing a crafted header costs a bounded amount of memory (about 70 MB at worst). safetensors caps
# the header at 100 MB; pyrnn caps it lower, at 8 MiB, because parsed JSON takes several times its size.
MAX_HEADER_BYTES = 8 * 2**20
# JSON structural characters ``[ { , :`` in the header, those inside strings included (so the JSON of the
# config, optimizer and extra state embedded in the metadata counts too): the parser makes at most two
# Python objects per such character, plus one. 2**19 is ~80,000 epochs of a 6-series history.
MAX_HEADER_ITEMS = 2**19

# safetensors dtype name -> little-endian NumPy dtype (the types NumPy has natively).
_DTYPES = {
    name: np.dtype(code)
    for name, code in {
        "BOOL": "|b1", "U8": "|u1", "I8": "|i1", "U16": "<u2", "I16": "<i2", "F16": "<f2",
        "U32": "<u4", "I32": "<i4", "F32": "<f4", "U64": "<u8", "I64": "<i8", "F64": "<f8",
    }.items()
}
_NAMES = {(dt.kind, dt.itemsize): name for name, dt in _DTYPES.items()}


class CheckpointError(ValueError):
    """A file that is not a valid (or not an intact) checkpoint; the message names the file and the problem."""


# ============================================================ tensors files
def save_file(path, tensors, metadata=None):
    """Write ``tensors`` to ``path`` in the safetensors format, atomically, with a checksum.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; its directory must exist. An existing file is replaced only once the new
        one is complete and on disk.
    tensors : dict[str, numpy.ndarray]
        Boolean, integer (8 to 64 bits) or float (16, 32, 64 bits) arrays of any shape, 0-d and
        empty included, in any memory order and byte order (stored C-ordered, little-endian).
        Names are non-empty strings other than ``"__metadata__"``.
    metadata : dict[str, str], optional
        Stored in ``"__metadata__"``; the keys ``"pyrnn.sha256"`` and ``"pyrnn.format"`` are reserved.

    Raises
    ------
    TypeError, ValueError
        Bad names, arrays or metadata, or a header over :data:`MAX_HEADER_BYTES` or
        :data:`MAX_HEADER_ITEMS` (which :func:`load_file` would refuse), before anything is written.
    OSError
        The write errored; the previous file at ``path`` (if any) is unchanged.
    """
    arrays = _check_tensors(tensors, "tensors")
    user_metadata = _check_metadata(metadata)
    # Widest items first (a stable sort): with N a multiple of 8, every tensor is aligned to its item size.
    order = sorted(arrays, key=lambda name: -arrays[name].dtype.itemsize)
    begins, offset = {}, 0
    for name in order:
        begins[name], offset = offset, offset + arrays[name].nbytes
    table = {
        name: {"dtype": _NAMES[a.dtype.kind, a.dtype.itemsize], "shape": list(a.shape),
               "data_offsets": [begins[name], begins[name] + a.nbytes]}
        for name, a in arrays.items()
    }

    def head(checksum):
        meta = {_CHECKSUM_KEY: checksum, _FORMAT_KEY: FORMAT_VERSION, **user_metadata}
        raw = json.dumps({"__metadata__": meta, **table}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-len(raw) % 8)
        return struct.pack("<Q", len(raw)) + raw

    blank = head("0" * 64)
    if len(blank) - 8 > MAX_HEADER_BYTES or _json_items(blank) > MAX_HEADER_ITEMS:
        raise ValueError(f"header of {len(blank) - 8} bytes and {_json_items(blank)} JSON items: over the limits that "
                         f"load_file reads ({MAX_HEADER_BYTES} bytes, {MAX_HEADER_ITEMS} items); store fewer tensors "
                         "or less metadata")
    chunks = [_raw_bytes(arrays[name]) for name in order]
    digest = hashlib.sha256(blank)
    for chunk in chunks:
        digest.update(chunk)
    _atomic_write(path, [head(digest.hexdigest()), *chunks])


def load_file(path, *, require_checksum=True):
    """Read a safetensors file, refusing anything truncated, corrupted or malformed.

    Parameters
    ----------
    path : str or os.PathLike
    require_checksum : bool, default True
        Files written by pyrnn carry a checksum, verified whenever present. ``False`` also accepts
        files from other safetensors writers (which have none); they get the structural checks only.

    Returns
    -------
    tensors : dict[str, numpy.ndarray]
        In header order; fresh, writeable, native-byte-order arrays (copies, not views of the file).
    metadata : dict[str, str]
        The ``"__metadata__"`` entries, without pyrnn's reserved ``"pyrnn.sha256"`` and ``"pyrnn.format"``.

    Raises
    ------
    CheckpointError
        With the file name and the problem: truncated, header length beyond the file or over
        :data:`MAX_HEADER_BYTES`, more than :data:`MAX_HEADER_ITEMS` JSON items, header not UTF-8
        JSON or not an object, duplicate keys, lone surrogates in names or metadata, ``__metadata__``
        not str -> str, an entry not exactly {dtype, shape, data_offsets}, unknown dtype, shape not
        integers in [0, 2**63 - 1] or over 64 dims or over 2**63 - 1 bytes, shape/offset mismatch,
        offsets overlapping, leaving a gap or beyond the data, trailing bytes, checksum missing,
        malformed or mismatching, BOOL data other than 0/1. Never another exception for a bad file
        (an unreadable one is an OSError). Memory: the file's data size plus a bounded header parse.
    """
    path = os.fspath(path)
    error = _error_for(path)
    with open(path, "rb") as f:
        metadata, entries, digest, checksum = _read_header(f, path, require_checksum)
        tensors = {}
        for name, dtype, shape, _, _ in sorted(entries, key=lambda e: (e[3], e[4])):  # file order
            try:
                arr = np.empty(shape, dtype=dtype)
            except (ValueError, OverflowError) as exc:
                raise error(f"tensor {_short(name)}: shape {shape} cannot be allocated ({exc})") from None
            buf = _raw_bytes(arr)
            _read_exactly(f, buf.nbytes, error, into=buf)
            if digest is not None:
                digest.update(buf)
            tensors[name] = arr
        if f.read(1):
            raise error("the file grew while it was being read")
    _check_digest(digest, checksum, error)

    out = {}
    for name, _, _, _, _ in entries:  # header order
        arr = tensors[name]
        if arr.dtype.kind == "b" and arr.size and _raw_bytes(arr).max() > 1:
            raise error(f"tensor {_short(name)}: BOOL data holds bytes other than 0 and 1")
        # in place, so that a big-endian machine needs no second copy either
        out[name] = arr if arr.dtype.isnative else arr.byteswap(inplace=True).view(arr.dtype.newbyteorder("="))
    return out, _user_metadata(metadata)


def read_header(path, *, require_checksum=True, verify_checksum=True):
    """The tensors' names, dtypes and shapes and the metadata of a safetensors file, without loading the data.

    Every structural check of :func:`load_file` is made (header length and JSON, dtypes, shapes,
    offsets tiling the data exactly, file size): so that a caller can compare the shapes with what it
    expects (e.g. a model's architecture) before allocating anything. Memory: the header only (at most
    :data:`MAX_HEADER_BYTES`) and one 1 MiB buffer.

    Parameters
    ----------
    path : str or os.PathLike
    require_checksum : bool, default True
        As in :func:`load_file`.
    verify_checksum : bool, default True
        Stream the data through SHA-256 (1 MiB at a time, nothing kept) so that a corrupted file is
        refused here too. ``False`` reads the header bytes only; the data's integrity is then unchecked
        (``BOOL`` data being 0/1 is never checked here) until :func:`load_file` reads it.

    Returns
    -------
    tensors : dict[str, tuple[numpy.dtype, tuple[int, ...]]]
        name -> (dtype, shape), in header order; the dtype native-byte-order, as :func:`load_file`'s arrays have.
    metadata : dict[str, str]
        As :func:`load_file` returns it.

    Raises
    ------
    CheckpointError
        As :func:`load_file` (but for the BOOL data check).
    """
    path = os.fspath(path)
    error = _error_for(path)
    with open(path, "rb") as f:
        metadata, entries, digest, checksum = _read_header(f, path, require_checksum)
        if digest is not None and verify_checksum:
            remaining = max((e[4] for e in entries), default=0)
            chunk = bytearray(min(remaining, 2**20))
            while remaining:
                part = chunk if remaining >= len(chunk) else memoryview(chunk)[:remaining]
                _read_exactly(f, len(part), error, into=part)
                digest.update(part)
                remaining -= len(part)
            if f.read(1):
                raise error("the file grew while it was being read")
            _check_digest(digest, checksum, error)
    tensors = {name: (dtype.newbyteorder("="), shape) for name, dtype, shape, _, _ in entries}
    return tensors, _user_metadata(metadata)


# ============================================================== checkpoints
def save_checkpoint(path, *, weights, config, optimizer=None, extra=None):
    """Save a model's weights, architecture, optimizer state and training state in one file.

    Parameters
    ----------
    path : str or os.PathLike
    weights : dict[str, numpy.ndarray]
        The model's parameters (e.g. ``state_dict()`` names), float16/32/64 arrays, stored as ``model/<name>``.
    config : dict
        The architecture (e.g. ``get_config()``), JSON-serialisable (see below).
    optimizer : dict, optional
        The optimizer's state dict: ``{"class": str, "config": dict, "step": int, "buffers": {name: ndarray}}``.
        ``buffers`` (required; float arrays) is stored as ``optimizer/<name>`` tensors, the rest as JSON;
        ``class``, ``config``, ``step`` and ``num_params``, when there, must have those types (int >= 0 for both counts).
    extra : dict, optional
        Training state (epoch, ``Generator.bit_generator.state``, loss history, ...), JSON-serialisable.

    JSON values: dicts with str keys, lists, tuples (loaded back as lists), str, int, float
    (NaN and infinities included), bool, None; NumPy scalars become Python scalars, NumPy
    arrays nested lists, ``numpy.dtype`` its name.

    Raises
    ------
    TypeError, ValueError
        Non-array or non-float weights or buffers, a value JSON cannot hold exactly (naming where it is),
        a circular reference, optimizer entries of the wrong type; nothing is written.
    """
    tensors = {_MODEL_PREFIX + name: a for name, a in _check_model_tensors(weights).items()}
    metadata = {_CONFIG_KEY: _dumps(_require_dict(config, "config"), "config")}
    if optimizer is not None:
        optimizer = _require_dict(optimizer, "optimizer")
        if "buffers" not in optimizer:
            keys = sorted(map(str, optimizer))
            raise ValueError(f"optimizer: expected a state dict with a 'buffers' entry (name -> array), got keys {keys}")
        buffers = _check_float_tensors(optimizer["buffers"], "optimizer['buffers']")
        tensors.update((_OPTIMIZER_PREFIX + name, a) for name, a in buffers.items())
        state = _jsonable({k: v for k, v in optimizer.items() if k != "buffers"}, "optimizer", set())
        problem = _optimizer_problem(state)
        if problem:
            raise TypeError(f"optimizer: {problem}")
        metadata[_OPTIMIZER_KEY] = json.dumps(state, separators=(",", ":"))
    if extra is not None:
        metadata[_EXTRA_KEY] = _dumps(_require_dict(extra, "extra"), "extra")
    save_file(path, tensors, metadata)


def load_checkpoint(path):
    """Load what :func:`save_checkpoint` wrote; the checksum is always required.

    Returns
    -------
    dict
        ``{"weights": dict[str, ndarray], "config": dict, "optimizer": dict | None, "extra": dict | None}``,
        arrays bit-for-bit as saved, ``optimizer["buffers"]`` restored as arrays. Every type is checked:
        the weights and buffers are float16/32/64 arrays under non-empty names; ``config`` and ``extra``
        are dicts (JSON objects); ``optimizer`` is a dict whose ``"class"`` (if any) is a str,
        ``"config"`` a dict, ``"step"`` and ``"num_params"`` non-negative ints.

    Raises
    ------
    CheckpointError
        Anything :func:`load_file` refuses, a valid tensors file that is not a pyrnn checkpoint, or
        metadata of the wrong type. Never another exception for a bad file (but OSError, for one
        that cannot be read).
    """
    path = os.fspath(path)
    tensors, metadata = load_file(path)
    return _checkpoint(path, tensors, metadata, lambda arr: arr.dtype)


def read_checkpoint_header(path, *, verify_checksum=True):
    """What :func:`load_checkpoint` would return, with ``(dtype, shape)`` in place of each array.

    Reads the header only (:func:`read_header`), makes every check :func:`load_checkpoint` makes
    but on the data, and allocates no tensor: a caller can compare the shapes with the architecture
    in ``config`` before building a model. ``verify_checksum`` as in :func:`read_header` (the checksum
    is always required).

    Returns
    -------
    dict
        ``{"weights": dict[str, (numpy.dtype, tuple)], "config": dict, "optimizer": dict | None, "extra": dict | None}``,
        ``optimizer["buffers"]`` too holding ``(dtype, shape)`` pairs.
    """
    path = os.fspath(path)
    tensors, metadata = read_header(path, verify_checksum=verify_checksum)
    return _checkpoint(path, tensors, metadata, lambda spec: spec[0])


def _checkpoint(path, tensors, metadata, dtype_of):
    """Split a checkpoint file's tensors and metadata into weights, config, optimizer and extra, every type checked."""
    error = _error_for(path)
    if _CONFIG_KEY not in metadata:
        raise error(f"not a pyrnn checkpoint (no {_CONFIG_KEY!r} metadata); use load_file for plain tensor files")
    keys = [k for k in (_CONFIG_KEY, _OPTIMIZER_KEY, _EXTRA_KEY) if k in metadata]
    items = sum(_json_items(metadata[k]) for k in keys)
    if items > MAX_HEADER_ITEMS:  # \uXXXX escapes in the header can hide JSON items from the header's count
        raise error(f"metadata JSON holds {items} items, over the limit of {MAX_HEADER_ITEMS} (MAX_HEADER_ITEMS)")
    weights, buffers = {}, {}
    for name, value in tensors.items():
        for prefix, group in ((_MODEL_PREFIX, weights), (_OPTIMIZER_PREFIX, buffers)):  # noqa: B007 - group is used after the break
            if name.startswith(prefix):
                break
        else:
            raise error(f"tensor {_short(name)} is neither 'model/...' nor 'optimizer/...'")
        if name == prefix:
            raise error(f"tensor {_short(name)}: an empty name after {prefix!r}")
        dtype = dtype_of(value)
        if dtype.kind != "f" and not (group is weights and dtype.kind in "iu"):
            raise error(f"tensor {_short(name)}: dtype {dtype} is not a float type (weights and optimizer buffers are float16/32/64; "
                        "integer model tensors are counters such as BatchNorm's num_batches_tracked)")
        group[name[len(prefix):]] = value
    config = _loads(path, metadata, _CONFIG_KEY)
    if not isinstance(config, dict):
        raise error(f"metadata {_CONFIG_KEY!r} is not a JSON object (got {type(config).__name__})")
    optimizer = None
    if _OPTIMIZER_KEY in metadata:
        state = _loads(path, metadata, _OPTIMIZER_KEY)
        problem = _optimizer_problem(state)
        if problem:
            raise error(f"metadata {_OPTIMIZER_KEY!r}: {problem}")
        optimizer = {**state, "buffers": buffers}
    elif buffers:
        raise error(f"optimizer tensors without {_OPTIMIZER_KEY!r} metadata")
    extra = None
    if _EXTRA_KEY in metadata:
        extra = _loads(path, metadata, _EXTRA_KEY)
        if not isinstance(extra, dict):
            raise error(f"metadata {_EXTRA_KEY!r} is not a JSON object (got {type(extra).__name__})")
    return {"weights": weights, "config": config, "optimizer": optimizer, "extra": extra}


def _optimizer_problem(state):
    """What is wrong with an optimizer state (as JSON, without its buffers), or None."""
    if not isinstance(state, dict):
        return f"expected a JSON object, got {type(state).__name__}"
    if "buffers" in state:
        return "'buffers' is stored as 'optimizer/...' tensors, not in the JSON"
    if "class" in state and not isinstance(state["class"], str):
        return f"'class' is not a str (got {_short(state['class'])})"
    if "config" in state and not isinstance(state["config"], dict):
        return f"'config' is not an object (got {_short(state['config'])})"
    for key in ("step", "num_params"):
        if key in state and not (_is_int(state[key]) and state[key] >= 0):
            return f"{key!r} is not a non-negative integer (got {_short(state[key])})"
    return None


# ================================================================= helpers
def _raw_bytes(arr):
    """The bytes of a C-contiguous array as a flat uint8 view (0-d and empty arrays included)."""
    return arr.reshape(-1).view(np.uint8)


def _check_name(what, name):
    if not isinstance(name, str):
        raise TypeError(f"{what}: expected str names, got {type(name).__name__} {name!r}")
    if not name or name == "__metadata__":
        raise ValueError(f"{what}: expected a non-empty name other than '__metadata__', got {name!r}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what}: expected a name encodable as UTF-8, got {name!r} ({exc.reason})") from None


def _check_tensors(tensors, what):
    """name -> C-contiguous little-endian array, every name and array checked."""
    if not isinstance(tensors, Mapping):
        raise TypeError(f"{what}: expected a dict of name -> NumPy array, got {type(tensors).__name__}")
    out = {}
    for name, value in tensors.items():
        _check_name(f"{what} key", name)
        if isinstance(value, np.generic):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{what}[{name!r}]: expected a NumPy array, got {type(value).__name__}")
        if (value.dtype.kind, value.dtype.itemsize) not in _NAMES:
            raise TypeError(f"{what}[{name!r}]: expected a bool, int8-64, uint8-64 or float16/32/64 array, got dtype {value.dtype}")
        out[name] = value.astype(value.dtype.newbyteorder("<"), order="C", copy=False)
    return out


def _check_model_tensors(weights):
    """Parameters and running statistics are floats; counters (num_batches_tracked) integers."""
    out = _check_tensors(weights, "weights")
    for name, value in out.items():
        if value.dtype.kind not in "fiu":
            raise TypeError(f"weights[{name!r}]: expected a float or integer array, got dtype {value.dtype}")
    return out


def _check_float_tensors(tensors, what):
    out = _check_tensors(tensors, what)
    for name, value in out.items():
        if value.dtype.kind != "f":
            raise TypeError(f"{what}[{name!r}]: expected a float16/32/64 array, got dtype {value.dtype}")
    return out


def _check_metadata(metadata):
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata: expected a dict of str -> str, got {type(metadata).__name__}")
    for key, value in metadata.items():
        for role, item in (("key", key), ("value", value)):
            if not isinstance(item, str):
                raise TypeError(f"metadata {role} {item!r}: expected str, got {type(item).__name__}")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"metadata {role} {item!r}: expected text encodable as UTF-8 ({exc.reason})") from None
        if key in (_CHECKSUM_KEY, _FORMAT_KEY):
            raise ValueError(f"metadata: expected keys other than pyrnn's reserved {_CHECKSUM_KEY!r} and {_FORMAT_KEY!r}, got {key!r}")
    return dict(metadata)


def _atomic_write(path, chunks):
    """Temporary file beside ``path``, write, flush, fsync, rename over ``path``, fsync the directory."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f"{os.path.basename(path)}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "xb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename durable (POSIX); filesystems that cannot fsync a directory are let be."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _read_exactly(f, count, error, into=None):
    """``count`` bytes (or fill ``into``), refusing a file that ends first."""
    buf = bytearray(count) if into is None else into
    with memoryview(buf).cast("B") as view:
        got = 0
        while got < count:
            k = f.readinto(view[got:])
            if not k:
                raise error(f"truncated: the file ended {count - got} bytes early")
            got += k
    return buf


def _no_duplicates(pairs):
    out = dict(pairs)
    if len(out) != len(pairs):
        counts = Counter(k for k, _ in pairs)
        raise ValueError(f"duplicate keys {sorted(k for k, c in counts.items() if c > 1)}")
    return out


def _json_items(text):
    """How many of JSON's structural characters ``[ { , :`` ``text`` (bytes-like or str) holds, strings included."""
    if isinstance(text, str):
        return text.count("[") + text.count("{") + text.count(",") + text.count(":")
    return text.count(b"[") + text.count(b"{") + text.count(b",") + text.count(b":")


def _short(value):
    """A repr for messages, cut short (a crafted header's values can be megabytes long)."""
    return _REPR.repr(value)


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _error_for(path):
    def error(problem):
        return CheckpointError(f"{path}: {problem}")

    return error


def _read_header(f, path, require_checksum):
    """Read and check everything before the data of the open file ``f`` (at its start), leaving ``f`` at the data.

    Returns ``(metadata, entries, digest, checksum)``: all of ``"__metadata__"``, the checked entries
    (:func:`_parse_header`), and a SHA-256 fed with the file up to the data plus the stored checksum
    (both None when the file has no checksum).
    """
    error = _error_for(path)
    size = os.fstat(f.fileno()).st_size
    if size < 8:
        raise error(f"file is {size} bytes, shorter than the 8-byte header length (truncated, or not a safetensors file)")
    prefix = _read_exactly(f, 8, error)
    (n,) = struct.unpack("<Q", prefix)
    if n > size - 8:
        raise error(f"header length {n} goes beyond the end of the file ({size} bytes): truncated, or not a safetensors file")
    if n > MAX_HEADER_BYTES:
        raise error(f"header length {n} is over the limit of {MAX_HEADER_BYTES} bytes (MAX_HEADER_BYTES)")
    raw = _read_exactly(f, n, error)
    # The header's part of the checksum, taken now so that the raw header can go before parsing.
    start, stop = _SLOT[0] - 8, _SLOT[1] - 8
    slot, digest = None, None
    if raw.startswith(_HEADER_START) and n >= stop:
        slot = bytes(raw[start:stop])
        digest = hashlib.sha256(prefix)
        with memoryview(raw) as view:
            digest.update(view[:start])
            digest.update(b"0" * 64)
            digest.update(view[stop:])
    metadata, entries = _parse_header(raw, error)
    del raw
    _check_layout(entries, size - 8 - n, error)

    checksum = metadata.get(_CHECKSUM_KEY)
    if metadata.get(_FORMAT_KEY, FORMAT_VERSION) != FORMAT_VERSION:
        raise error(f"written in pyrnn format {_short(metadata[_FORMAT_KEY])}; this version reads format {FORMAT_VERSION!r}")
    if checksum is None and require_checksum:
        raise error(f"no {_CHECKSUM_KEY!r} checksum in the metadata (not written by pyrnn?); "
                    "pass require_checksum=False to load files from other safetensors writers")
    if checksum is None:
        return metadata, entries, None, None
    if not _HEX64.fullmatch(checksum) or slot != checksum.encode():
        raise error(f"corrupted: malformed {_CHECKSUM_KEY!r} checksum")
    return metadata, entries, digest, checksum


def _check_digest(digest, checksum, error):
    if digest is not None and not hmac.compare_digest(digest.hexdigest(), checksum):
        raise error(f"corrupted: checksum mismatch (stored {checksum}, computed {digest.hexdigest()})")


def _user_metadata(metadata):
    return {k: v for k, v in metadata.items() if k not in (_CHECKSUM_KEY, _FORMAT_KEY)}


def _parse_header(raw, error):
    """(metadata, [(name, dtype, shape, begin, end), ...] in header order), every field checked.

    ``raw`` (a bytearray) is emptied once decoded, so that it and the parsed header are not both held.
    """
    items = _json_items(raw)
    if items > MAX_HEADER_ITEMS:
        raise error(f"header holds {items} JSON items ('[', '{{', ',', ':'), over the limit of {MAX_HEADER_ITEMS} (MAX_HEADER_ITEMS)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"header is not valid UTF-8 ({exc.reason} at byte {8 + exc.start})") from None
    del raw[:]
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise error(f"header is not valid JSON ({str(exc)[:200]})") from None
    del text
    if not isinstance(header, dict):
        raise error(f"header is not a JSON object (got {type(header).__name__})")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise error(f"'__metadata__' is not an object of str -> str (got {_short(metadata)})")
    for key, value in metadata.items():
        if _SURROGATE.search(key) or _SURROGATE.search(value):
            raise error(f"'__metadata__' entry {_short(key)}: {_short(value)} is not valid Unicode (a lone surrogate)")
    entries = []
    for name, info in header.items():
        if _SURROGATE.search(name):
            raise error(f"tensor name {_short(name)} is not valid Unicode (a lone surrogate)")
        if not isinstance(info, dict) or set(info) != _ENTRY_KEYS:
            raise error(f"tensor {_short(name)}: expected an object with keys {sorted(_ENTRY_KEYS)}, got {_short(info)}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _DTYPES:
            raise error(f"tensor {_short(name)}: unknown or unsupported dtype {_short(dtype)} (expected one of {', '.join(_DTYPES)})")
        if not isinstance(shape, list) or not all(_is_int(d) and 0 <= d <= _INT64_MAX for d in shape):
            raise error(f"tensor {_short(name)}: shape {_short(shape)} is not a list of integers in [0, 2**63 - 1]")
        if len(shape) > _MAX_NDIM:
            raise error(f"tensor {_short(name)}: shape has {len(shape)} dimensions, more than NumPy's {_MAX_NDIM}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= _INT64_MAX):
            raise error(f"tensor {_short(name)}: data_offsets {_short(offsets)} is not [begin, end] with 0 <= begin <= end <= 2**63 - 1")
        begin, end = offsets
        itemsize = _DTYPES[dtype].itemsize
        # Checked arithmetic: the dimensions' product (zeros left out) times the item size must fit an
        # int64, as NumPy (and any C reader) needs; a zero dimension then makes it 0 bytes.
        nbytes = itemsize
        for d in shape:
            nbytes *= d or 1
            if nbytes > _INT64_MAX:
                raise error(f"tensor {_short(name)}: shape {_short(shape)} of {dtype} overflows: more than 2**63 - 1 bytes")
        if 0 in shape:
            nbytes = 0
        if nbytes != end - begin:
            raise error(f"tensor {_short(name)}: shape {shape} of {dtype} needs {nbytes} bytes, "
                        f"its data_offsets [{begin}, {end}] span {end - begin}")
        entries.append((name, _DTYPES[dtype], tuple(shape), begin, end))
    return metadata, entries


def _check_layout(entries, data_len, error):
    """The tensors' byte ranges must tile the data section exactly."""
    pos = 0
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin < pos:
            raise error(f"tensor {_short(name)}: data_offsets [{begin}, {end}] overlap the previous tensor, which ends at {pos}")
        if begin > pos:
            raise error(f"tensor {_short(name)}: data_offsets [{begin}, {end}] leave bytes [{pos}, {begin}) of the data to no tensor")
        if end > data_len:
            raise error(f"truncated: tensor {_short(name)} ends at byte {end} of the data, the file holds {data_len} bytes of data")
        pos = end
    if pos < data_len:
        raise error(f"{data_len - pos} trailing bytes after the last tensor's data")


def _require_dict(value, what):
    if not isinstance(value, Mapping):
        raise TypeError(f"{what}: expected a dict, got {type(value).__name__}")
    return value


def _jsonable(value, where, active):
    """``value`` as plain JSON types, refusing what JSON cannot hold exactly (``where`` names the spot)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value.tolist()
    if isinstance(value, (Mapping, list, tuple)):
        if id(value) in active:
            raise ValueError(f"{where}: expected a tree of values, got a circular reference")
        active.add(id(value))
        if isinstance(value, Mapping):
            for key in value:
                if not isinstance(key, str):
                    raise TypeError(f"{where}: expected str keys (JSON object), got {type(key).__name__} key {key!r}")
            out = {k: _jsonable(v, f"{where}[{k!r}]", active) for k, v in value.items()}
        else:
            out = [_jsonable(v, f"{where}[{i}]", active) for i, v in enumerate(value)]
        active.discard(id(value))
        return out
    raise TypeError(f"{where}: expected a JSON-serialisable value (dict with str keys, list, tuple, str, int, float, "
                    f"bool, None, NumPy scalar or numeric array), got {type(value).__name__}")


def _dumps(value, where):
    return json.dumps(_jsonable(value, where, set()), separators=(",", ":"))


def _loads(path, metadata, key):
    try:
        return json.loads(metadata[key], object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: metadata {key!r} is not valid JSON ({str(exc)[:200]})") from None
