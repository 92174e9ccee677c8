"""The Numba backend of the conv family (contract: :mod:`pyrnn.backends.conv_reference`).

Legend: B = batch, T = time, U = output length, C = input channels, O = output channels,
K = kernel size, s = stride, d = dilation, pl = left zero padding. Channels-last (B, T, C).

Three layers: the public functions check (with the contract's ``check_*``) and allocate;
the ``_*_kernel`` functions run the loops; the inner helpers (``_im2col``/``_col2im``,
``_max_window``...) do one piece. Convolution is im2col + one GEMM (``np.dot``, SciPy's
BLAS) per chunk of samples, with the columns in (K, C) order so that a tap copies one
contiguous channel row; the weight is handed over as ``wk`` (O, K*C), i.e. w transposed
to (O, K, C). JIT flags come from ``_numba_config``.
"""

from __future__ import annotations

import numba
import numpy as np

from ._numba_config import JIT
from .conv_reference import check_conv1d_backward, check_conv1d_forward, check_pool1d_backward, check_pool1d_forward

#: im2col scratch per chunk of samples, in elements (at least one sample's worth)
CHUNK_ELEMENTS = 1 << 20


# ------------------------------------------------------------------ conv1d
# cols[r, k*C + c] = x[b0 + r // U, u*s + k*d - pl, c] with u = r % U; 0 where the tap is padding
@numba.njit(**JIT)
def _im2col(x, b0, n, U, K, stride, pad_left, dilation, cols):
    T, C = x.shape[1], x.shape[2]
    for r in range(n * U):
        b, u = b0 + r // U, r % U
        for k in range(K):
            i = u * stride + k * dilation - pad_left
            if 0 <= i < T:
                cols[r, k * C : (k + 1) * C] = x[b, i]
            else:
                cols[r, k * C : (k + 1) * C] = 0.0


# dx[b0 + r // U, u*s + k*d - pl, c] += dcols[r, k*C + c] for the taps inside x (the transpose of _im2col)
@numba.njit(**JIT)
def _col2im(dcols, b0, n, U, K, stride, pad_left, dilation, dx):
    T, C = dx.shape[1], dx.shape[2]
    for r in range(n * U):
        b, u = b0 + r // U, r % U
        for k in range(K):
            i = u * stride + k * dilation - pad_left
            if 0 <= i < T:
                dx[b, i] += dcols[r, k * C : (k + 1) * C]


