"""The C++ backend: the Python side of ``pyrnn._C`` (the kernels live in ``csrc/``).

Legend: T = time, B = batch, I = input, H = hidden, G = gates per unit.
This module allocates the outputs and the cache, hands everything to the
compiled kernels (which check every shape again and release the GIL), and
registers SciPy's BLAS ``sgemm``/``dgemm`` as the kernels' GEMM.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import _C
from .contract import CELL_CODES, Saved, Weights, cache_shapes, empty_backward, empty_forward, kernel_views

NAME = "cpp"


def register_blas():
    """Give the kernels SciPy's BLAS (the OpenBLAS NumPy and SciPy ship) as their GEMM."""
    try:
        from scipy.linalg import cython_blas
    except ImportError as exc:  # correct but slow: the kernels' own loop GEMM
        warnings.warn(f"pyrnn: SciPy is missing ({exc}); the cpp backend falls back to a slow loop GEMM", RuntimeWarning, stacklevel=2)
        return
    capi = cython_blas.__pyx_capi__
    _C.set_blas(capi["sgemm"], capi["dgemm"])


register_blas()


def recurrent_forward(cell, x, h0, c0, weights: Weights, reverse=False, lengths=None):
    """See :mod:`pyrnn.backends.contract`."""
    if x.size == 0:
        return empty_forward(cell, x, h0, c0, reverse, lengths)
    T, B, _ = x.shape
    H = h0.shape[1]
    hs = np.empty((T, B, H), x.dtype)
    cache = tuple(np.empty(s, x.dtype) for s in cache_shapes(cell, T, B, H))
    out = kernel_views(cell, hs, cache)
    _C.recurrent_forward(CELL_CODES[cell], bool(reverse), x, lengths, (h0, c0), tuple(weights), out)
    last = 0 if reverse else T - 1
    cT = out[1][last].copy() if cell == "lstm" else None
    return hs, hs[last].copy(), cT, Saved(cell, bool(reverse), x, h0, c0, hs, cache, lengths)


def recurrent_backward(saved: Saved, weights: Weights, dhs, dhT, dcT, grads: Weights):
    """See :mod:`pyrnn.backends.contract`."""
    if saved.x.size == 0:
        return empty_backward(saved, dhT, dcT)
    cell, x = saved.cell, saved.x
    cache = kernel_views(cell, saved.hs, saved.cache)
    dx = np.empty_like(x)
    dh0 = np.empty_like(dhT)
    dc0 = np.empty_like(dhT) if cell == "lstm" else None
    _C.recurrent_backward(
        CELL_CODES[cell], saved.reverse, x, saved.lengths, (saved.h0, saved.c0), cache, tuple(weights),
        (dhs, dhT, dcT), tuple(grads), (dx, dh0, dc0),
    )
    return dx, dh0, dc0

from .conv_cpp import conv1d_backward, conv1d_forward, pool1d_backward, pool1d_forward  # noqa: E402,F401
