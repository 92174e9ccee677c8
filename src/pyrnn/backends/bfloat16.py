"""bfloat16 mixed precision: the readable specification of ``dtype="bfloat16"``.

bfloat16 (bf16) is float32 with the low 16 bits of the mantissa dropped: the same 8-bit exponent
(so the same range), a 7-bit stored mantissa (an 8-bit significand with the implicit one). Rounding
a float32 to the nearest bf16 (ties to even) has a relative error of at most ``U = 2**-8``: the
spacing of bf16 in [1, 2) is 2**-7 and the error at most half of it (2**-9 holds only near the top
of each binade; 1 + 2**-8 - 2**-16 rounds to 1 with a relative error just under 2**-8).

What a layer with ``dtype="bfloat16"`` computes (mixed precision, as ``torch.autocast("cpu",
dtype=torch.bfloat16)`` does for its matrix products):

- inputs, outputs, parameters, gradients and every state stay float32 NumPy arrays (float32 master
  weights: ``state_dict``, optimizers and checkpoints are those of a float32 layer);
- every matrix product (GEMM) takes its two operands rounded to bf16 and sums in float32:
  ``bf16_matmul(a, b) = round_bf16(a) @ round_bf16(b)`` with float32 accumulation;
- everything else (biases, activations, the LSTM cell state, the pointwise steps) is float32.

Backward follows the same rule (the backward of a bf16 matrix product is bf16 matrix products,
as in autocast): each of its GEMMs (dx = dA W, dW = dA^T x, and the recurrent dh = dA_hh W_hh)
takes bf16-rounded operands with float32 sums; the bias gradients are float32 sums of the
unrounded float32 gradients.

Error bound used by the tests: with ``a' = a (1 + e1)``, ``b' = b (1 + e2)``, ``|e| <= U``,
``|a'b' - ab| <= (2U + U^2) |a||b|``, and a float32 sum of K such exact products adds at most
``gamma_K = K u / (1 - K u)``, u = 2**-24, relative to ``sum |a'||b'|``; so

    |bf16_matmul(a, b) - a @ b| <= ((2U + U^2) + gamma_K (1 + U)^2) (|a| @ |b|)     elementwise.

The compiled kernels compute the same products: with ``TDPBF16PS`` on AMX tiles where the CPU has
AMX-BF16 and the OS grants the tiles, with ``VDPBF16PS`` (AVX512-BF16) where the CPU has it, else by a
float32 emulation of the same rounding (``round_bf16`` then float32 multiply-adds); all flush denormals,
as every kernel of the library does (``pyrnn._C.bf16_path()`` names the one in use).
"""

from __future__ import annotations

import numpy as np

#: the unit roundoff of bf16: the bound on the relative error of rounding a float32 to it
UNIT_ROUNDOFF = 2.0**-8

#: the unit roundoff of float32
FLOAT32_ROUNDOFF = 2.0**-24


def round_bf16(a):
    """float32 ``a`` rounded to the nearest bfloat16 (ties to even), returned as float32.

    Infinities stay infinite, NaN stays NaN, values beyond bf16's largest finite value round to
    infinity, as IEEE rounding does."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    u = a.view(np.uint32)
    # add 0x7FFF plus the lowest kept bit (ties to even), then drop the low 16 bits
    r = ((u + (((u >> 16) & 1) + np.uint32(0x7FFF))) & np.uint32(0xFFFF0000)).view(np.float32)
    return np.where(np.isnan(a), a, r)


def bf16_matmul(a, b):
    """``a @ b`` with both operands rounded to bfloat16 and float32 sums (the bf16 GEMM)."""
    return round_bf16(a) @ round_bf16(b)


def matmul(a, b, trans_a=False, trans_b=False):
    """``op(a) @ op(b)`` of float32 2-D arrays as the bf16 GEMM (op = transpose where asked): with the cpp
    backend the compiled one (``pyrnn._C.matmul_bf16``: TDPBF16PS, VDPBF16PS or their float32 emulation, one thread),
    else :func:`bf16_matmul` in NumPy. Dense's products with ``dtype="bfloat16"``."""
    from . import get_backend

    if get_backend() == "cpp":
        from .. import _C

        return _C.matmul_bf16(np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32), trans_a, trans_b)
    return bf16_matmul(a.T if trans_a else a, b.T if trans_b else b)


def matmul_error_bound(a, b):
    """The elementwise bound on ``|bf16_matmul(a, b) - a @ b|`` (float64; see the module docstring)."""
    K = a.shape[-1]
    U, u = UNIT_ROUNDOFF, FLOAT32_ROUNDOFF
    gamma = K * u / (1 - K * u)
    return ((2 * U + U * U) + gamma * (1 + U) ** 2) * (np.abs(np.asarray(a, np.float64)) @ np.abs(np.asarray(b, np.float64)))
