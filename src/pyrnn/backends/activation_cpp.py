"""The C++ backend of the elementwise activations: the Python side of ``pyrnn._C``'s activation kernels.

Legend: x = input, y = output, dy = dL/dy, dx = dL/dx, any shape (...). Contract:
:mod:`pyrnn.backends.activation_reference`. This module checks the arguments with the contract's
``check_*`` (so every backend raises the same errors), allocates the output and hands everything to
``csrc/activation`` (whose bindings check every array again and release the GIL): one pass over the
values, vectorised, split over the kernels' thread team when the array is large enough to pay.
"""

from __future__ import annotations

from .. import _C, _buffers
from .activation_reference import check_activation_backward, check_activation_forward


def activation_forward(kind, x, negative_slope):
    """See :mod:`pyrnn.backends.activation_reference`."""
    s = check_activation_forward(kind, x, negative_slope)
    y = _buffers.empty_like(x)
    _C.activation_forward(kind, x, y, s)
    return y, (x if kind == "leaky_relu" else y)


def activation_backward(kind, saved, dy, negative_slope):
    """See :mod:`pyrnn.backends.activation_reference`."""
    s = check_activation_backward(kind, saved, dy, negative_slope)
    dx = _buffers.empty_like(dy)
    _C.activation_backward(kind, saved, dy, dx, s)
    return dx