def _chunk(B, U, KC):
    return max(1, min(B, CHUNK_ELEMENTS // max(1, U * KC)))


# y[b, u, :] = bias + cols[b, u] @ wk^T   (one GEMM per chunk of nb samples)
@numba.njit(**JIT)
def _conv1d_forward_kernel(x, wk_t, bias, has_bias, K, stride, pad_left, dilation, nb, y2):
    """x (B, T, C); wk_t (K*C, O); y2 (B*U, O) written."""
    B = x.shape[0]
    U = y2.shape[0] // B
    cols = np.empty((nb * U, wk_t.shape[0]), x.dtype)
    for b0 in range(0, B, nb):
        n = min(nb, B - b0)
        c = cols[: n * U]
        _im2col(x, b0, n, U, K, stride, pad_left, dilation, c)
        np.dot(c, wk_t, y2[b0 * U : (b0 + n) * U])
    if has_bias:
        for r in range(B * U):
            y2[r] += bias


# dwk += dy^T cols;  dcols = dy wk, scattered back by _col2im;  db += column sums of dy
@numba.njit(**JIT)
def _conv1d_backward_kernel(x, wk, dy2, K, stride, pad_left, dilation, nb, dwk, db, has_bias, dx):
    """wk (O, K*C); dy2 (B*U, O); dwk (O, K*C) and db added into; dx (B, T, C) zeros in, added into."""
    B = x.shape[0]
    U = dy2.shape[0] // B
    KC = wk.shape[1]
    cols = np.empty((nb * U, KC), x.dtype)
    dcols = np.empty((nb * U, KC), x.dtype)
    for b0 in range(0, B, nb):
        n = min(nb, B - b0)
        c, dc = cols[: n * U], dcols[: n * U]
        g = dy2[b0 * U : (b0 + n) * U]
        _im2col(x, b0, n, U, K, stride, pad_left, dilation, c)
        dwk += np.dot(g.T, c)
        np.dot(g, wk, dc)
        _col2im(dc, b0, n, U, K, stride, pad_left, dilation, dx)
    if has_bias:
        for r in range(B * U):
            db += dy2[r]


def conv1d_forward(x, w, b, stride, pad_left, pad_right, dilation):
    """See :mod:`pyrnn.backends.conv_reference`."""
    B, T, C, O, K, U = check_conv1d_forward(x, w, b, stride, pad_left, pad_right, dilation)
    y = np.zeros((B, U, O), x.dtype)
    if y.size == 0 or C == 0:  # no taps: only the bias
        if b is not None:
            y += b
        return y
    wk_t = np.ascontiguousarray(w.transpose(2, 1, 0).reshape(K * C, O))
    bias = y[0, 0] if b is None else b  # unused when has_bias is False: one compiled signature either way
    nb = _chunk(B, U, K * C)
    geometry = (K, int(stride), int(pad_left), int(dilation), nb)
    _conv1d_forward_kernel(x, wk_t, bias, b is not None, *geometry, y.reshape(B * U, O))
    return y


def conv1d_backward(x, w, dy, stride, pad_left, pad_right, dilation, dw, db):
    """See :mod:`pyrnn.backends.conv_reference`."""
    B, T, C, O, K, U = check_conv1d_backward(x, w, dy, stride, pad_left, pad_right, dilation, dw, db)
    dx = np.zeros((B, T, C), x.dtype)
    if dy.size == 0:
        return dx
    if C == 0:
        if db is not None:
            db += dy.reshape(B * U, O).sum(axis=0)
        return dx
    wk = np.ascontiguousarray(w.transpose(0, 2, 1).reshape(O, K * C))
    dwk = np.zeros_like(wk)
    sink = np.zeros(O, x.dtype) if db is None else db
    nb = _chunk(B, U, K * C)
    geometry = (K, int(stride), int(pad_left), int(dilation), nb)
    _conv1d_backward_kernel(x, wk, dy.reshape(B * U, O), *geometry, dwk, sink, db is not None, dx)
    dw += dwk.reshape(O, K, C).transpose(0, 2, 1)
    return dx


# ---------------------------------------------------------------- pool1d
# y[c] = max over the taps inside x of x[i, c] (-inf if none), arg[c] = the first such i (a NaN wins)
@numba.njit(**JIT)
def _max_window(x, start, K, y, arg):
    T, C = x.shape
    y[:] = -np.inf
    arg[:] = start
    for i in range(max(start, 0), min(start + K, T)):
        for c in range(C):
            v, best = x[i, c], y[c]
            if v > best or (v != v and best == best):
                y[c] = v
                arg[c] = i


# y[c] = (sum over the taps inside x of x[i, c]) / K
@numba.njit(**JIT)
def _avg_window(x, start, K, y):
    T = x.shape[0]
    y[:] = 0.0
    for i in range(max(start, 0), min(start + K, T)):
        y += x[i]
    y /= K


@numba.njit(**JIT)
def _pool1d_forward_kernel(is_max, x, K, stride, pad_left, y, arg):
    B, U = y.shape[0], y.shape[1]
    for b in range(B):
        for u in range(U):
            if is_max:
                _max_window(x[b], u * stride - pad_left, K, y[b, u], arg[b, u])
            else:
                _avg_window(x[b], u * stride - pad_left, K, y[b, u])


# max: dx[b, arg[b, u, c], c] += dy[b, u, c];  avg: dx[b, i, c] += dy[b, u, c] / K for each tap i inside x
@numba.njit(**JIT)
def _pool1d_backward_kernel(is_max, dy, arg, K, stride, pad_left, dx):
    B, U, C = dy.shape
    T = dx.shape[1]
    share = np.empty(C, dy.dtype)
    for b in range(B):
        for u in range(U):
            if is_max:
                for c in range(C):
                    i = arg[b, u, c]
                    if 0 <= i < T:
                        dx[b, i, c] += dy[b, u, c]
            else:
                share[:] = dy[b, u] / K
                start = u * stride - pad_left
                for i in range(max(start, 0), min(start + K, T)):
                    dx[b, i] += share


def pool1d_forward(kind, x, kernel, stride, pad_left, pad_right):
    """See :mod:`pyrnn.backends.conv_reference`."""
    B, T, C, U = check_pool1d_forward(kind, x, kernel, stride, pad_left, pad_right)
    is_max = kind == "max"
    y = np.empty((B, U, C), x.dtype)
    arg = np.empty((B, U, C) if is_max else (0, 0, 0), np.int64)
    if y.size:
        _pool1d_forward_kernel(is_max, x, int(kernel), int(stride), int(pad_left), y, arg)
    return y, (arg if is_max else None)


def pool1d_backward(kind, x_shape, dy, saved, kernel, stride, pad_left, pad_right):
    """See :mod:`pyrnn.backends.conv_reference`."""
    B, T, C, U = check_pool1d_backward(kind, x_shape, dy, saved, kernel, stride, pad_left, pad_right)
    is_max = kind == "max"
    dx = np.zeros((B, T, C), dy.dtype)
    if dy.size:
        arg = saved if is_max else np.empty((0, 0, 0), np.int64)
        _pool1d_backward_kernel(is_max, dy, arg, int(kernel), int(stride), int(pad_left), dx)
    return dx
