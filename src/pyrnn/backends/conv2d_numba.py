"""The Numba backend of the 2-D convolution (contract: :mod:`pyrnn.backends.conv2d_reference`).

Legend: B = batch, H/W = input height/width, C = input channels, O = output channels, G = groups,
Cg = C/G, Og = O/G, KH/KW = kernel size, HO/WO = output size, s = stride, d = dilation,
pt/pl = top/left zero padding. Channels-last (B, H, W, C).

Three layers, as :mod:`pyrnn.backends.conv_numba`: the public functions check (with the
contract's ``check_*``) and allocate; the ``_*_kernel`` functions run the loops; ``_im2col`` and
``_col2im`` do one piece. Convolution is im2col + one GEMM per group (``np.dot``, SciPy's BLAS)
per chunk of output lines (b, i): the columns of group g are ``cols[g]`` (rows, KH*KW*Cg) in
(kh, kw, c) order, so a tap copies one contiguous channel run, and the weight is handed over
packed as ``wk`` (G, KH*KW*Cg, Og). A 1x1 stride-1 unpadded convolution with G = 1 is one GEMM
on x. JIT flags come from ``_numba_config``.
"""

from __future__ import annotations

import numba
import numpy as np

from ._numba_config import JIT
from .contract import Conv2dSaved
from .conv2d_reference import check_conv2d_backward, check_conv2d_forward

#: scratch per chunk of output lines, in elements (at least one line's worth): the im2col columns
#: (G, rows, KH*KW*Cg) and the per-group output/gradient block (rows, Og)
CHUNK_ELEMENTS = 1 << 18


# cols[g, r, (kh*KW + kw)*Cg + c] = xp[b, i*sh + kh*dh, j*sw + kw*dw, g*Cg + c] for r = (l - l0)*WO + j,
# output line l = b*HO + i in [l0, l0 + n); 0 where the tap is padding
@numba.njit(**JIT)
def _im2col(x, l0, n, HO, WO, KH, KW, sh, sw, pt, pl, dh, dw, cols):
    H, W, C = x.shape[1], x.shape[2], x.shape[3]
    G = cols.shape[0]
    Cg = C // G
    for li in range(n):
        b, i = (l0 + li) // HO, (l0 + li) % HO
        for j in range(WO):
            r = li * WO + j
            for kh in range(KH):
                ih = i * sh + kh * dh - pt
                for kw in range(KW):
                    iw = j * sw + kw * dw - pl
                    k0 = (kh * KW + kw) * Cg
                    inside = 0 <= ih < H and 0 <= iw < W
                    for g in range(G):
                        for c in range(Cg):
                            cols[g, r, k0 + c] = x[b, ih, iw, g * Cg + c] if inside else 0.0


# dx[b, i*sh + kh*dh - pt, j*sw + kw*dw - pl, g*Cg + c] += dcols[g, r, (kh*KW + kw)*Cg + c] for the taps
# inside x (the transpose of _im2col)
@numba.njit(**JIT)
def _col2im(dcols, l0, n, HO, WO, KH, KW, sh, sw, pt, pl, dh, dw, dx):
    H, W, C = dx.shape[1], dx.shape[2], dx.shape[3]
    G = dcols.shape[0]
    Cg = C // G
    for li in range(n):
        b, i = (l0 + li) // HO, (l0 + li) % HO
        for j in range(WO):
            r = li * WO + j
            for kh in range(KH):
                ih = i * sh + kh * dh - pt
                if not 0 <= ih < H:
                    continue
                for kw in range(KW):
                    iw = j * sw + kw * dw - pl
                    if not 0 <= iw < W:
                        continue
                    k0 = (kh * KW + kw) * Cg
                    for g in range(G):
                        for c in range(Cg):
                            dx[b, ih, iw, g * Cg + c] += dcols[g, r, k0 + c]


# y[rows, group g] = cols[g] @ wk[g] (+ bias), one chunk of nl output lines at a time
@numba.njit(**JIT)
def _conv2d_forward_kernel(x, wk, bias, has_bias, geometry, nl, pointwise, y2):
    """x (B, H, W, C); wk (G, KH*KW*Cg, Og); y2 (B*HO*WO, O) written."""
    HO, WO, KH, KW, sh, sw, pt, pl, dh, dw = geometry
    G, KKCg, Og = wk.shape
    lines = y2.shape[0] // WO
    if pointwise:  # G = 1: the pixels of x are the rows of y
        np.dot(x.reshape(y2.shape[0], x.shape[3]), wk[0], y2)
    else:
        cols = np.empty((G, nl * WO, KKCg), x.dtype)
        part = np.empty((nl * WO, Og), x.dtype)
        for l0 in range(0, lines, nl):
            n = min(nl, lines - l0)
            rows = n * WO
            _im2col(x, l0, n, HO, WO, KH, KW, sh, sw, pt, pl, dh, dw, cols)
            for g in range(G):
                if G == 1:
                    np.dot(cols[0][:rows], wk[0], y2[l0 * WO : l0 * WO + rows])
                else:
                    np.dot(cols[g][:rows], wk[g], part[:rows])
                    y2[l0 * WO : l0 * WO + rows, g * Og : (g + 1) * Og] = part[:rows]
    if has_bias:
        for r in range(y2.shape[0]):
            y2[r] += bias


