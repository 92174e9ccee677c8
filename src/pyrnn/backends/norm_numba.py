"""The Numba backend of the normalisation family (contract: :mod:`pyrnn.backends.norm_reference`).

Legend: N = rows, C = channels; x is (N, C), channels-last. Three layers: the public functions
check (with the contract's ``check_*``) and allocate; the ``_*_kernel`` functions run a loop
over rows; the inner helpers (``_accumulate_row``, ``_normalize_row``...) do one row with
per-channel float64 accumulators. Forward (batch statistics): one pass for the shifted sums,
one pass writing y. Backward: one reduction pass, one pass writing dx. JIT flags come from
``_numba_config``.
"""

from __future__ import annotations

import numba
import numpy as np

from ._numba_config import JIT
from .contract import BatchNormSaved
from .norm_reference import check_batchnorm_backward, check_batchnorm_forward


# s1[c] += x[c] - shift[c];  s2[c] += (x[c] - shift[c])^2
@numba.njit(**JIT)
def _accumulate_row(x, shift, s1, s2):
    for c in range(x.shape[0]):
        d = np.float64(x[c]) - shift[c]
        s1[c] += d
        s2[c] += d * d


# y[c] = (x[c] - mean[c]) * scale[c] + bias[c]
@numba.njit(**JIT)
def _normalize_row(x, mean, scale, bias, y):
    for c in range(x.shape[0]):
        y[c] = (np.float64(x[c]) - mean[c]) * scale[c] + bias[c]


@numba.njit(**JIT)
def _batch_stats_kernel(x, mean, var):
    """mean, var (C,) float64 written: the batch mean and biased variance, one pass over the rows."""
    N, C = x.shape
    shift = np.empty(C, np.float64)
    for c in range(C):
        shift[c] = x[0, c]
    s1 = np.zeros(C, np.float64)
    s2 = np.zeros(C, np.float64)
    for n in range(N):
        _accumulate_row(x[n], shift, s1, s2)
    for c in range(C):
        mean[c] = shift[c] + s1[c] / N
        var[c] = max(s2[c] - s1[c] * s1[c] / N, 0.0) / N


@numba.njit(**JIT)
def _update_running_kernel(mean, var, N, momentum, running_mean, running_var):
    for c in range(mean.shape[0]):
        running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean[c]
        running_var[c] = (1.0 - momentum) * running_var[c] + momentum * (var[c] * (N / (N - 1.0)))


@numba.njit(**JIT)
def _normalize_kernel(x, mean, inv_std, weight, has_weight, bias, has_bias, y):
    N, C = x.shape
    scale = np.empty(C, np.float64)
    shift = np.zeros(C, np.float64)
    for c in range(C):
        scale[c] = inv_std[c] * (np.float64(weight[c]) if has_weight else 1.0)
        if has_bias:
            shift[c] = bias[c]
    for n in range(N):
        _normalize_row(x[n], mean, scale, shift, y[n])


# sum_dy[c] += dy[c];  sum_dy_xhat[c] += dy[c] * (x[c] - mean[c]) * inv_std[c]
@numba.njit(**JIT)
def _reduce_row(x, dy, mean, inv_std, sum_dy, sum_dy_xhat):
    for c in range(x.shape[0]):
        g = np.float64(dy[c])
        sum_dy[c] += g
        sum_dy_xhat[c] += g * ((np.float64(x[c]) - mean[c]) * inv_std[c])


# dx[c] = a[c] * dy[c] - k1[c] - x_hat[c] * k2[c]
@numba.njit(**JIT)
def _dx_row(x, dy, mean, inv_std, a, k1, k2, dx):
    for c in range(x.shape[0]):
        x_hat = (np.float64(x[c]) - mean[c]) * inv_std[c]
        dx[c] = a[c] * np.float64(dy[c]) - k1[c] - x_hat * k2[c]


@numba.njit(**JIT)
def _backward_kernel(x, dy, mean, inv_std, weight, has_weight, batch_stats, sum_dy, sum_dy_xhat, dx):
    """sum_dy, sum_dy_xhat (C,) float64 zeros in, written; dx (N, C) written."""
    N, C = x.shape
    for n in range(N):
        _reduce_row(x[n], dy[n], mean, inv_std, sum_dy, sum_dy_xhat)
    a = np.empty(C, np.float64)
    k1 = np.zeros(C, np.float64)
    k2 = np.zeros(C, np.float64)
    for c in range(C):
        w = np.float64(weight[c]) if has_weight else 1.0
        a[c] = w * inv_std[c]
        if batch_stats:  # dx = inv_std * (w dy - w sum(dy) / N - x_hat w sum(dy x_hat) / N)
            k1[c] = a[c] * sum_dy[c] / N
            k2[c] = a[c] * sum_dy_xhat[c] / N
    for n in range(N):
        _dx_row(x[n], dy[n], mean, inv_std, a, k1, k2, dx[n])


def _or_empty(a, dtype):
    return np.empty(0, dtype) if a is None else a


# ------------------------------------------------------- public functions
def batchnorm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """See :mod:`pyrnn.backends.norm_reference`."""
    N, C, momentum, eps = check_batchnorm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps)
    if training:
        mean, var = np.empty(C, np.float64), np.empty(C, np.float64)
        _batch_stats_kernel(x, mean, var)
        if running_mean is not None:
            _update_running_kernel(mean, var, float(N), momentum, running_mean, running_var)
    else:
        mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
    inv_std = 1.0 / np.sqrt(var + eps)
    y = np.empty_like(x)
    _normalize_kernel(x, mean, inv_std, _or_empty(weight, x.dtype), weight is not None,
                      _or_empty(bias, x.dtype), bias is not None, y)
    return y, BatchNormSaved(x, mean, inv_std, weight, bool(training))


def batchnorm_backward(saved, dy, dweight, dbias):
    """See :mod:`pyrnn.backends.norm_reference`."""
    N, C = check_batchnorm_backward(saved, dy, dweight, dbias)
    sum_dy, sum_dy_xhat = np.zeros(C, np.float64), np.zeros(C, np.float64)
    dx = np.empty_like(dy)
    _backward_kernel(saved.x, dy, saved.mean, saved.inv_std, _or_empty(saved.weight, dy.dtype),
                     saved.weight is not None, saved.batch_stats and N > 0, sum_dy, sum_dy_xhat, dx)
    if dweight is not None:
        dweight += sum_dy_xhat.astype(dweight.dtype)
    if dbias is not None:
        dbias += sum_dy.astype(dbias.dtype)
    return dx
