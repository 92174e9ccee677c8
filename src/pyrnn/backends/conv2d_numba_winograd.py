"""Winograd F(2x2, 3x3) for the Numba backend's 3x3 stride-1 convolutions (:mod:`.conv2d_numba`).

Legend: B = batch, H/W = input height/width, C = input channels, O = output channels, HO/WO = output
size, top/left = the zero padding above and left of the input (negative: rows/columns of the input
skipped; the bottom and right follow from HO/WO), th/tw = tiles per column/row (ceil(HO/2), ceil(WO/2)).
A tile is 2x2 output pixels (b, 2ti.., 2tj..), read from the 4x4 input window at (2ti - top, 2tj - left);
xi = 4u + v indexes the 4x4 transform. The same algorithm as the C++ backend (csrc/conv/winograd.inc):

    y_tile = A^T [ U . V ] A   summed over the input channels (per xi: a GEMM of V[xi] and U[xi])
    V = B^T d B,  U = G g G^T
    B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   A^T = [1 1 1 0; 0 1 -1 -1]
    G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]

16 products of inner size C replace 36 per tile (2.25x fewer multiply-adds than im2col + GEMM). The
data gradient of a stride-1 convolution is the convolution of dy by the flipped, transposed kernel
(padding 2 - top, 2 - left), so the same engine serves it (:func:`data_gradient`). The weight gradient
is the adjoint of the products (:func:`weight_gradient`): dU[xi] = sum over the tiles of
V[xi]^T (A g A^T)[xi] (g: the tile's 2x2 block of dy), then dw[o, c] += G^T dU[:, c, o] G.

Three layers, as the rest of the Numba backend: :func:`convolve` and :func:`weight_gradient` allocate
each member's scratch and run the team; ``_convolve_kernel``/``_gradient_kernel`` are the team, a
``prange`` over its members (JIT_PARALLEL, the outermost loop only; the same function compiled without
``parallel`` for one member, ``_numba_config.team_kernels``), each member (``_member``,
``_gradient_member``) a run of chunks of tile lines (b, ti): per chunk the transforms one tile line
at a time (``_input_line``, ``_gradient_line``, ``_output_tile``; the 1-D transforms ``_bt``, ``_at``,
``_a``) and the 16 GEMMs (np.dot: SciPy's BLAS, on one thread per member while the team runs). The
scratch is one chunk's V (16, rows, C) and M or D (16, rows, O) per member (CHUNK_BYTES), rows = the
chunk's tiles: never the batch. Members own whole tiles, so y and dx do not depend on the team size;
dw is summed in at most DW_SLOTS partial sums (and DW_SLOT_BYTES) over fixed runs of chunks, added in
order, so neither does it.
JIT flags come from ``_numba_config``.
"""

from __future__ import annotations

import numba
import numpy as np

from ._numba_config import JIT, run_team, team_kernels, team_size

#: scratch per chunk of tile lines and member, in bytes: V (16, rows, C) and M (16, rows, O) together (at least
#: one line)
CHUNK_BYTES = 1 << 20

#: False: every layer takes the im2col path (benchmarks/conv2d_algorithms.py compares the two)
ENABLED = True

#: the weight gradient's partial sums, each over a fixed run of chunks, at most (see :func:`weight_gradient`), and
#: their bytes at most (for the 512-channel layers: 4 slots of 16 MiB)
DW_SLOTS, DW_SLOT_BYTES = 8, 1 << 26


def fits(w, stride, dilation, groups):
    """Whether Winograd runs this convolution (ncnn's rule, as the C++ backend's): a 3x3 kernel,
    stride 1, no dilation, one group, more than 8 channels in and out (and :data:`ENABLED`). ``w`` (O, C, KH, KW)."""
    O, C, KH, KW = w.shape
    return ENABLED and (KH, KW) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and groups == 1 and C > 8 and O > 8


