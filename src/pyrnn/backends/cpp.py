"""The C++ backend: the Python side of ``pyrnn._C`` (the kernels live in ``csrc/``).

Legend: T = time, B = batch, I = input, H = hidden, G = gates per unit.
This module allocates the outputs and the cache, hands everything to the
compiled kernels (which check every shape again and release the GIL), and
registers SciPy's BLAS ``sgemm``/``dgemm`` as the kernels' GEMM.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from .. import _C
from .contract import CELL_CODES, Saved, Weights, cache_shapes, empty_backward, empty_forward, kernel_views

NAME = "cpp"


def register_blas():
    """Give the kernels a BLAS: NumPy's bundled OpenBLAS (ILP64) when it exports its GEMMs,
    so NumPy's own matmuls and the kernels share one thread pool; else SciPy's (the
    cython_blas capsules); else the kernels' own loop GEMM (correct, slow)."""
    try:
        from scipy.linalg import cython_blas
    except ImportError as exc:
        cython_blas = None
        scipy_error = exc
    if cython_blas is not None:
        capi = cython_blas.__pyx_capi__
        _C.set_blas(capi["sgemm"], capi["dgemm"])
    numpy_gemm = _numpy_openblas_gemm()
    if numpy_gemm is not None:
        _C._set_blas64(*numpy_gemm[:2])
        _C._set_blas_threads(*numpy_gemm[2:])
    elif cython_blas is None:
        warnings.warn(f"pyrnn: SciPy is missing ({scipy_error}); the cpp backend falls back to a slow loop GEMM",
                      RuntimeWarning, stacklevel=2)


def _numpy_openblas_gemm():
    """Addresses of sgemm/dgemm (64-bit integers) in the OpenBLAS NumPy loaded, and of its
    get/set_num_threads (0, 0 where it has none), or None. While the kernels' own thread team
    runs, each member calls this BLAS single-threaded on its slice (see csrc/common/gemm.h)."""
    import ctypes

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    for lib in threadpool_info():
        path = lib.get("filepath", "")
        if lib.get("internal_api") != "openblas" or "numpy" not in os.path.basename(os.path.dirname(path)):
            continue
        dll = ctypes.CDLL(path)
        for s_name, d_name in (("scipy_sgemm_64_", "scipy_dgemm_64_"), ("sgemm_64_", "dgemm_64_")):
            s, d = getattr(dll, s_name, None), getattr(dll, d_name, None)
            if s is not None and d is not None:
                threads = (0, 0)
                for prefix in ("scipy_openblas_", "openblas_"):
                    get = getattr(dll, prefix + "get_num_threads64_", None)
                    put = getattr(dll, prefix + "set_num_threads64_", None)
                    if get is not None and put is not None:
                        threads = (ctypes.cast(get, ctypes.c_void_p).value, ctypes.cast(put, ctypes.c_void_p).value)
                        break
                return (ctypes.cast(s, ctypes.c_void_p).value, ctypes.cast(d, ctypes.c_void_p).value) + threads
    return None

register_blas()


def recurrent_forward(cell, x, h0, c0, weights: Weights, reverse=False, lengths=None, save=True):
    """See :mod:`pyrnn.backends.contract`; ``save=False`` keeps no cache (inference)."""
    if x.size == 0:
        return empty_forward(cell, x, h0, c0, reverse, lengths)
    T, B, _ = x.shape
    H = h0.shape[1]
    hs = np.empty((T, B, H), x.dtype)
    if save:
        cache = tuple(np.empty(s, x.dtype) for s in cache_shapes(cell, T, B, H))
        out = kernel_views(cell, hs, cache)
    else:  # the cell state sequence is still the kernel's working state; the gates are not kept
        cache = ()
        out = (hs, np.empty((T, B, H), x.dtype) if cell == "lstm" else None, None, None, None)
    _C.recurrent_forward(CELL_CODES[cell], bool(reverse), x, lengths, (h0, c0), tuple(weights), out)
    last = 0 if reverse else T - 1
    cT = out[1][last].copy() if cell == "lstm" else None
    saved = Saved(cell, bool(reverse), x, h0, c0, hs, cache, lengths) if save else None
    return hs, hs[last].copy(), cT, saved


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
