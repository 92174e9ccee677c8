"""The C++ backend of the normalisation family: the Python side of ``pyrnn._C``'s batch norm kernels.

Legend: N = rows, C = channels; x is (N, C). Contract: :mod:`pyrnn.backends.norm_reference`.
This module checks the arguments with the contract's ``check_*`` (so every backend raises the
same errors), allocates the outputs and hands everything to ``csrc/norm`` (whose bindings check
every array again and release the GIL): one pass for the statistics and one writing y forward,
one reduction pass and one writing dx backward, with float64 per-channel accumulators, the rows
split over the kernels' thread team (each member's sums added in member order).
"""

from __future__ import annotations

import numpy as np

from .. import _C, _buffers
from .contract import BatchNormSaved
from .norm_reference import check_batchnorm_backward, check_batchnorm_forward


def _forward(x, weight, bias, running_mean, running_var, training, momentum, eps, relu):
    """batchnorm_forward, with ``max(y, 0)`` in the same pass when ``relu``."""
    N, C, momentum, eps = check_batchnorm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps)
    y = _buffers.empty_like(x)
    mean, inv_std = np.empty(C, np.float64), np.empty(C, np.float64)
    _C.batchnorm_forward(x, weight, bias, running_mean, running_var, bool(training), momentum, eps, y, mean, inv_std,
                         relu)
    return y, BatchNormSaved(x, mean, inv_std, weight, bool(training))


def batchnorm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """See :mod:`pyrnn.backends.norm_reference`."""
    return _forward(x, weight, bias, running_mean, running_var, training, momentum, eps, False)


def batchnorm_relu_forward(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """``batchnorm_forward`` and the ReLU after it in one pass: ``(max(y, 0), saved)``, which
    :func:`batchnorm_relu_backward` takes with that output. Not in the contract: the graph runs it for a
    BatchNorm whose output only a ReLU reads, where the backend has it (:meth:`pyrnn.models.Model.forward`),
    and the two layers elsewhere."""
    return _forward(x, weight, bias, running_mean, running_var, training, momentum, eps, True)


def batchnorm_relu_backward(saved, y, dy, dweight, dbias):
    """``batchnorm_backward`` of ``dy`` through the ReLU whose output ``y`` (N, C) :func:`batchnorm_relu_forward`
    returned: the ReLU's backward (0 where y <= 0, else dy) applied as the kernel reads dy, in one pass."""
    check_batchnorm_backward(saved, dy, dweight, dbias)
    if not isinstance(y, np.ndarray) or y.shape != dy.shape or y.dtype != dy.dtype:
        raise ValueError(f"y: expected the fused forward's output, an array of shape {dy.shape} and dtype {dy.dtype}, "
                         f"got {type(y).__name__} {getattr(y, 'shape', '')} {getattr(y, 'dtype', '')}")
    dx = _buffers.empty_like(dy)
    _C.batchnorm_backward(saved.x, dy, saved.mean, saved.inv_std, saved.weight, bool(saved.batch_stats), dx,
                          dweight, dbias, y)
    return dx


def batchnorm_backward(saved, dy, dweight, dbias):
    """See :mod:`pyrnn.backends.norm_reference`."""
    check_batchnorm_backward(saved, dy, dweight, dbias)
    dx = _buffers.empty_like(dy)
    _C.batchnorm_backward(saved.x, dy, saved.mean, saved.inv_std, saved.weight, bool(saved.batch_stats), dx,
                          dweight, dbias)
    return dx
