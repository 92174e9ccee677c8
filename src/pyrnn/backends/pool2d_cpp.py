"""The C++ backend of the 2-D pooling/upsampling family: the Python side of ``pyrnn._C``'s pool2d kernels.

Legend: B = batch, H/W = input height/width, C = channels, OH/OW = output height/width.
Contract: :mod:`pyrnn.backends.pool2d_reference`. This module checks the arguments with the
contract's ``check_*`` (so every backend raises the same errors), computes the geometry the
kernels take (torch's average divisors, the interpolation indices and weights) with the
contract's functions, allocates the outputs and hands everything to ``csrc/pool2d`` (whose
bindings check every array again, indices included, and release the GIL).
"""

from __future__ import annotations

import functools

import numpy as np

from .. import _C, _buffers
from .contract import Pool2DSaved, Upsample2DSaved
from .pool2d_reference import (
    avg_divisors,
    check_pool2d_backward,
    check_pool2d_forward,
    check_upsample2d_backward,
    check_upsample2d_forward,
    upsample_axis,
)


def _frozen(a, dtype):
    """a as a C-contiguous read-only array of dtype: geometry shared by every call that has it."""
    a = np.array(a, dtype, order="C")
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=64)  # the same few geometries again and again: ~20 us of NumPy saved per call
def _divisors(kind, H, W, OH, OW, kernel, stride, padding, count_include_pad):
    if kind == "max":
        return None, None
    return (_frozen(avg_divisors(H, OH, kernel[0], stride[0], padding[0], count_include_pad), np.int64),
            _frozen(avg_divisors(W, OW, kernel[1], stride[1], padding[1], count_include_pad), np.int64))


def pool2d_forward(kind, x, kernel, stride, padding, dilation, ceil_mode, count_include_pad):
    """See :mod:`pyrnn.backends.pool2d_reference`."""
    B, H, W, C, OH, OW, kernel, stride, padding, dilation = check_pool2d_forward(
        kind, x, kernel, stride, padding, dilation, ceil_mode, count_include_pad)
    y = _buffers.empty((B, OH, OW, C), x.dtype)
    arg = _buffers.empty((B, OH, OW, C), np.int64) if kind == "max" else None
    div_h, div_w = _divisors(kind, H, W, OH, OW, kernel, stride, padding, bool(count_include_pad))
    _C.pool2d_forward(kind, x, y, arg, div_h, div_w, kernel, stride, padding, dilation)
    saved = Pool2DSaved(kind, (B, H, W, C), x.dtype, kernel, stride, padding, dilation, bool(ceil_mode),
                        bool(count_include_pad), arg)
    return y, saved


def pool2d_backward(saved, dy):
    """See :mod:`pyrnn.backends.pool2d_reference`."""
    B, H, W, C, OH, OW = check_pool2d_backward(saved, dy)
    dx = _buffers.empty((B, H, W, C), dy.dtype)
    div_h, div_w = _divisors(saved.kind, H, W, OH, OW, saved.kernel, saved.stride, saved.padding, saved.count_include_pad)
    _C.pool2d_backward(saved.kind, dy, saved.argmax, div_h, div_w, dx, saved.kernel, saved.stride, saved.padding,
                       saved.dilation)
    return dx


@functools.lru_cache(maxsize=64)
def _axes(H, W, scale, mode, dtype):
    """(ih0, ih1, lh0, lh1, iw0, iw1, lw0, lw1): indices int64, weights of ``dtype``, read-only."""
    (ih0, ih1, lh0, lh1), (iw0, iw1, lw0, lw1) = upsample_axis(H, scale[0], mode), upsample_axis(W, scale[1], mode)
    return tuple(_frozen(a, np.int64 if i % 4 < 2 else dtype) for i, a in enumerate((ih0, ih1, lh0, lh1, iw0, iw1, lw0, lw1)))


def upsample2d_forward(x, scale, mode):
    """See :mod:`pyrnn.backends.pool2d_reference`."""
    B, H, W, C, scale = check_upsample2d_forward(x, scale, mode)
    y = _buffers.empty((B, H * scale[0], W * scale[1], C), x.dtype)
    _C.upsample2d_forward(mode, x, y, _axes(H, W, scale, mode, np.dtype(x.dtype)))
    return y, Upsample2DSaved((B, H, W, C), x.dtype, scale, mode)


def upsample2d_backward(saved, dy):
    """See :mod:`pyrnn.backends.pool2d_reference`."""
    B, H, W, C = check_upsample2d_backward(saved, dy)
    dx = _buffers.empty((B, H, W, C), dy.dtype)
    _C.upsample2d_backward(saved.mode, dy, dx, _axes(H, W, saved.scale, saved.mode, np.dtype(dy.dtype)))
    return dx