# per chunk: dwk[g] += cols[g]^T dy_g;  dcols[g] = dy_g wk[g]^T, scattered back by _col2im
@numba.njit(**JIT)
def _conv2d_backward_kernel(x, wk, dy2, geometry, nl, pointwise, want_dw, dwk, dx):
    """wk (G, KH*KW*Cg, Og); dy2 (B*HO*WO, O); dwk added into when want_dw; dx (B, H, W, C) zeros in,
    added into when it has any element (a size-0 dx: not wanted)."""
    HO, WO, KH, KW, sh, sw, pt, pl, dh, dw = geometry
    G, KKCg, Og = wk.shape
    lines = dy2.shape[0] // WO
    want_dx = dx.size > 0
    if pointwise:  # G = 1
        if want_dw:
            dwk[0] += np.dot(x.reshape(dy2.shape[0], x.shape[3]).T, dy2)
        if want_dx:
            np.dot(dy2, wk[0].T, dx.reshape(dy2.shape[0], dx.shape[3]))
        return
    cols = np.empty((G, nl * WO, KKCg), wk.dtype)
    dcols = np.empty((G, nl * WO, KKCg), wk.dtype)
    g_dy = np.empty((nl * WO, Og), wk.dtype)
    for l0 in range(0, lines, nl):
        n = min(nl, lines - l0)
        rows = n * WO
        if want_dw:
            _im2col(x, l0, n, HO, WO, KH, KW, sh, sw, pt, pl, dh, dw, cols)
        for g in range(G):
            g_dy[:rows] = dy2[l0 * WO : l0 * WO + rows, g * Og : (g + 1) * Og]
            if want_dw:
                dwk[g] += np.dot(cols[g][:rows].T, g_dy[:rows])
            if want_dx:
                np.dot(g_dy[:rows], wk[g].T, dcols[g][:rows])
        if want_dx:
            _col2im(dcols, l0, n, HO, WO, KH, KW, sh, sw, pt, pl, dh, dw, dx)


def _packed(w, groups):
    """wk[g, (kh*KW + kw)*Cg + c, o] = w[g*Og + o, c, kh, kw]: (G, KH*KW*Cg, Og)."""
    O, Cg, KH, KW = w.shape
    wk = w.reshape(groups, O // groups, Cg, KH, KW).transpose(0, 3, 4, 2, 1)
    return np.ascontiguousarray(wk.reshape(groups, KH * KW * Cg, O // groups))


def _plan(x_shape, w, stride, padding, dilation, groups, out_hw):
    """(geometry, nl, pointwise): the kernels' integer arguments; nl output lines per chunk keep the
    larger scratch array, the columns (G * KH*KW*Cg per row) or a group's block (Og per row), within
    CHUNK_ELEMENTS (a huge Og sized only by the columns once asked for 128 GiB)."""
    O, Cg, KH, KW = w.shape
    pointwise = (KH, KW, stride, padding, groups) == (1, 1, (1, 1), (0, 0, 0, 0), 1)
    per_line = max(1, out_hw[1] * max(KH * KW * Cg * groups, O // groups))
    nl = max(1, CHUNK_ELEMENTS // per_line)
    geometry = (out_hw[0], out_hw[1], KH, KW, stride[0], stride[1], padding[0], padding[2], dilation[0], dilation[1])
    return geometry, nl, pointwise


def conv2d_forward(x, w, b, stride, padding, dilation, groups):
    """See :mod:`pyrnn.backends.conv2d_reference`."""
    (stride, padding, dilation, groups), y_shape = check_conv2d_forward(x, w, b, stride, padding, dilation, groups)
    saved = Conv2dSaved(x, x.shape, w, stride, padding, dilation, groups)
    y = np.zeros(y_shape, x.dtype)
    if y.size == 0 or x.shape[3] == 0:  # no taps: only the bias
        if b is not None:
            y += b
        return y, saved
    geometry, nl, pointwise = _plan(x.shape, w, stride, padding, dilation, groups, y_shape[1:3])
    bias = y[0, 0, 0] if b is None else b  # unused when has_bias is False: one compiled signature either way
    _conv2d_forward_kernel(x, _packed(w, groups), bias, b is not None, geometry, nl, pointwise, y.reshape(-1, y_shape[3]))
    return y, saved


def conv2d_backward(saved, dy, dw, db, need_dx=True):
    """See :mod:`pyrnn.backends.conv2d_reference`."""
    (stride, padding, dilation, groups), (B, HO, WO, O) = check_conv2d_backward(saved, dy, dw, db, need_dx)
    w = saved.w
    dx = np.zeros(saved.x_shape, w.dtype) if need_dx else None
    if db is not None:
        db += dy.sum(axis=(0, 1, 2))
    if dy.size == 0 or saved.x_shape[3] == 0 or (dw is None and dx is None):
        return dx
    geometry, nl, pointwise = _plan(saved.x_shape, w, stride, padding, dilation, groups, (HO, WO))
    wk = _packed(w, groups)
    dwk = np.zeros_like(wk)
    x = saved.x if dw is not None else np.zeros((1, 1, 1, 1), w.dtype)  # a placeholder: not read without dw
    sink = dx if dx is not None else np.zeros((0, 1, 1, 1), w.dtype)  # size 0: dx not wanted
    _conv2d_backward_kernel(x, wk, dy.reshape(B * HO * WO, O), geometry, nl, pointwise, dw is not None, dwk, sink)
    if dw is not None:
        Og, (Cg, KH, KW) = O // groups, w.shape[1:]
        dw += dwk.reshape(groups, KH, KW, Cg, Og).transpose(0, 4, 3, 1, 2).reshape(w.shape)
    return dx
