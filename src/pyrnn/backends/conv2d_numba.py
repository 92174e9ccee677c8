"""The Numba backend of the 2-D convolution (contract: :mod:`pyrnn.backends.conv2d_reference`).

Legend: B = batch, H/W = input height/width, C = input channels, O = output channels, G = groups,
Cg = C/G, Og = O/G, KH/KW = kernel size, HO/WO = output size, s = stride, d = dilation,
pt/pl = top/left zero padding. Channels-last (B, H, W, C).

Three layers, as :mod:`pyrnn.backends.conv_numba`: the public functions check (with the
contract's ``check_*``) and allocate; the ``_*_chunks`` functions run the chunks; the compiled
``_im2col`` and ``_col2im`` do one piece each. Convolution is im2col + one GEMM per group
(``np.dot``: NumPy's OpenBLAS, called from Python between the compiled pieces, see
``_conv2d_forward_chunks``) per chunk of output lines (b, i): the columns of group g are ``cols[g]`` (rows, KH*KW*Cg) in
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

#: im2col scratch per chunk of output lines, in elements (at least one line's worth)
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


# y[rows, group g] = cols[g] @ wk[g] (+ bias), one chunk of nl output lines at a time. The GEMMs are
# NumPy's (its OpenBLAS), called between the compiled im2col of each chunk: np.dot inside nopython code
# goes to SciPy's OpenBLAS, a second thread pool that ran this loop 4x slower here (benchmarks/README.md).
def _conv2d_forward_chunks(x, wk, bias, geometry, nl, pointwise, y2):
    """x (B, H, W, C); wk (G, KH*KW*Cg, Og); y2 (B*HO*WO, O) written; bias (O,) or None."""
    HO, WO, KH, KW, sh, sw, pt, pl, dh, dw = geometry
    G, KKCg, Og = wk.shape
    lines = y2.shape[0] // WO
    if pointwise:  # G = 1: the pixels of x are the rows of y
        np.dot(x.reshape(y2.shape[0], x.shape[3]), wk[0], y2)
    else:
        cols = np.empty((G, nl * WO, KKCg), x.dtype)
        for l0 in range(0, lines, nl):
            n = min(nl, lines - l0)
            rows = n * WO
            _im2col(x, l0, n, HO, WO, KH, KW, sh, sw, pt, pl, dh, dw, cols)
            out = y2[l0 * WO : l0 * WO + rows]
            if G == 1:
                np.dot(cols[0, :rows], wk[0], out)
            else:
                for g in range(G):
                    out[:, g * Og : (g + 1) * Og] = cols[g, :rows] @ wk[g]
    if bias is not None:
        y2 += bias


# per chunk: dwk[g] += cols[g]^T dy_g;  dcols[g] = dy_g wk[g]^T, scattered back by _col2im
def _conv2d_backward_chunks(x, wk, dy2, geometry, nl, pointwise, dwk, dx):
    """wk (G, KH*KW*Cg, Og); dy2 (B*HO*WO, O); dwk added into unless None; dx (B, H, W, C) zeros in,
    added into, or None (not wanted)."""
    HO, WO, KH, KW, sh, sw, pt, pl, dh, dw = geometry
    G, KKCg, Og = wk.shape
    lines = dy2.shape[0] // WO
    if pointwise:  # G = 1
        if dwk is not None:
            dwk[0] += x.reshape(dy2.shape[0], x.shape[3]).T @ dy2
        if dx is not None:
            np.dot(dy2, wk[0].T, dx.reshape(dy2.shape[0], dx.shape[3]))
        return
    cols = np.empty((G, nl * WO, KKCg), wk.dtype) if dwk is not None else None
    dcols = np.empty((G, nl * WO, KKCg), wk.dtype) if dx is not None else None
    for l0 in range(0, lines, nl):
        n = min(nl, lines - l0)
        rows = n * WO
        if dwk is not None:
            _im2col(x, l0, n, HO, WO, KH, KW, sh, sw, pt, pl, dh, dw, cols)
        for g in range(G):
            g_dy = dy2[l0 * WO : l0 * WO + rows, g * Og : (g + 1) * Og]
            if dwk is not None:
                dwk[g] += cols[g, :rows].T @ g_dy
            if dx is not None:
                np.dot(g_dy, wk[g].T, dcols[g, :rows])
        if dx is not None:
            _col2im(dcols, l0, n, HO, WO, KH, KW, sh, sw, pt, pl, dh, dw, dx)


def _packed(w, groups):
    """wk[g, (kh*KW + kw)*Cg + c, o] = w[g*Og + o, c, kh, kw]: (G, KH*KW*Cg, Og)."""
    O, Cg, KH, KW = w.shape
    wk = w.reshape(groups, O // groups, Cg, KH, KW).transpose(0, 3, 4, 2, 1)
    return np.ascontiguousarray(wk.reshape(groups, KH * KW * Cg, O // groups))


def _plan(x_shape, w, stride, padding, dilation, groups, out_hw):
    """(geometry, nl, pointwise): the kernels' integer arguments."""
    _, KH, KW = w.shape[1:]
    pointwise = (KH, KW, stride, padding, groups) == (1, 1, (1, 1), (0, 0, 0, 0), 1)
    per_line = max(1, out_hw[1] * KH * KW * w.shape[1] * groups)
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
    _conv2d_forward_chunks(x, _packed(w, groups), b, geometry, nl, pointwise, y.reshape(-1, y_shape[3]))
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
    dwk = np.zeros_like(wk) if dw is not None else None
    _conv2d_backward_chunks(saved.x, wk, dy.reshape(B * HO * WO, O), geometry, nl, pointwise, dwk, dx)
    if dw is not None:
        Og, (Cg, KH, KW) = O // groups, w.shape[1:]
        dw += dwk.reshape(groups, KH, KW, Cg, Og).transpose(0, 4, 3, 1, 2).reshape(w.shape)
    return dx