# U[4a + b, c, o] = (G w[o, c] G^T)[a, b], in float64 then stored in U's dtype; G's rows: g0, (g0 + g1 + g2)/2,
# (g0 - g1 + g2)/2, g2
@numba.njit(**JIT)
def _weights_kernel(w, U):
    gg = np.empty((4, 3))  # G g
    for o in range(w.shape[0]):
        for c in range(w.shape[1]):
            for e in range(3):
                g0, g1, g2 = np.float64(w[o, c, 0, e]), np.float64(w[o, c, 1, e]), np.float64(w[o, c, 2, e])
                gg[0, e], gg[1, e], gg[2, e], gg[3, e] = g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2
            for a in range(4):
                h0, h1, h2 = gg[a, 0], gg[a, 1], gg[a, 2]
                U[4 * a, c, o] = h0
                U[4 * a + 1, c, o] = 0.5 * (h0 + h1 + h2)
                U[4 * a + 2, c, o] = 0.5 * (h0 - h1 + h2)
                U[4 * a + 3, c, o] = h2


# dw[o, c] += (G^T dU[:, c, o] G) (3x3 from 4x4), in float64; G^T's rows: u0 + (u1 + u2)/2, (u1 - u2)/2,
# (u1 + u2)/2 + u3
@numba.njit(**JIT)
def _weight_gradient_transform(dU, dw):
    t = np.empty((3, 4))  # G^T dU
    for o in range(dw.shape[0]):
        for c in range(dw.shape[1]):
            for b in range(4):
                u0, u1, u2, u3 = (np.float64(dU[b, c, o]), np.float64(dU[4 + b, c, o]), np.float64(dU[8 + b, c, o]),
                                  np.float64(dU[12 + b, c, o]))
                t[0, b], t[1, b], t[2, b] = u0 + 0.5 * (u1 + u2), 0.5 * (u1 - u2), 0.5 * (u1 + u2) + u3
            for k in range(3):
                u0, u1, u2, u3 = t[k, 0], t[k, 1], t[k, 2], t[k, 3]
                dw[o, c, k, 0] += u0 + 0.5 * (u1 + u2)
                dw[o, c, k, 1] += 0.5 * (u1 - u2)
                dw[o, c, k, 2] += 0.5 * (u1 + u2) + u3


def weights(w):
    """U[xi, c, o] = (G w[o, c] G^T)[xi]: (16, C, O), in w's dtype (computed in float64)."""
    U = np.empty((16, w.shape[1], w.shape[0]), w.dtype)
    _weights_kernel(w, U)
    return U


# out[k0 + k, r, e0 + e] = (B^T s)[k] for e < n: out[k0] = s0 - s2, out[k0 + 1] = s1 + s2, out[k0 + 2] = s2 - s1,
# out[k0 + 3] = s1 - s3 (s0..s3: four rows of n values)
@numba.njit(**JIT)
def _bt(s0, s1, s2, s3, out, k0, r, e0, n):
    for e in range(n):
        a0, a1, a2, a3 = s0[e], s1[e], s2[e], s3[e]
        out[k0, r, e0 + e] = a0 - a2
        out[k0 + 1, r, e0 + e] = a1 + a2
        out[k0 + 2, r, e0 + e] = a2 - a1
        out[k0 + 3, r, e0 + e] = a1 - a3


# out[k0 + k, r, e] = (A^T s)[k] for e < n: out[k0] = s0 + s1 + s2, out[k0 + 1] = s1 - s2 - s3
@numba.njit(**JIT)
def _at(s0, s1, s2, s3, out, k0, r, n):
    for e in range(n):
        a1, a2 = s1[e], s2[e]
        out[k0, r, e] = s0[e] + a1 + a2
        out[k0 + 1, r, e] = a1 - a2 - s3[e]


# out[k0 + k, r, e] = (A s)[k] for e < n (the adjoint of A^T): out[k0] = s0, out[k0 + 1] = s0 + s1,
# out[k0 + 2] = s0 - s1, out[k0 + 3] = -s1
@numba.njit(**JIT)
def _a(s0, s1, out, k0, r, n):
    for e in range(n):
        a0, a1 = s0[e], s1[e]
        out[k0, r, e] = a0
        out[k0 + 1, r, e] = a0 + a1
        out[k0 + 2, r, e] = a0 - a1
        out[k0 + 3, r, e] = -a1


