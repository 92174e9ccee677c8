"""The C++ backend of the 2-D convolution: the Python side of ``pyrnn._C``'s conv2d kernels.

Legend: B = batch, H/W = height/width, C = input channels, O = output channels. Contract:
:mod:`pyrnn.backends.conv2d_reference`. This module checks the arguments with the contract's
``check_*`` (so every backend raises the same errors), allocates the outputs and hands everything
to ``csrc/conv/conv2d.cpp`` (whose binding checks every array again and releases the GIL). The
BLAS is registered by :mod:`pyrnn.backends.cpp`.
"""

from __future__ import annotations

from .. import _C, _buffers
from .contract import Conv2dSaved
from .conv2d_reference import check_conv2d_backward, check_conv2d_forward


def conv2d_forward(x, w, b, stride, padding, dilation, groups, activation=None):
    """See :mod:`pyrnn.backends.conv2d_reference`."""
    (stride, padding, dilation, groups), y_shape = check_conv2d_forward(x, w, b, stride, padding, dilation, groups,
                                                                        activation)
    y = _buffers.empty(y_shape, x.dtype)
    _C.conv2d_forward(x, w, b, y, stride, padding, dilation, groups, activation)
    return y, Conv2dSaved(x, x.shape, w, stride, padding, dilation, groups)


def conv2d_backward(saved, dy, dw, db, need_dx=True):
    """See :mod:`pyrnn.backends.conv2d_reference`."""
    (stride, padding, dilation, groups), _ = check_conv2d_backward(saved, dy, dw, db, need_dx)
    dx = _buffers.empty(saved.x_shape, saved.w.dtype) if need_dx else None
    if dx is None and dw is None:  # only the bias gradient
        if db is not None:
            db += dy.sum(axis=(0, 1, 2))
        return None
    _C.conv2d_backward(saved.x, saved.w, dy, dx, dw, db, stride, padding, dilation, groups)
    return dx
