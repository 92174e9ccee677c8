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


def batchnorm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """See :mod:`pyrnn.backends.norm_reference`."""
    N, C, momentum, eps = check_batchnorm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps)
    y = _buffers.empty_like(x)
    mean, inv_std = np.empty(C, np.float64), np.empty(C, np.float64)
    _C.batchnorm_forward(x, weight, bias, running_mean, running_var, bool(training), momentum, eps, y, mean, inv_std)
    return y, BatchNormSaved(x, mean, inv_std, weight, bool(training))


def batchnorm_relu_forward(x, weight, bias, running_mean, running_var, eps):
    """``max(batchnorm_forward(x, ..., training=False, ...)[0], 0)`` in one pass: a BatchNorm with running
    statistics and the ReLU after it, for inference (nothing saved). Not in the contract: the graph runs it
    where the backend has it (:meth:`pyrnn.models.Model.forward`) and the two layers elsewhere."""
    N, C, _, eps = check_batchnorm_forward(x, weight, bias, running_mean, running_var, False, 0.0, eps)
    y = _buffers.empty_like(x)
    _C.batchnorm_forward(x, weight, bias, running_mean, running_var, False, 0.0, eps, y, np.empty(C, np.float64),
                         np.empty(C, np.float64), True)
    return y


def batchnorm_backward(saved, dy, dweight, dbias):
    """See :mod:`pyrnn.backends.norm_reference`."""
    check_batchnorm_backward(saved, dy, dweight, dbias)
    dx = _buffers.empty_like(dy)
    _C.batchnorm_backward(saved.x, dy, saved.mean, saved.inv_std, saved.weight, bool(saved.batch_stats), dx,
                          dweight, dbias)
    return dx
