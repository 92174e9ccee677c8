"""The 2-D pooling/upsampling family in ``@njit`` loops (contract: :mod:`pyrnn.backends.pool2d_reference`).

Legend: B = batch, H/W = input height/width, C = channels, OH/OW = output height/width,
kh/kw = kernel, sh/sw = stride, ph/pw = padding, dh/dw = dilation, i/j = tap along H/W.

Three layers per function: the public wrapper checks (the reference's ``check_*``), allocates
and computes the geometry (divisors, interpolation indices and weights); ``_*_kernel`` loops over
B in the outer loop; an inner helper does one window (or one output pixel) for all C channels.
Max pooling saves the winner's index ``ih*W + iw`` per output, not the window. Every sum runs
in the reference's order, so float64 results agree with it to rounding.
"""

from __future__ import annotations

import numba
import numpy as np

from ._numba_config import JIT
from .contract import Pool2DSaved, Upsample2DSaved
from .pool2d_reference import (
    avg_divisors,
    check_pool2d_backward,
    check_pool2d_forward,
    check_upsample2d_backward,
    check_upsample2d_forward,
    upsample_axis,
)


# ---------------------------------------------------------------- pool2d
# [lo, hi): the taps i of one axis with 0 <= start + i*step < L (the others read padding; a huge kernel
# is not walked tap by tap)
@numba.njit(**JIT)
def _tap_range(start, step, k, L):
    return max(0, (step - 1 - start) // step), min(k, (L - 1 - start) // step + 1)


# y[c] = max over the taps inside x of x[ih, iw, c]; arg[c] = ih*W + iw of the first maximum in window order
# (the first tap inside x starts it, so an all -inf window picks that tap; a NaN wins); -inf/-1 if no tap is inside
@numba.njit(**JIT)
def _max_window(x, h0, w0, kh, kw, dh, dw, y, arg):
    H, W, C = x.shape
    y[:] = -np.inf
    arg[:] = -1
    i_lo, i_hi = _tap_range(h0, dh, kh, H)
    j_lo, j_hi = _tap_range(w0, dw, kw, W)
    for i in range(i_lo, i_hi):
        ih = h0 + i * dh
        for j in range(j_lo, j_hi):
            iw = w0 + j * dw
            for c in range(C):
                v, best = x[ih, iw, c], y[c]
                if arg[c] < 0 or v > best or (v != v and best == best):
                    y[c] = v
                    arg[c] = ih * W + iw


# y[c] = (sum over the taps inside x of x[ih, iw, c]) / D
@numba.njit(**JIT)
def _avg_window(x, h0, w0, kh, kw, D, y):
    H, W, C = x.shape
    y[:] = 0.0
    for ih in range(max(h0, 0), min(h0 + kh, H)):
        for iw in range(max(w0, 0), min(w0 + kw, W)):
            for c in range(C):
                y[c] += x[ih, iw, c]
    for c in range(C):
        y[c] /= D


@numba.njit(**JIT)
def _pool2d_forward_kernel(is_max, x, kh, kw, sh, sw, ph, pw, dh, dw, div_h, div_w, y, arg):
    B, OH, OW = y.shape[0], y.shape[1], y.shape[2]
    for b in range(B):
        for oh in range(OH):
            for ow in range(OW):
                if is_max:
                    _max_window(x[b], oh * sh - ph, ow * sw - pw, kh, kw, dh, dw, y[b, oh, ow], arg[b, oh, ow])
                else:
                    _avg_window(x[b], oh * sh - ph, ow * sw - pw, kh, kw, x.dtype.type(div_h[oh] * div_w[ow]), y[b, oh, ow])


# dx[ih, iw, c] += dy[c] / D for every tap (ih, iw) inside x
@numba.njit(**JIT)
def _avg_window_backward(dy, h0, w0, kh, kw, D, dx):
    H, W, C = dx.shape
    for ih in range(max(h0, 0), min(h0 + kh, H)):
        for iw in range(max(w0, 0), min(w0 + kw, W)):
            for c in range(C):
                dx[ih, iw, c] += dy[c] / D


# max: dxf[b, arg[b, oh, ow, c], c] += dy[b, oh, ow, c] (dxf = dx as (B, H*W, C))
# avg: dx[b, ih, iw, c] += dy[b, oh, ow, c] / D for every tap inside x
@numba.njit(**JIT)
def _pool2d_backward_kernel(is_max, dy, arg, kh, kw, sh, sw, ph, pw, div_h, div_w, dx):
    B, OH, OW, C = dy.shape
    dxf = dx.reshape(B, dx.shape[1] * dx.shape[2], C)
    for b in range(B):
        for oh in range(OH):
            for ow in range(OW):
                if is_max:
                    for c in range(C):
                        k = arg[b, oh, ow, c]
                        if k >= 0:
                            dxf[b, k, c] += dy[b, oh, ow, c]
                else:
                    _avg_window_backward(dy[b, oh, ow], oh * sh - ph, ow * sw - pw, kh, kw,
                                         dy.dtype.type(div_h[oh] * div_w[ow]), dx[b])


def _divisors(kind, H, W, OH, OW, kernel, stride, padding, count_include_pad):
    if kind == "max":
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return (avg_divisors(H, OH, kernel[0], stride[0], padding[0], count_include_pad).astype(np.int64),
            avg_divisors(W, OW, kernel[1], stride[1], padding[1], count_include_pad).astype(np.int64))


def pool2d_forward(kind, x, kernel, stride, padding, dilation, ceil_mode, count_include_pad):
    """See :mod:`pyrnn.backends.pool2d_reference`."""
    B, H, W, C, OH, OW, kernel, stride, padding, dilation = check_pool2d_forward(
        kind, x, kernel, stride, padding, dilation, ceil_mode, count_include_pad)
    is_max = kind == "max"
    y = np.empty((B, OH, OW, C), x.dtype)
    arg = np.empty((B, OH, OW, C) if is_max else (0, 0, 0, 0), np.int64)
    div_h, div_w = _divisors(kind, H, W, OH, OW, kernel, stride, padding, bool(count_include_pad))
    if y.size:
        _pool2d_forward_kernel(is_max, x, *kernel, *stride, *padding, *dilation, div_h, div_w, y, arg)
    saved = Pool2DSaved(kind, (B, H, W, C), x.dtype, kernel, stride, padding, dilation, bool(ceil_mode),
                        bool(count_include_pad), arg if is_max else None)
    return y, saved


def pool2d_backward(saved, dy):
    """See :mod:`pyrnn.backends.pool2d_reference`."""
    B, H, W, C, OH, OW = check_pool2d_backward(saved, dy)
    is_max = saved.kind == "max"
    dx = np.zeros((B, H, W, C), dy.dtype)
    div_h, div_w = _divisors(saved.kind, H, W, OH, OW, saved.kernel, saved.stride, saved.padding, saved.count_include_pad)
    if dy.size:
        arg = saved.argmax if is_max else np.empty((0, 0, 0, 0), np.int64)
        _pool2d_backward_kernel(is_max, dy, arg, *saved.kernel, *saved.stride, *saved.padding, div_h, div_w, dx)
    return dx


# ------------------------------------------------------------- upsample2d
# y[c] = lh0 (lw0 x[ih0, iw0, c] + lw1 x[ih0, iw1, c]) + lh1 (lw0 x[ih1, iw0, c] + lw1 x[ih1, iw1, c])
@numba.njit(**JIT)
def _bilinear_pixel(x, ih0, ih1, lh0, lh1, iw0, iw1, lw0, lw1, y):
    for c in range(y.shape[0]):
        y[c] = lh0 * (lw0 * x[ih0, iw0, c] + lw1 * x[ih0, iw1, c]) + lh1 * (lw0 * x[ih1, iw0, c] + lw1 * x[ih1, iw1, c])


# nearest: y[b, p, q] = x[b, ih0[p], iw0[q]];  bilinear: _bilinear_pixel
@numba.njit(**JIT)
def _upsample2d_forward_kernel(nearest, x, ih0, ih1, lh0, lh1, iw0, iw1, lw0, lw1, y):
    B, OH, OW = y.shape[0], y.shape[1], y.shape[2]
    for b in range(B):
        for p in range(OH):
            for q in range(OW):
                if nearest:
                    y[b, p, q] = x[b, ih0[p], iw0[q]]
                else:
                    _bilinear_pixel(x[b], ih0[p], ih1[p], lh0[p], lh1[p], iw0[q], iw1[q], lw0[q], lw1[q], y[b, p, q])


# dx[ih_a, iw_b, c] += lh_a lw_b dy[c] for a, b in {0, 1}
@numba.njit(**JIT)
def _bilinear_pixel_backward(dy, ih0, ih1, lh0, lh1, iw0, iw1, lw0, lw1, dx):
    for c in range(dy.shape[0]):
        g = dy[c]
        dx[ih0, iw0, c] += lh0 * lw0 * g
        dx[ih0, iw1, c] += lh0 * lw1 * g
        dx[ih1, iw0, c] += lh1 * lw0 * g
        dx[ih1, iw1, c] += lh1 * lw1 * g


@numba.njit(**JIT)
def _upsample2d_backward_kernel(nearest, dy, ih0, ih1, lh0, lh1, iw0, iw1, lw0, lw1, dx):
    B, OH, OW = dy.shape[0], dy.shape[1], dy.shape[2]
    for b in range(B):
        for p in range(OH):
            for q in range(OW):
                if nearest:
                    dx[b, ih0[p], iw0[q]] += dy[b, p, q]
                else:
                    _bilinear_pixel_backward(dy[b, p, q], ih0[p], ih1[p], lh0[p], lh1[p], iw0[q], iw1[q], lw0[q], lw1[q], dx[b])


def _axes(H, W, scale, mode, dtype):
    """Indices (int64) and weights (dtype) of both axes, in the kernels' argument order."""
    (ih0, ih1, lh0, lh1), (iw0, iw1, lw0, lw1) = upsample_axis(H, scale[0], mode), upsample_axis(W, scale[1], mode)
    return (ih0, ih1, lh0.astype(dtype), lh1.astype(dtype), iw0, iw1, lw0.astype(dtype), lw1.astype(dtype))


def upsample2d_forward(x, scale, mode):
    """See :mod:`pyrnn.backends.pool2d_reference`."""
    B, H, W, C, scale = check_upsample2d_forward(x, scale, mode)
    y = np.empty((B, H * scale[0], W * scale[1], C), x.dtype)
    if y.size:
        _upsample2d_forward_kernel(mode == "nearest", x, *_axes(H, W, scale, mode, x.dtype), y)
    return y, Upsample2DSaved((B, H, W, C), x.dtype, scale, mode)


def upsample2d_backward(saved, dy):
    """See :mod:`pyrnn.backends.pool2d_reference`."""
    B, H, W, C = check_upsample2d_backward(saved, dy)
    dx = np.zeros((B, H, W, C), dy.dtype)
    if dy.size:
        _upsample2d_backward_kernel(saved.mode == "nearest", dy, *_axes(H, W, saved.scale, saved.mode, dy.dtype), dx)
    return dx