# V[4k + v, r0 + tj] = (B^T d B)[k, v] for the tiles tj of one tile line, d the 4x4 window of x[b] at input
# rows ih0.. and columns 2tj - left..: B^T down the 4 input rows, the whole line at once, into t
# (4, 1, (2*tw + 2)*C) (t[k, 0, j*C + c]: input column j - left; the columns outside x stay the zeros they
# came in as), then B along each tile's 4 columns of t. x3 is x as (B, H, W*C); zero_row ((2*tw + 2)*C
# zeros) stands for the rows outside x.
@numba.njit(**JIT)
def _input_line(x3, b, ih0, left, zero_row, t, V, r0):
    H, C = x3.shape[1], V.shape[2]
    W, Wt = x3.shape[2] // C, t.shape[2] // C
    j0, j1 = max(0, left), min(Wt, W + left)  # the columns of t inside x
    if j0 < j1:
        n, e0 = (j1 - j0) * C, (j0 - left) * C
        s0 = x3[b, ih0, e0 : e0 + n] if 0 <= ih0 < H else zero_row[:n]
        s1 = x3[b, ih0 + 1, e0 : e0 + n] if 0 <= ih0 + 1 < H else zero_row[:n]
        s2 = x3[b, ih0 + 2, e0 : e0 + n] if 0 <= ih0 + 2 < H else zero_row[:n]
        s3 = x3[b, ih0 + 3, e0 : e0 + n] if 0 <= ih0 + 3 < H else zero_row[:n]
        _bt(s0, s1, s2, s3, t, 0, 0, j0 * C, n)
    for tj in range((Wt - 2) // 2):
        for k in range(4):
            tk = t[k, 0]
            e = 2 * tj * C
            _bt(tk[e : e + C], tk[e + C : e + 2 * C], tk[e + 2 * C : e + 3 * C], tk[e + 3 * C : e + 4 * C], V, 4 * k,
                r0 + tj, 0, C)


# y[b, 2ti + a, 2tj + e] = bias + (A^T M[:, r] A)[a, e] for the pixels of tile (b, ti, tj) inside y: A^T down
# the 4 rows of M[:, r] (4x4 of O values) into s (2, 4, O) (s[a, v]), then A along s's rows into y's line
# (q (2, 1, O) when the tile's last column is outside y)
@numba.njit(**JIT)
def _output_tile(M, r, b, ti, tj, bias, has_bias, s, q, y):
    HO, WO, O = y.shape[1], y.shape[2], y.shape[3]
    for v in range(4):
        _at(M[v, r], M[4 + v, r], M[8 + v, r], M[12 + v, r], s, 0, v, O)
    j = 2 * tj
    for a in range(min(2, HO - 2 * ti)):
        line = y[b, 2 * ti + a]
        if j + 1 < WO:
            _at(s[a, 0], s[a, 1], s[a, 2], s[a, 3], line.reshape(WO, 1, O), j, 0, O)
        else:
            _at(s[a, 0], s[a, 1], s[a, 2], s[a, 3], q, 0, 0, O)
            line[j, :] = q[0, 0]
        if has_bias:
            for e in range(j, min(j + 2, WO)):
                for o in range(O):
                    line[e, o] += bias[o]


# One member's tile lines [l0, l1) = b*th + ti, nl = rows // tw lines at a time: V[:, li*tw + tj] = the transformed
# windows of tile (b, ti, tj) of line l0 + li, M[xi] = V[xi] U[xi] (np.dot: SciPy's BLAS, one thread per
# member), y's pixels from M[:, li*tw + tj]
@numba.njit(**JIT)
def _member(x3, U, top, left, bias, has_bias, th, l0, l1, zero_row, t, V, M, s, q, y):
    tw = (t.shape[2] // V.shape[2] - 2) // 2
    nl = V.shape[1] // tw
    for c0 in range(l0, l1, nl):
        n = min(nl, l1 - c0)
        for li in range(n):
            b, ti = (c0 + li) // th, (c0 + li) % th
            _input_line(x3, b, 2 * ti - top, left, zero_row, t, V, li * tw)
        for xi in range(16):
            np.dot(V[xi], U[xi], M[xi])  # all nl*tw rows: those past n lines are stale and never read
        for li in range(n):
            b, ti = (c0 + li) // th, (c0 + li) % th
            for tj in range(tw):
                _output_tile(M, li * tw + tj, b, ti, tj, bias, has_bias, s, q, y)


# the team: member m of P takes the tile lines [lines*m/P, lines*(m + 1)/P), its own scratch V[m], M[m], t[m],
# s[m], q[m]
def _convolve_kernel(x3, U, top, left, bias, has_bias, th, zero_row, t, V, M, s, q, y):
    P = V.shape[0]
    lines = y.shape[0] * th
    for m in numba.prange(P):
        _member(x3, U, top, left, bias, has_bias, th, lines * m // P, lines * (m + 1) // P, zero_row, t[m], V[m],
                M[m], s[m], q[m], y)


_convolve_team, _convolve_serial = team_kernels(_convolve_kernel)


# D[4k + v, r0 + tj] = (A g A^T)[k, v] for the tiles tj of tile line (b, ti), g the 2x2 block of dy[b] at
# (2ti, 2tj) (zeros outside dy): A down the 2 rows of dy, the whole line at once, into h (4, 1, 2*tw*O) (its
# column past WO stays the zeros it came in as), then A along each tile's 2 columns of h. dy3 is dy as
# (B, HO, WO*O); zero_row (WO*O zeros) stands for a row past HO.
@numba.njit(**JIT)
def _gradient_line(dy3, b, ti, zero_row, h, D, r0):
    HO, O = dy3.shape[1], D.shape[2]
    n = dy3.shape[2]
    _a(dy3[b, 2 * ti], dy3[b, 2 * ti + 1] if 2 * ti + 1 < HO else zero_row, h, 0, 0, n)
    for tj in range(h.shape[2] // (2 * O)):
        for k in range(4):
            hk = h[k, 0]
            e = 2 * tj * O
            _a(hk[e : e + O], hk[e + O : e + 2 * O], D, 4 * k, r0 + tj, O)


# One member's chunks [k0, k1) of nl tile lines: V and D of the chunk's tiles, then
# slots[k // per_slot, xi] += V[xi]^T D[xi] (np.dot: SciPy's BLAS, on one thread)
@numba.njit(**JIT)
def _gradient_member(x3, dy3, top, left, th, nl, k0, k1, per_slot, zero_x, zero_dy, t, h, V, D, prod, slots):
    tw = V.shape[1] // nl
    lines = dy3.shape[0] * th
    for k in range(k0, k1):
        n = min(nl, lines - k * nl)
        for li in range(n):
            b, ti = (k * nl + li) // th, (k * nl + li) % th
            _input_line(x3, b, 2 * ti - top, left, zero_x, t, V, li * tw)
            _gradient_line(dy3, b, ti, zero_dy, h, D, li * tw)
        for xi in range(16):
            np.dot(V[xi, : n * tw].T, D[xi, : n * tw], prod)
            slots[k // per_slot, xi] += prod


# the team: member m of P takes the slots [S*m/P, S*(m + 1)/P) (slot s: the chunks [s*per_slot,
# (s + 1)*per_slot)) and its own scratch; the slots' boundaries do not depend on P, so neither does their sum
def _gradient_kernel(x3, dy3, top, left, th, nl, per_slot, zero_x, zero_dy, t, h, V, D, prod, slots):
    P, S = V.shape[0], slots.shape[0]
    chunks = -(-dy3.shape[0] * th // nl)
    for m in numba.prange(P):
        k0, k1 = S * m // P * per_slot, min(chunks, S * (m + 1) // P * per_slot)
        _gradient_member(x3, dy3, top, left, th, nl, k0, k1, per_slot, zero_x, zero_dy, t[m], h[m], V[m], D[m],
                         prod[m], slots)


_gradient_team, _gradient_serial = team_kernels(_gradient_kernel)


def convolve(x, U, top, left, bias, y):
    """y (B, HO, WO, O) = bias + the convolution of x (B, H, W, C) by the 3x3 kernel whose transform is U
    (16, C, O) (:func:`weights`), x padded by ``top`` rows above and ``left`` columns on the left (negative:
    that many skipped) and by zeros below and right as far as y reaches; bias (O,) or None. Every pixel
    of y is written. Runs on ``pyrnn.get_num_threads()`` Numba threads, each calling the BLAS on one thread."""
    B, H, W, C = x.shape
    _, HO, WO, O = y.shape
    th, tw = (HO + 1) // 2, (WO + 1) // 2
    nl = max(1, CHUNK_BYTES // (tw * 16 * (C + O) * x.itemsize))
    P = team_size(-(-B * th // nl))  # a chunk of lines per member at least
    V, M = np.zeros((P, 16, nl * tw, C), x.dtype), np.zeros((P, 16, nl * tw, O), x.dtype)
    t, zero_row = np.zeros((P, 4, 1, (2 * tw + 2) * C), x.dtype), np.zeros((2 * tw + 2) * C, x.dtype)
    s, q = np.empty((P, 2, 4, O), x.dtype), np.empty((P, 2, 1, O), x.dtype)
    has_bias = bias is not None
    bias = bias if has_bias else zero_row[:O]  # unused without a bias: one compiled signature either way
    run_team(P, _convolve_team, _convolve_serial, x.reshape(B, H, W * C), U, top, left, bias, has_bias, th, zero_row,
             t, V, M, s, q, y)
    return y


def data_gradient(dy, w, top, left, dx):
    """dx (B, H, W, C) = the data gradient of the stride-1 3x3 convolution by w (O, C, 3, 3) with padding
    ``top``/``left`` at dy (B, HO, WO, O): the convolution of dy by w flipped and transposed,
    w'[c, o, kh, kw] = w[o, c, 2 - kh, 2 - kw], with padding 2 - top, 2 - left. Every pixel is written."""
    return convolve(dy, weights(np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))), 2 - top, 2 - left, None, dx)


def weight_gradient(x, dy, top, left, dw):
    """dw (O, C, 3, 3) += the weight gradient of the stride-1 3x3 convolution of x (B, H, W, C) with padding
    ``top``/``left``, at dy (B, HO, WO, O): dU[xi] = sum over the tiles of V[xi]^T (A g A^T)[xi] (the adjoint
    of the forward's product and output transform), then dw[o, c] += G^T dU[:, c, o] G. Summed in at most
    ``DW_SLOTS`` partial sums (of ``DW_SLOT_BYTES`` in all) over fixed runs of chunks, added in order: the same
    bits on any team."""
    B, H, W, C = x.shape
    _, HO, WO, O = dy.shape
    th, tw = (HO + 1) // 2, (WO + 1) // 2
    nl = max(1, CHUNK_BYTES // (tw * 16 * (C + O) * x.itemsize))
    chunks = -(-B * th // nl)
    per_slot = -(-chunks // max(1, min(DW_SLOTS, chunks, DW_SLOT_BYTES // (16 * C * O * x.itemsize))))
    S = -(-chunks // per_slot)
    P = team_size(S)
    V, D = np.zeros((P, 16, nl * tw, C), x.dtype), np.zeros((P, 16, nl * tw, O), x.dtype)
    t, h = np.zeros((P, 4, 1, (2 * tw + 2) * C), x.dtype), np.zeros((P, 4, 1, 2 * tw * O), x.dtype)
    zero_x, zero_dy = np.zeros((2 * tw + 2) * C, x.dtype), np.zeros(WO * O, x.dtype)
    prod, slots = np.empty((P, C, O), x.dtype), np.zeros((S, 16, C, O), x.dtype)
    run_team(P, _gradient_team, _gradient_serial, x.reshape(B, H, W * C), dy.reshape(B, HO, WO * O), top, left, th, nl,
             per_slot, zero_x, zero_dy, t, h, V, D, prod, slots)
    dU = slots[0].copy()
    for s in range(1, S):
        dU += slots[s]
    _weight_gradient_transform(dU, dw)
