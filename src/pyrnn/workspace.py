"""Buffers a layer reuses across calls: :class:`Workspace`.

A training step of a recurrent layer writes a cache for backward (LSTM: gates (T, B, 4H), c_t,
tanh(c_t); GRU: gates, hn) and copies the gradient of its outputs into a contiguous (T, B, H)
block: megabytes that a fresh ``np.empty`` per call maps in page by page (a page fault per 4 KiB
the first time each is written). A :class:`Workspace` keeps those buffers between calls and
hands them out again, so a step writes into memory that is already mapped and warm in cache.

Only what is never returned to the user comes from a workspace: outputs (``y``, the states,
``dx``) stay fresh arrays the caller owns. A buffer is *taken* for one use and *given back* when
that use is over (the cache: when its backward has run, or at once at inference), so

- every forward gets buffers of its own: several forwards before one backward (a shared layer,
  truncated BPTT) and two Python threads using the same layer never share a buffer: a thread
  that finds no free buffer allocates a fresh one (the free list is guarded by a lock);
- a cache whose backward never runs is simply dropped with its arrays (the workspace does not
  hold it);
- the buffers are sized by the largest shape seen (a smaller request takes a view of a larger
  buffer; a buffer smaller than the largest size seen is dropped when given back), at most
  :data:`MAX_FREE` per name are kept;
- each buffer starts on a 64-byte boundary (a cache line): the kernels' 512-bit stores and AMX tile
  rows then touch one line, not two (LSTM T=100 B=64 I=H=512 training, one process alternating, 16
  bytes off a line against on one: float32 1.015x, bfloat16 on AMX 1.040x);
- :meth:`Workspace.release` (a layer's ``release_workspace()``) drops the free buffers; the
  buffers in use stay valid for their holders and are dropped when given back. Deleting the
  layer drops its workspace with it.

The kernels' fast backends (cpp, numba) take their cache from the workspace made active for the
calling thread with :meth:`Workspace.active` (:func:`current`), the reference backend allocates
as always.
"""

from __future__ import annotations

import contextlib
import math
import threading
import weakref

import numpy as np

#: free buffers kept per name (a forward, its backward and one more forward in flight)
MAX_FREE = 2
#: the boundary every buffer starts on: a cache line
LINE = 64

_active = threading.local()


def current():
    """The workspace active in this thread (:meth:`Workspace.active`), or None."""
    return getattr(_active, "ws", None)


def _lined(size, dtype):
    """An uninitialised flat array of ``size`` values on a :data:`LINE` boundary: a view of the bytes
    that own it (its ``base``, which every view of it shares)."""
    raw = np.empty(size * dtype.itemsize + LINE, np.uint8)
    return _typed(raw, dtype)


def _typed(raw, dtype):
    """The flat array :func:`_lined` made of ``raw``."""
    off = -raw.ctypes.data % LINE
    return raw[off:off + raw.size - LINE].view(dtype)


class Workspace:
    """Named buffers reused across calls (see the module docstring). Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._free = {}  # (name, dtype) -> [flat buffers], largest size seen only
        self._size = {}  # (name, dtype) -> the largest size asked for
        # the buffers handed out and not given back: id -> (weak reference, key, epoch); a cache whose
        # backward never runs is dropped with its arrays (the reference's callback forgets it)
        self._out = {}
        self._epoch = 0  # bumped by release(): buffers handed out before are not taken back

    def take(self, name, shape, dtype):
        """An uninitialised array of ``shape`` and ``dtype``, C-contiguous, that nobody else uses until
        :meth:`give` returns it: a free buffer's view when one is large enough, else a fresh one."""
        dtype = np.dtype(dtype)
        n = math.prod(shape)
        key = (name, dtype)
        with self._lock:
            size = self._size[key] = max(self._size.get(key, 0), n)
            free = self._free.get(key)
            flat = free.pop() if free else None
            if flat is None or flat.size < n:
                flat = _lined(size, dtype)
            owner = flat.base  # what every view of it, the one handed out included, has as its base
            i = id(owner)
            self._out[i] = (weakref.ref(owner, lambda _, i=i, out=self._out: out.pop(i, None)), key, self._epoch)
        return flat[:n].reshape(shape)

    def give(self, array):
        """Hand back an array :meth:`take` returned (anything else, None included, is ignored); the
        caller must not use it afterwards."""
        owner = None if array is None else array.base
        if owner is None:
            return
        with self._lock:
            entry = self._out.get(id(owner))
            if entry is None or entry[0]() is not owner:
                return
            del self._out[id(owner)]
            _, key, epoch = entry
            flat = _typed(owner, key[1])
            free = self._free.setdefault(key, [])
            if epoch == self._epoch and flat.size >= self._size[key] and len(free) < MAX_FREE:
                free.append(flat)

    def release(self):
        """Drop every free buffer; those in use are dropped when given back."""
        with self._lock:
            self._free.clear()
            self._size.clear()
            self._epoch += 1

    def nbytes(self):
        """Bytes held in free buffers (not those in use)."""
        with self._lock:
            return sum(b.nbytes for free in self._free.values() for b in free)

    @contextlib.contextmanager
    def active(self):
        """Within the block, :func:`current` is this workspace in this thread (nested: the innermost)."""
        before = current()
        _active.ws = self
        try:
            yield self
        finally:
            _active.ws = before
