"""The Python side the fast backends share: allocate, call a backend's kernel, unpack.

Legend: T = time, B = batch, I = input, H = hidden, G = gates. Contract: :mod:`pyrnn.backends.contract`.

A fast backend (``cpp``, ``numba``) supplies two kernel entry points with the signatures of
``pyrnn._C.recurrent_forward``/``recurrent_backward`` (see ``_C.pyi``); its public
``recurrent_forward``/``recurrent_backward`` hand them to the two functions below, which own
everything else: the :class:`~pyrnn.backends.contract.Cache` and the outputs (allocated here,
filled by the kernel), the empty sequence or batch (no kernel call), the final states. The cache
but hs comes from the calling thread's active :class:`pyrnn.workspace.Workspace` when there is one
(a recurrent layer's, see :func:`pyrnn.workspace.current`) and goes back to it once spent: after
the backward, or at once at inference.

forward kernel:  ``kernel(cell_code, reverse, x, lengths, (h0, c0), weights, cache, y=None) -> None``
    fills ``cache`` (a :class:`Cache`; at inference gates, tanh_cs and hn are None; the C++ kernels
    never take tanh_cs) and ``y`` (the contract's ``out``) with hs too;
backward kernel: ``kernel(cell_code, reverse, x, lengths, (h0, c0), cache, weights, (dhs, dhT, dcT),
grads, (dx, dh0, dc0)) -> None``
    writes dx, dh0, dc0, adds into ``grads``, may overwrite ``cache.gates``.
"""

from __future__ import annotations

import numpy as np

from .. import _buffers
from ..workspace import current
from .contract import CELL_CODES, Saved, Weights, check_out, give_cache, new_cache, write_out


def _precision(bf16):
    """The kernels' keyword for bfloat16 GEMMs, given only when asked (float32 kernels need none)."""
    return {"bf16": True} if bf16 else {}


def _rows_readable(a):
    """Whether the C++ kernels read ``a`` (T, B, F) in place: aligned rows of unit stride, whole-element strides
    >= 0 between them (a view of a batch-first array, say): what their binding's ``in_rows`` accepts, asked here so
    that a layout it would refuse is copied instead."""
    item = a.dtype.itemsize
    return (a.ctypes.data % item == 0 and (a.shape[2] <= 1 or a.strides[2] == item)
            and all(n <= 1 or (st >= 0 and st % item == 0) for n, st in zip(a.shape[:2], a.strides[:2])))


def recurrent_forward(kernel, cell, x, h0, c0, weights: Weights, reverse, lengths, save, bf16=False, out=None,
                      views=False):
    """The contract's ``recurrent_forward``, computed by ``kernel`` (called with ``bf16=True`` for
    bfloat16 GEMMs, see :mod:`pyrnn.backends.bfloat16`, and ``y=out`` when ``out`` is given).

    ``views``: the kernel reads x and writes hs at any strides between rows, takes one (B, H) cs at
    inference without lengths and keeps no tanh(c_t) for LSTM (the C++ kernels). Then at inference x is
    read in place, ``out``, when given, is hs itself (nothing is written twice) and LSTM keeps only the
    latest c (without lengths); in training too, and the kernel writes a C-order copy of it as it goes (the
    saved x: the backward's GEMMs take its rows as one matrix; a copy before the call, ~0.5 ms of an RNN
    T=100 B=64 I=128 H=256 training step of ~12.7 ms on a Xeon, read x once more and on one thread). Other
    kernels get C-order x always."""
    T, B, _ = x.shape
    x_copy = None  # the C-order x the kernel writes (views, training on a view)
    if not x.flags.c_contiguous:
        if not (views and _rows_readable(x)):
            x = _buffers.copy(x)
        elif save:
            x_copy = _buffers.empty(x.shape, x.dtype)
    workspace = current()
    into_out = views and not save and out is not None
    cache = new_cache(cell, T, B, h0.shape[1], x.dtype, save, workspace, hs=out if into_out else None,
                      latest_c=views and lengths is None, tanh_cs=not views)
    if into_out:
        out = None  # the kernel writes hs there: no second copy
    if T == 0 or B == 0:  # the empty recurrence: the final state is the initial one
        hT, cT = h0.copy(), (None if c0 is None else c0.copy())
    else:
        kernel(CELL_CODES[cell], bool(reverse), x, lengths, (h0, c0), tuple(weights), tuple(cache), **_precision(bf16),
               **({} if out is None else {"y": out}), **({} if x_copy is None else {"x_copy": x_copy}))
        last = 0 if reverse else T - 1  # the last step processed
        cs = cache.cs
        hT, cT = cache.hs[last].copy(), (None if cs is None else (cs[last] if cs.ndim == 3 else cs).copy())
    saved = Saved(cell, bool(reverse), x if x_copy is None else x_copy, h0, c0, cache, lengths, bool(bf16)) if save else None
    if not save:
        give_cache(cache, workspace)
    return (cache.hs if out is None else out), hT, cT, saved


def recurrent_backward(kernel, saved: Saved, weights: Weights, dhs, dhT, dcT, grads: Weights, out=None,
                       views=False):
    """The contract's ``recurrent_backward``, computed by ``kernel``. ``views``: the kernel writes dx at any
    strides between rows (the C++ kernels): then it writes ``out`` itself, when given (a view of a batch-first
    dx, say; its copy was ~0.5 ms of an RNN T=100 B=64 I=128 H=256 training step of ~12.7 ms on a Xeon)."""
    x = saved.x
    T, B, _ = x.shape
    if out is not None:
        check_out(out, x.shape, x.dtype, "(T, B, I)")
    if T == 0 or B == 0:  # the gradient passes straight to the initial state
        return write_out(out, np.zeros_like(x), "(T, B, I)"), dhT.copy(), (None if dcT is None else dcT.copy())
    dh0 = np.empty_like(dhT)
    dx = out if views and out is not None else _buffers.empty_like(x)  # else in recycled memory (pyrnn._buffers)
    dc0 = np.empty_like(dhT) if saved.cell == "lstm" else None
    kernel(CELL_CODES[saved.cell], saved.reverse, x, saved.lengths, (saved.h0, saved.c0), tuple(saved.cache),
           tuple(weights), (dhs, dhT, dcT), tuple(grads), (dx, dh0, dc0), **_precision(saved.bf16))
    give_cache(saved.cache, current())  # spent (the gates hold dA now)
    return write_out(out, dx, "(T, B, I)"), dh0, dc0
