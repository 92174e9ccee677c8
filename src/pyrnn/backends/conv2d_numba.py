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
on x. A depthwise convolution (one input channel per group, G > 1; output channel o reads input
channel o // m, m = Og) is a direct loop over the taps instead, vectorised over the channels
(``_depthwise_*``, as the C++ backend's): as G GEMMs of inner size KH*KW it would spend its time in
calls. Its weight is handed over as ``wt`` (KH*KW, O), ``wt[kh*KW + kw, o] = w[o, 0, kh, kw]``.

A 3x3 stride-1 convolution with one group and more than 8 channels in and out (the C++ backend's rule)
runs Winograd F(2x2, 3x3) instead, forward, dx and dw, on a Numba team (:mod:`.conv2d_numba_winograd`).
JIT flags come from ``_numba_config``.
"""

from __future__ import annotations

import numba
import numpy as np

from . import conv2d_numba_winograd as winograd
from . import ordered
from ._numba_config import JIT
from .contract import Conv2dSaved
from .conv2d_reference import activate, check_conv2d_backward, check_conv2d_forward

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
            ordered.matmul(x.reshape(dy2.shape[0], x.shape[3]).T, dy2, out=dwk[0])  # thread-count independent sums
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
                ordered.matmul(cols[g, :rows].T, g_dy, out=dwk[g])
            if dx is not None:
                np.dot(g_dy, wk[g].T, dcols[g, :rows])
        if dx is not None:
            _col2im(dcols, l0, n, HO, WO, KH, KW, sh, sw, pt, pl, dh, dw, dx)


# acc[o] += wt[kh*KW + kw, o] * x[b, ih, iw, o] for every tap (ih, iw) of output pixel (b, i, j) inside x
@numba.njit(**JIT)
def _depthwise_pixel_forward(x, b, i, j, wt, KW, sh, sw, pt, pl, dh, dw, acc):
    H, W = x.shape[1], x.shape[2]
    for k in range(wt.shape[0]):
        ih, iw = i * sh + (k // KW) * dh - pt, j * sw + (k % KW) * dw - pl
        if 0 <= ih < H and 0 <= iw < W:
            xr, wr = x[b, ih, iw], wt[k]
            for o in range(acc.shape[0]):
                acc[o] += wr[o] * xr[o]


# for every tap (ih, iw) of output pixel (b, i, j) inside the (H, W) image, g = dy[b, i, j]:
# dx[b, ih, iw, o] += g[o] wt[tap, o] (want_dx);  dwt[tap, o] += g[o] x[b, ih, iw, o] (want_dw)
@numba.njit(**JIT)
def _depthwise_pixel_backward(x, b, i, j, g, wt, H, W, KW, sh, sw, pt, pl, dh, dw, want_dx, want_dw, dx, dwt):
    for k in range(wt.shape[0]):
        ih, iw = i * sh + (k // KW) * dh - pt, j * sw + (k % KW) * dw - pl
        if not (0 <= ih < H and 0 <= iw < W):
            continue
        if want_dx:
            dxr, wr = dx[b, ih, iw], wt[k]
            for o in range(g.shape[0]):
                dxr[o] += g[o] * wr[o]
        if want_dw:
            xr, dwr = x[b, ih, iw], dwt[k]
            for o in range(g.shape[0]):
                dwr[o] += g[o] * xr[o]


# y[b, i, j] = bias + the taps of (b, i, j), one output pixel at a time
@numba.njit(**JIT)
def _depthwise_forward_kernel(x, wt, bias, has_bias, geometry, y):
    """x (B, H, W, O): the input, its channels repeated m times; wt (KH*KW, O); y (B, HO, WO, O) zeros in."""
    HO, WO, KH, KW, sh, sw, pt, pl, dh, dw = geometry
    for b in range(x.shape[0]):
        for i in range(HO):
            for j in range(WO):
                acc = y[b, i, j]
                if has_bias:
                    acc[:] = bias
                _depthwise_pixel_forward(x, b, i, j, wt, KW, sh, sw, pt, pl, dh, dw, acc)


# the taps of every output pixel (b, i, j): dx and dwt, one output pixel at a time
@numba.njit(**JIT)
def _depthwise_backward_kernel(x, wt, dy, geometry, want_dw, dwt, dx):
    """wt (KH*KW, O); dy (B, HO, WO, O); x (B, H, W, O) the input with its channels repeated m times when
    want_dw (dwt (KH*KW, O) is then added into), else a placeholder; dx (B, H, W, O) zeros in, added into when it
    has any element (a size-0 dx: not wanted)."""
    HO, WO, KH, KW, sh, sw, pt, pl, dh, dw = geometry
    want_dx = dx.size > 0
    image = dx if want_dx else x
    H, W = image.shape[1], image.shape[2]
    for b in range(dy.shape[0]):
        for i in range(HO):
            for j in range(WO):
                _depthwise_pixel_backward(x, b, i, j, dy[b, i, j], wt, H, W, KW, sh, sw, pt, pl, dh, dw, want_dx,
                                          want_dw, dx, dwt)


def _taps(w):
    """wt[kh*KW + kw, o] = w[o, 0, kh, kw]: (KH*KW, O)."""
    return np.ascontiguousarray(w.reshape(w.shape[0], -1).T)


def _depthwise(w, groups):
    """Whether the convolution is depthwise: one input channel per group, more than one group."""
    return w.shape[1] == 1 and groups > 1


def _repeated(x, m):
    """x with each channel repeated m times, (B, H, W, C*m): output channel o of a depthwise convolution with
    multiplier m reads input channel o // m, so on this the convolution is one of multiplier 1."""
    return x if m == 1 else np.repeat(x, m, axis=3)


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


def conv2d_forward(x, w, b, stride, padding, dilation, groups, activation=None):
    """See :mod:`pyrnn.backends.conv2d_reference`."""
    (stride, padding, dilation, groups), y_shape = check_conv2d_forward(x, w, b, stride, padding, dilation, groups,
                                                                        activation)
    y, saved = _convolve(x, w, b, stride, padding, dilation, groups, y_shape)
    activate(y, activation)
    return y, saved


def _convolve(x, w, b, stride, padding, dilation, groups, y_shape):
    """y = the convolution (checked arguments), and the saved geometry."""
    saved = Conv2dSaved(x, x.shape, w, stride, padding, dilation, groups)
    by_winograd = winograd.fits(w, stride, dilation, groups) and 0 not in y_shape
    y = (np.empty if by_winograd else np.zeros)(y_shape, x.dtype)  # Winograd writes every pixel
    if y.size == 0 or x.shape[3] == 0:  # no taps: only the bias
        if b is not None:
            y += b
        return y, saved
    geometry, nl, pointwise = _plan(x.shape, w, stride, padding, dilation, groups, y_shape[1:3])
    if _depthwise(w, groups):
        bias = y[0, 0, 0] if b is None else b  # unused when has_bias is False: one compiled signature either way
        _depthwise_forward_kernel(_repeated(x, w.shape[0] // groups), _taps(w), bias, b is not None, geometry, y)
    elif by_winograd:
        winograd.convolve(x, winograd.weights(w), padding[0], padding[2], b, y)
    else:
        _conv2d_forward_chunks(x, _packed(w, groups), b, geometry, nl, pointwise, y.reshape(-1, y_shape[3]))
    return y, saved


def conv2d_backward(saved, dy, dw, db, need_dx=True):
    """See :mod:`pyrnn.backends.conv2d_reference`."""
    (stride, padding, dilation, groups), (B, HO, WO, O) = check_conv2d_backward(saved, dy, dw, db, need_dx)
    w = saved.w
    by_winograd = winograd.fits(w, stride, dilation, groups) and dy.size > 0
    dx = (np.empty if by_winograd else np.zeros)(saved.x_shape, w.dtype) if need_dx else None  # Winograd writes every pixel
    if db is not None:
        db += dy.sum(axis=(0, 1, 2))
    if dy.size == 0 or saved.x_shape[3] == 0 or (dw is None and dx is None):
        return dx
    geometry, nl, pointwise = _plan(saved.x_shape, w, stride, padding, dilation, groups, (HO, WO))
    if _depthwise(w, groups):  # with multiplier m: on x repeated (see _repeated), dx summed over the repeats
        x = saved.x if dw is not None else np.zeros((1, 1, 1, 1), w.dtype)  # a placeholder: not read without dw
        sink = dx if dx is not None else np.zeros((0, 1, 1, 1), w.dtype)  # size 0: dx not wanted
        m = O // groups
        wt = _taps(w)
        dwt = np.zeros_like(wt)
        dxe = np.zeros(dx.shape[:3] + (O,), w.dtype) if dx is not None and m > 1 else sink  # of x repeated
        _depthwise_backward_kernel(_repeated(x, m) if dw is not None else x, wt, dy, geometry, dw is not None, dwt, dxe)
        if dxe is not sink:
            dx += dxe.reshape(dx.shape + (m,)).sum(axis=4)
        if dw is not None:
            dw += dwt.T.reshape(w.shape)
        return dx
    if by_winograd:  # dx and dw
        if dx is not None:
            winograd.data_gradient(dy, w, padding[0], padding[2], dx)
        if dw is not None:
            winograd.weight_gradient(saved.x, dy, padding[0], padding[2], dw)
        return dx
    wk = _packed(w, groups)
    dwk = np.zeros_like(wk) if dw is not None else None
    _conv2d_backward_chunks(saved.x, wk, dy.reshape(B * HO * WO, O), geometry, nl, pointwise, dwk, dx)
    if dw is not None:
        Og, (Cg, KH, KW) = O // groups, w.shape[1:]
        dw += dwk.reshape(groups, KH, KW, Cg, Og).transpose(0, 4, 3, 1, 2).reshape(w.shape)
    return dx
