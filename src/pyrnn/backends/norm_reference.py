"""The normalisation family's kernel contract, and its NumPy reference (the specification).

Legend: N = rows (B for (B, C), B*T for sequences, B*H*W for images), C = channels.
Channels-last makes every batch norm a 2-D problem: the layers hand over x viewed as (N, C)
and normalise each column. Arrays are C-contiguous and of one float dtype (float32 or
float64); per-channel statistics are computed in float64 for both.

``batchnorm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps) -> (y, saved)``
    x (N, C); weight, bias (C,) or None (no affine transform: weight 1, bias 0);
    running_mean, running_var (C,) or None (no running statistics).

    ``training=True`` normalises with the batch statistics: the per-channel mean and the
    *biased* variance, computed in ONE pass over x (sums of x - x[0] and of its square, in
    float64: shifted by a sample so that a large mean costs no precision), and, if the running
    buffers are given, updates them IN PLACE as torch does, with the *unbiased* variance:
    ``running = (1 - momentum) * running + momentum * batch`` (the layer passes
    ``momentum = 1 / num_batches_tracked`` for torch's cumulative average). Needs N >= 2.
    ``training=False`` normalises with running_mean and running_var (both required) and
    changes nothing.

    ``y = (x - mean) * inv_std * weight + bias`` with ``inv_std = 1 / sqrt(var + eps)``.
    ``saved`` is a :class:`~pyrnn.backends.contract.BatchNormSaved` (x itself, the float64
    mean and inv_std, the weight, and whether batch statistics were used): (C,) arrays only,
    no (N, C) copy.

``batchnorm_backward(saved, dy, dweight, dbias) -> dx``
    dy (N, C). ADDS ``sum_n dy * x_hat`` into dweight and ``sum_n dy`` into dbias (each may be
    None); returns dx (N, C). With batch statistics, in one reduction pass then one pass over
    the data, g = dy * weight:
    ``dx = inv_std / N * (N g - sum_n g - x_hat sum_n g x_hat)``; with running statistics
    (constants) ``dx = g * inv_std``.

The ``check_*`` functions below are part of the contract: every backend calls them before any
compiled code runs.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_kernel_array, check_kernel_input, is_real
from .contract import BatchNormSaved

# --------------------------------------------------------------------- checks


def _check_real(name, value, minimum, maximum=None):
    if not is_real(value):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not (value >= minimum and (maximum is None or value <= maximum)) or not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number in [{minimum:g}, {'inf' if maximum is None else f'{maximum:g}'}], "
                         f"got {value!r}")
    return value


def check_batchnorm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """Check the forward arguments against the contract; returns (N, C, momentum, eps) as Python numbers."""
    check_kernel_input("x", x, 2, "(N, C)")
    N, C = x.shape
    for name, a in (("weight", weight), ("bias", bias)):
        if a is not None:
            check_kernel_array(name, a, x.dtype, (C,), "(C,)")
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean, running_var: expected both arrays or both None, got one of each")
    for name, a in (("running_mean", running_mean), ("running_var", running_var)):
        if a is not None:
            check_kernel_array(name, a, x.dtype, (C,), "(C,)", writable=True)
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training: expected True or False, got {type(training).__name__} {training!r}")
    if not training and running_mean is None:
        raise ValueError("running_mean: expected running statistics when training=False, got None")
    if training and N < 2:
        raise ValueError(f"x: expected more than 1 value per channel to compute batch statistics, got N={N} rows")
    return N, C, _check_real("momentum", momentum, 0.0, 1.0), _check_real("eps", eps, 0.0)


def check_batchnorm_backward(saved, dy, dweight, dbias):
    """Check the backward arguments; returns (N, C)."""
    if not isinstance(saved, BatchNormSaved):
        raise TypeError(f"saved: expected a BatchNormSaved from batchnorm_forward, got {type(saved).__name__}")
    N, C = saved.x.shape
    check_kernel_array("dy", dy, saved.x.dtype, (N, C), "(N, C)")
    for name, a in (("dweight", dweight), ("dbias", dbias)):
        if a is not None:
            check_kernel_array(name, a, saved.x.dtype, (C,), "(C,)", writable=True)
    return N, C


# ----------------------------------------------------------------- reference
def batch_statistics(x):
    """Per-channel mean and biased variance of x (N, C), float64, in one pass over x - x[0]."""
    N = x.shape[0]
    d = x.astype(np.float64) - x[0].astype(np.float64)  # the shift: any sample keeps the sums small
    s1, s2 = d.sum(axis=0), (d * d).sum(axis=0)
    mean = x[0] + s1 / N
    var = np.maximum(s2 - s1 * s1 / N, 0.0) / N
    return mean, var


def batchnorm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """See the module docstring."""
    N, C, momentum, eps = check_batchnorm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps)
    if training:
        mean, var = batch_statistics(x)
        if running_mean is not None:
            unbiased = var * (N / (N - 1))
            running_mean[...] = (1.0 - momentum) * running_mean + momentum * mean
            running_var[...] = (1.0 - momentum) * running_var + momentum * unbiased
    else:
        mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
    inv_std = 1.0 / np.sqrt(var + eps)
    y = (x - mean) * inv_std
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    saved = BatchNormSaved(x, mean, inv_std, weight, bool(training))
    return np.ascontiguousarray(y, dtype=x.dtype), saved


def batchnorm_backward(saved, dy, dweight, dbias):
    """See the module docstring."""
    N, C = check_batchnorm_backward(saved, dy, dweight, dbias)
    x_hat = (saved.x - saved.mean) * saved.inv_std  # float64
    sum_dy = dy.sum(axis=0, dtype=np.float64)
    sum_dy_xhat = (dy * x_hat).sum(axis=0)
    w = 1.0 if saved.weight is None else saved.weight.astype(np.float64)
    g = dy * w
    if saved.batch_stats and N > 0:
        dx = saved.inv_std / N * (N * g - w * sum_dy - x_hat * (w * sum_dy_xhat))
    else:
        dx = g * saved.inv_std
    if dweight is not None:
        dweight += sum_dy_xhat.astype(dweight.dtype)
    if dbias is not None:
        dbias += sum_dy.astype(dbias.dtype)
    return np.ascontiguousarray(dx, dtype=dy.dtype)
