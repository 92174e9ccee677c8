"""Metrics reported by ``fit``/``evaluate``: callables ``metric(pred, target, mask=None) -> float``.

- ``mae``: mean |pred - target|;  ``mse``: mean (pred - target)^2;  ``rmse``: sqrt(mse)
- ``accuracy``: share of argmax(pred, last axis) == integer target (classes, per sample or per step)
- ``binary_accuracy``: share of [pred > 0] == target, for logits of a binary classifier

``mask`` (N,) or (N, T) selects the samples or steps that count, as in the losses.
"""

from __future__ import annotations

import numpy as np


def _masked_mean(values, mask):
    values = np.asarray(values, dtype=np.float64)
    if mask is None:
        return float(values.mean())
    m = np.asarray(mask, dtype=bool)
    m = m.reshape(m.shape + (1,) * (values.ndim - m.ndim))
    m = np.broadcast_to(m, values.shape)
    return float(values[m].mean()) if m.any() else float("nan")


class Metric:
    def __init__(self, name, fn):
        self.name, self._fn = name, fn

    def __call__(self, pred, target, mask=None):
        return self._fn(np.asarray(pred), np.asarray(target), mask)

    def __repr__(self):
        return f"Metric({self.name!r})"


def _mae(p, t, m):
    return _masked_mean(np.abs(p - t), m)


def _mse(p, t, m):
    return _masked_mean((p - t) ** 2, m)


def _rmse(p, t, m):
    return float(np.sqrt(_mse(p, t, m)))


def _accuracy(p, t, m):
    return _masked_mean(np.argmax(p, axis=-1) == t, m)


def _binary_accuracy(p, t, m):
    return _masked_mean((p > 0) == (t > 0.5), m)


METRICS = {"mae": _mae, "mse": _mse, "rmse": _rmse, "accuracy": _accuracy, "binary_accuracy": _binary_accuracy}


def get_metric(metric):
    """A metric by name (see the module docstring), or a ``Metric`` as is."""
    if isinstance(metric, Metric):
        return metric
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: expected one of {sorted(METRICS)}")
    return Metric(metric, METRICS[metric])
