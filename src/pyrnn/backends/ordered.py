"""Matrix products whose sums do not depend on the BLAS's thread count.

OpenBLAS (0.3.31, SkylakeX kernels, as NumPy ships it) sums a GEMM's reduction axis K in blocks,
and when K is not a multiple of 32 the multi-threaded driver cuts those blocks elsewhere than
the single-threaded one: the same product differs in the last bits between 1 and 2 threads.
Weight gradients reduce over samples (and time steps, pixels), so a partial last batch
(N = 500, batch 64: 52 x T rows) made training depend on the thread count. :func:`matmul`
multiplies the largest multiple of 32 of K in one call and the remainder (< 32, one block) in
a second, added in that order: bitwise the same result for any thread count (checked for
float32/float64 and shapes from 8 x 8 to 2048 x 512, K up to 6401). The C++ kernels' gemm()
does the same (csrc/common/gemm.cpp). When K is a multiple of 32 or below it, it is one call.
"""

from __future__ import annotations

#: the K-blocking unit the thread-count-independent split follows
K_UNIT = 32


def matmul(a, b, out=None):
    """``a @ b`` for 2-D ``a`` (M, K) and ``b`` (K, N), summed over K in an order that does not
    depend on the BLAS's thread count (see the module docstring). ``out``: add into it instead."""
    K = a.shape[1]
    r = K % K_UNIT
    if r == 0 or K < K_UNIT:
        prod = a @ b
    else:
        prod = a[:, : K - r] @ b[: K - r]
        prod += a[:, K - r :] @ b[K - r :]
    if out is None:
        return prod
    out += prod
    return out
