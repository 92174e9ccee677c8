"""The C++ backend: the Python side of ``pyrnn._C`` (the kernels live in ``csrc/``).

Legend: T = time, B = batch, I = input, H = hidden, G = gates. Contract:
:mod:`pyrnn.backends.contract`. The kernel entry points are ``_C.recurrent_forward`` and
``_C.recurrent_backward`` themselves (they check every argument, release the GIL and stop on
Ctrl-C); :mod:`pyrnn.backends.driver` allocates around them. This module also registers the
kernels' BLAS at import.
"""

from __future__ import annotations

import os
import warnings

from .. import _C
from . import driver
from .contract import Saved, Weights

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


def recurrent_forward(cell, x, h0, c0, weights: Weights, reverse=False, lengths=None, save=True, bf16=False, out=None):
    """See :mod:`pyrnn.backends.contract`; ``save=False`` keeps no cache (inference); ``bf16``: the
    GEMMs in bfloat16 (``TDPBF16PS`` where the CPU has AMX-BF16, ``VDPBF16PS`` where it has
    AVX512-BF16, else their float32 emulation)."""
    return driver.recurrent_forward(_C.recurrent_forward, cell, x, h0, c0, weights, reverse, lengths, save, bf16, out,
                                    views=True)


def recurrent_backward(saved: Saved, weights: Weights, dhs, dhT, dcT, grads: Weights, out=None):
    """See :mod:`pyrnn.backends.contract`. Overwrites ``saved``'s gates with dA (one backward per forward);
    writes dx into ``out`` in place, at its strides."""
    return driver.recurrent_backward(_C.recurrent_backward, saved, weights, dhs, dhT, dcT, grads, out, views=True)


from .activation_cpp import activation_backward, activation_forward  # noqa: E402,F401
from .concat_cpp import concat_last, split_last  # noqa: E402,F401
from .conv2d_cpp import conv2d_backward, conv2d_forward  # noqa: E402,F401
from .conv_cpp import conv1d_backward, conv1d_forward, pool1d_backward, pool1d_forward  # noqa: E402,F401
from .norm_cpp import (  # noqa: E402,F401
    batchnorm_backward,
    batchnorm_forward,
    batchnorm_relu_backward,
    batchnorm_relu_forward,
)
from .pool2d_cpp import pool2d_backward, pool2d_forward, upsample2d_backward, upsample2d_forward  # noqa: E402,F401
