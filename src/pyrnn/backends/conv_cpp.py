"""The C++ backend of the conv family: the Python side of ``pyrnn._C``'s conv kernels.

Legend: B = batch, T = time, U = output length, C = input channels, O = output channels,
K = kernel size. Contract: :mod:`pyrnn.backends.conv_reference`. This module checks the
arguments with the contract's ``check_*`` (so every backend raises the same errors),
allocates the outputs and hands everything to ``csrc/conv`` (whose bindings check every
array again and release the GIL). The BLAS is registered by :mod:`pyrnn.backends.cpp`.
"""

from __future__ import annotations

import numpy as np

from .. import _C, _buffers
from . import conv2d_cpp
from .conv_reference import check_pool1d_backward, check_pool1d_forward, conv1d_via

# The 2-D engine's case H = 1 (see conv_reference.conv1d_via): one convolution kernel in csrc, not two
conv1d_forward, conv1d_backward = conv1d_via(conv2d_cpp.conv2d_forward, conv2d_cpp.conv2d_backward)


def pool1d_forward(kind, x, kernel, stride, pad_left, pad_right):
    """See :mod:`pyrnn.backends.conv_reference`."""
    B, T, C, U = check_pool1d_forward(kind, x, kernel, stride, pad_left, pad_right)
    y = _buffers.empty((B, U, C), x.dtype)
    arg = _buffers.empty((B, U, C), np.int64) if kind == "max" else None
    _C.pool1d_forward(kind, x, y, arg, int(kernel), int(stride), int(pad_left), int(pad_right))
    return y, arg


def pool1d_backward(kind, x_shape, dy, saved, kernel, stride, pad_left, pad_right):
    """See :mod:`pyrnn.backends.conv_reference`."""
    check_pool1d_backward(kind, x_shape, dy, saved, kernel, stride, pad_left, pad_right)
    dx = _buffers.empty(tuple(x_shape), dy.dtype)
    _C.pool1d_backward(kind, dy, saved if kind == "max" else None, dx, int(kernel), int(stride), int(pad_left), int(pad_right))
    return dx
