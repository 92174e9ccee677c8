"""The Numba backend of the conv family (contract: :mod:`pyrnn.backends.conv_reference`).

Legend: B = batch, T = time, U = output length, C = input channels, O = output channels,
K = kernel size, s = stride, d = dilation, pl = left zero padding. Channels-last (B, T, C).

Three layers: the public functions check (with the contract's ``check_*``) and allocate;
the ``_*_kernel`` functions run the loops; the inner helpers (``_max_window``,
``_avg_window``) do one piece. Convolution is the 2-D engine's case H = 1 (conv2d_numba);
JIT flags come from ``_numba_config``.
"""

from __future__ import annotations

import numba
import numpy as np

from . import conv2d_numba
from ._numba_config import JIT
from .conv_reference import check_pool1d_backward, check_pool1d_forward, conv1d_via

# ------------------------------------------------------------------ conv1d
# The 2-D engine's case H = 1 (see conv_reference.conv1d_via)
conv1d_forward, conv1d_backward = conv1d_via(conv2d_numba.conv2d_forward, conv2d_numba.conv2d_backward)


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
