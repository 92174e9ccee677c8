"""Recycled memory for the large arrays the kernels return: outputs, input gradients, caches.

A training step allocates the same large arrays every time (each layer's output and cache in the
forward, each input gradient in the backward) and drops them by the end of the step. From glibc,
every one of them is fresh memory: arrays above its mmap threshold come from ``mmap`` and go back
to the system when freed, those below it come from the heap's top, which is trimmed when freed; so
the next step page-faults every page in again (4 KiB each, zeroed by the kernel): ~11,000 faults
per U-Net training step of ``pyrnn.bench_cnn``, 10-30 % of its time.

:func:`empty` takes the memory from arenas that are never given back while pyrnn runs: a heap that
does not trim, scoped to pyrnn's arrays (glibc's own settings would change every allocation of the
process). Each array it returns is a view of its own block, a NumPy array over a slice of an
arena; the block is free again exactly when no array refers to it (``sys.getrefcount`` of the
block: every view of the array has the block as its base, so a live array, any view of it, a
cache or a user's reference keeps it busy) -- the test NumPy itself uses to reuse temporaries in
place. An array it hands out is therefore visible to no one else: it behaves as a fresh
``np.empty``.

A request first takes a free block of its own size (a step asks for the same sizes each time);
failing that, the lowest free range of written pages that fits it (address-ordered first fit, free
neighbours merged), else the lowest range of them that only idle blocks and free space cover (those
idle blocks forgotten, no others: the blocks of other sizes stay for their next requests; the LeNet
digits epoch made 311 new blocks an epoch when every idle block was forgotten, 146 so), then fresh
pages of an arena, then a new arena. Arenas are reserved large (:data:`ARENA_BYTES`, from
``mmap``: pages that are never written cost no memory), so the resident memory is the most the
arrays ever used at once plus fragmentation: measured on the U-Net step, 0 page faults after the
first step (~11,000 before) at about glibc's peak. :func:`empty_cache` frees every arena no array
uses (PyTorch's name); ``PYRNN_RECYCLE_MEMORY=0`` in the environment turns the pool off (every
call is ``np.empty``).
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

#: requests smaller than this many bytes go to ``np.empty`` (glibc serves them from its heap)
MIN_BYTES = 1 << 16
#: bytes reserved per arena (a larger request gets an arena of its own size)
ARENA_BYTES = 1 << 26
#: alignment of every block (a cache line; AVX-512 loads of a row start on one)
ALIGN = 64

_lock = threading.Lock()
_arenas: list = []  # [_Arena]
_by_size: dict[int, list] = {}  # block size -> [block], the blocks of every arena
_enabled = os.environ.get("PYRNN_RECYCLE_MEMORY", "1").strip().lower() not in ("0", "false", "no", "off")


class _Arena:
    """One reserved range: ``blocks`` are its blocks by offset (``[offset, size, array]``), ``top``
    the end of the highest block it ever held (the pages below it have been written)."""

    def __init__(self, nbytes):
        self.owner = np.empty(nbytes + ALIGN, np.uint8)
        self.start = -self.owner.ctypes.data % ALIGN
        self.view = memoryview(self.owner)
        self.size = nbytes
        self.top = 0
        self.blocks = []

    def block(self, offset, nbytes):
        """A new block at ``offset``: an array whose base is a memoryview, so that NumPy's views of
        it stop there (a chain of ndarray views collapses to the array owning the memory)."""
        start = self.start + offset
        return [offset, nbytes, np.frombuffer(self.view[start : start + nbytes], np.uint8)]

    def fit(self, nbytes, limit):
        """The offset of the lowest free range of ``nbytes`` ending at most at ``limit`` (idle
        blocks count as used), or None."""
        end = 0
        for offset, size, _ in self.blocks:
            if offset - end >= nbytes:
                return end
            end = offset + size
        return end if limit - end >= nbytes else None

    def fit_over_idle(self, nbytes, limit):
        """``(offset, idle blocks in the way)`` of the lowest range of ``nbytes`` ending at most at
        ``limit`` that only free space and idle blocks cover, or None."""
        start, idle = 0, []
        for block in self.blocks:
            offset, size = block[0], block[1]  # not block[2]: a name for the array would make it busy
            if offset - start >= nbytes:
                return start, idle
            if _idle(block):
                idle.append(block)
            else:  # busy: a range starts after it
                start, idle = offset + size, []
        return (start, idle) if limit - start >= nbytes else None


def _idle(block):
    return sys.getrefcount(block[2]) == _IDLE


def _idle_refcount():
    """``sys.getrefcount(block[2])`` of a block only the pool holds, as :func:`_idle` reads it:
    measured, not assumed, so a Python whose reference counting differs turns the pool off rather
    than misjudge a block as free."""
    block = _Arena(4 * ALIGN).block(0, ALIGN)
    idle = sys.getrefcount(block[2])
    view = block[2].view(np.float32).reshape(4, 4)[1:]
    busy = sys.getrefcount(block[2])
    del view
    return idle if busy > idle and sys.getrefcount(block[2]) == idle else None


_IDLE = _idle_refcount()


def _after_fork():  # a thread of the parent may have held the lock: the child starts afresh
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def _forget_idle():
    """Drop every idle block: their ranges become free (under the lock)."""
    for arena in _arenas:
        _drop(arena, [b for b in arena.blocks if _idle(b)])


def _place(nbytes, above_top):
    """(arena, offset) of the lowest fitting free range, in pages already written unless
    ``above_top``, or None (under the lock)."""
    for arena in _arenas:
        offset = arena.fit(nbytes, arena.size if above_top else arena.top)
        if offset is not None:
            return arena, offset
    return None


def _drop(arena, blocks):
    """Forget ``blocks`` (idle blocks of ``arena``): their ranges become free (under the lock)."""
    gone = {id(b) for b in blocks}
    arena.blocks = [b for b in arena.blocks if id(b) not in gone]
    for size in {b[1] for b in blocks}:
        left = [c for c in _by_size[size] if id(c) not in gone]
        if left:
            _by_size[size] = left
        else:
            del _by_size[size]


def _place_over_idle(nbytes):
    """(arena, offset) of the lowest range of written pages that free space and idle blocks cover, those
    idle blocks forgotten (only they: the idle blocks of other sizes stay for the requests to come), or
    None (under the lock)."""
    for arena in _arenas:
        found = arena.fit_over_idle(nbytes, arena.top)
        if found is not None:
            _drop(arena, found[1])
            return arena, found[0]
    return None


def _new_block(nbytes):
    """A block of ``nbytes`` (under the lock): in written pages if they have room, else in the lowest
    range of them that only idle blocks take (forgetting those alone: forgetting every idle block made
    each step of a training loop forget and rebuild the blocks of its other sizes), else in fresh pages
    of an arena, else in a new arena."""
    found = _place(nbytes, False) or _place_over_idle(nbytes) or _place(nbytes, True)
    if found is None:
        _arenas.append(_Arena(max(ARENA_BYTES, nbytes)))
        found = _arenas[-1], 0
    arena, offset = found
    block = arena.block(offset, nbytes)
    arena.blocks.insert(sum(1 for b in arena.blocks if b[0] < offset), block)
    arena.top = max(arena.top, offset + nbytes)
    _by_size.setdefault(nbytes, []).append(block)
    return block


def empty(shape, dtype):
    """``np.empty(shape, dtype)``, C-contiguous, from recycled memory when it is large.

    The result is a view of a block only this array (and views of it) can reach; the block is
    reused once they are all gone. Contents are undefined, as ``np.empty``'s.
    """
    dtype = np.dtype(dtype)
    shape = tuple(map(int, shape)) if isinstance(shape, (tuple, list)) else (int(shape),)
    size = math.prod(shape) * dtype.itemsize
    if size < MIN_BYTES or not _enabled or _IDLE is None:
        return np.empty(shape, dtype)
    nbytes = -(-size // ALIGN) * ALIGN
    with _lock:
        for block in _by_size.get(nbytes, ()):
            if _idle(block):
                break
        else:
            block = _new_block(nbytes)
        # holds the block from here: busy for every other caller
        return block[2][:size].view(dtype).reshape(shape)


def empty_like(a):
    """:func:`empty` with ``a``'s shape and dtype."""
    return empty(a.shape, a.dtype)


def copy(a):
    """A C-contiguous copy of ``a`` in :func:`empty`'s memory."""
    out = empty(a.shape, a.dtype)
    np.copyto(out, a)
    return out


def empty_cache():
    """Free every arena no array uses (memory the next step would have reused)."""
    with _lock:
        _forget_idle()
        _arenas[:] = [arena for arena in _arenas if arena.blocks]


def cached_bytes():
    """``(busy, reserved)``: bytes of blocks in use by some array, and bytes of the arenas."""
    with _lock:
        busy = sum(b[1] for arena in _arenas for b in arena.blocks if not _idle(b))
        return busy, sum(arena.size for arena in _arenas)
