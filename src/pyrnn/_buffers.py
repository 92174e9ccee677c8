"""Recycled memory for the large arrays the kernels return: outputs, input gradients, caches.

A training step allocates the same large arrays every time (each layer's output and cache in the
forward, each input gradient in the backward) and drops them by the end of the step. From glibc,
every one of them is fresh memory: arrays above its mmap threshold come from ``mmap`` and go back
to the system when freed, those below it come from the heap's top, which is trimmed when freed; so
the next step page-faults every page in again (4 KiB each, zeroed by the kernel): ~11,000 faults
per U-Net training step of ``pyrnn.bench_cnn``, 10-30 % of its time.

:func:`empty` keeps the memory instead. It returns a view of a block the pool holds, and a block
is free again exactly when no array other than the pool refers to it (``sys.getrefcount`` of the
block: every array made from it is a view whose base is the block, so a live array, any view of
it, a cache or a user's reference keeps it busy) -- the test NumPy itself uses to reuse
temporaries in place. An array it hands out is therefore visible to no one else: it behaves as a
fresh ``np.empty``. A request takes the smallest idle block of its size up to :data:`FIT` times
larger; when none is idle, idle blocks are released (least recently used first) until as many
bytes as the new block's are, so the pool holds at most about the most memory its arrays ever
used at once: a step's peak stays where glibc's is (measured on the U-Net step: 40.5 MB the first
step, 42.6 in steady state, against 37.6 and PyTorch's 41-42 / 49-52 MB) and the page faults go
(~11,000 per step to 0). :func:`empty_cache` releases every idle block (PyTorch's name);
``PYRNN_RECYCLE_MEMORY=0`` in the environment turns the pool off (every call is ``np.empty``).
"""

from __future__ import annotations

import bisect
import os
import sys
import threading

import numpy as np

#: requests smaller than this many bytes go to ``np.empty`` (glibc serves them from its heap)
MIN_BYTES = 1 << 16
#: a request may take an idle block up to this many times its size (best fit first)
FIT = 2
#: alignment of every block (a cache line; AVX-512 loads of a row start on one)
ALIGN = 64

_lock = threading.Lock()
_blocks: dict[int, list] = {}  # size in bytes -> [[owner, offset, last use], ...], owners of uint8
_sizes: list[int] = []  # the keys of _blocks, sorted
_clock = 0
_enabled = os.environ.get("PYRNN_RECYCLE_MEMORY", "1").strip().lower() not in ("0", "false", "no", "off")


def _after_fork():  # a thread of the parent may have held the lock: the child starts afresh
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def _idle_refcount():
    """``sys.getrefcount(block)`` of a block only the pool holds, as :func:`_take` reads it (the
    entry's list, the loop variable, the call's argument): measured, not assumed, so a Python whose
    reference counting differs turns the pool off rather than misjudge a block as free."""
    entry = [np.empty(8 + ALIGN, np.uint8), 0, 0]
    idle = sys.getrefcount(entry[0])
    view = entry[0][1:5].view(np.float32).reshape(1, 1)  # a view of a view: its base collapses to the owner
    busy = sys.getrefcount(entry[0])
    del view
    return idle if busy > idle and sys.getrefcount(entry[0]) == idle else None


_IDLE = _idle_refcount()


def _new_entry(nbytes):
    owner = np.empty(nbytes + ALIGN, np.uint8)
    return [owner, -owner.ctypes.data % ALIGN, _clock]


def _take(nbytes):
    """A free entry for ``nbytes`` (under the lock), or None. Every array made from an entry is a
    view whose base is the entry's owner (NumPy collapses chains of views to the array owning the
    memory), so the owner's reference count tells whether any of them is alive."""
    global _clock
    _clock += 1
    i = bisect.bisect_left(_sizes, nbytes)
    while i < len(_sizes) and _sizes[i] <= nbytes * FIT:
        for entry in _blocks[_sizes[i]]:
            if sys.getrefcount(entry[0]) == _IDLE:
                entry[2] = _clock
                return entry
        i += 1
    return None


def _idle_entries():
    """[(last use, size, entry)] of the idle blocks, least recently used first (under the lock)."""
    idle = [(entry[2], size, entry) for size, entries in _blocks.items() for entry in entries
            if sys.getrefcount(entry[0]) == _IDLE]
    return sorted(idle, key=lambda t: t[0])


def _drop(entries):
    """Forget ``entries`` (their memory goes back to NumPy's allocator; under the lock)."""
    gone = {id(entry) for entry in entries}
    for size in list(_blocks):
        kept = [entry for entry in _blocks[size] if id(entry) not in gone]
        if kept:
            _blocks[size] = kept
        else:
            del _blocks[size]
    _sizes[:] = sorted(_blocks)


def _release(nbytes):
    """Release idle blocks, least recently used first, until ``nbytes`` are released or none is
    left (under the lock)."""
    chosen, total = [], 0
    for _, size, entry in _idle_entries():
        if total >= nbytes:
            break
        chosen.append(entry)
        total += size
    _drop(chosen)


def empty(shape, dtype):
    """``np.empty(shape, dtype)``, C-contiguous, from recycled memory when it is large.

    The result is a view of a block only this array (and views of it) can reach; the block is
    reused once they are all gone. Contents are undefined, as ``np.empty``'s.
    """
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape) if isinstance(shape, (tuple, list)) else (int(shape),)
    count = 1
    for n in shape:
        count *= n
    nbytes = count * dtype.itemsize
    if nbytes < MIN_BYTES or not _enabled or _IDLE is None:
        return np.empty(shape, dtype)
    with _lock:
        entry = _take(nbytes)
        if entry is None:
            _release(nbytes)
            entry = _new_entry(nbytes)
            if nbytes not in _blocks:
                _blocks[nbytes] = []
                bisect.insort(_sizes, nbytes)
            _blocks[nbytes].append(entry)
        start = entry[1]
        # holds the owner from here: busy for every other caller
        return entry[0][start : start + nbytes].view(dtype).reshape(shape)


def empty_like(a):
    """:func:`empty` with ``a``'s shape and dtype."""
    return empty(a.shape, a.dtype)


def empty_cache():
    """Release every block no array refers to (memory the next step would have reused)."""
    with _lock:
        _drop([entry for _, _, entry in _idle_entries()])


def cached_bytes():
    """``(busy, idle)``: bytes of the pool's blocks in use by some array, and free for reuse."""
    with _lock:
        busy = idle = 0
        for size, entries in _blocks.items():
            for entry in entries:
                if sys.getrefcount(entry[0]) == _IDLE:
                    idle += size
                else:
                    busy += size
    return busy, idle
