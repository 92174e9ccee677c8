"""The elementwise activation family's kernel contract, and its NumPy reference (the specification).

Legend: x = input, y = output, dy = dL/dy, dx = dL/dx, s = LeakyReLU's ``negative_slope``; every
array has any shape (...), C-contiguous, float32 or float64, and y, dy, dx have x's shape and dtype.
``*`` is elementwise.

``activation_forward(kind, x, negative_slope) -> (y, saved)``
    ``kind`` is one of :data:`KINDS`; ``negative_slope`` a finite real, read by ``"leaky_relu"`` only.
    ``y`` is a new array (never ``x`` itself, never written in place). ``saved`` is one ndarray, what
    backward reads: ``y`` for relu, tanh and sigmoid, ``x`` itself for leaky_relu (s may be <= 0, so
    the sign of y does not tell the sign of x).

``activation_backward(kind, saved, dy, negative_slope) -> dx``
    ``saved`` from the forward of the same kind (any backend's), dy of its shape and dtype; dx new.

The functions (torch's, with its NaN behaviour):

- ``relu``: ``y = max(x, 0)``, NaN propagates; ``dx = dy * [y > 0]`` as a select (torch's
  ``threshold_backward``): 0 where y <= 0 even for an infinite or NaN dy, dy where y > 0 or y is NaN;
- ``leaky_relu``: ``y = x if x > 0 else s * x``; ``dx = dy if x > 0 else s * dy``;
- ``tanh``: ``y = tanh(x)``; ``dx = dy * (1 - y^2)``;
- ``sigmoid``: ``y = 1 / (1 + exp(-x))``, computed without overflow; ``dx = dy * y * (1 - y)``.

Precision of the fast backends against this file: float64 to a few ulp; float32 tanh through a rational
approximation (``csrc/common/activations.inc``, absolute error <= 3.6e-7) and sigmoid through a polynomial
exp (a few ulp), everything else to an ulp of the formula (FMA contraction may round ``1 - y^2`` once).

The ``check_*`` functions below are part of the contract: every backend calls them before any
compiled code runs.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_float, check_kernel_array

#: the activations of this family, in the order of csrc/activation/activation.h's enum
KINDS = ("relu", "leaky_relu", "tanh", "sigmoid")


# --------------------------------------------------------------------- checks
def _check_kind(kind):
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"kind: expected one of {list(KINDS)}, got {kind!r}")


def check_activation_forward(kind, x, negative_slope):
    """Check the forward arguments against the contract; returns negative_slope as a Python float."""
    _check_kind(kind)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x: expected a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x: expected dtype float32 or float64, got {x.dtype}")
    check_kernel_array("x", x, x.dtype, x.shape, "(...)")
    return check_float("negative_slope", negative_slope)


def check_activation_backward(kind, saved, dy, negative_slope):
    """Check the backward arguments; returns negative_slope as a Python float."""
    _check_kind(kind)
    if not isinstance(saved, np.ndarray) or saved.dtype not in (np.float32, np.float64):
        what = type(saved).__name__ if not isinstance(saved, np.ndarray) else f"dtype {saved.dtype}"
        raise TypeError(f"saved: expected the float32 or float64 array activation_forward saved, got {what}")
    check_kernel_array("saved", saved, saved.dtype, saved.shape, "(...)")
    check_kernel_array("dy", dy, saved.dtype, saved.shape, "(the shape of the forward's x)")
    return check_float("negative_slope", negative_slope)


# ----------------------------------------------------------------- reference
def activation_forward(kind, x, negative_slope):
    """See the module docstring."""
    s = check_activation_forward(kind, x, negative_slope)
    if kind == "relu":  # y = max(x, 0)
        y = np.maximum(x, 0)
    elif kind == "leaky_relu":  # y = x if x > 0 else s x
        y = np.where(x > 0, x, x.dtype.type(s) * x)
    elif kind == "tanh":  # y = tanh(x)
        y = np.tanh(x)
    else:
        from scipy.special import expit  # y = 1 / (1 + exp(-x)), overflow-free (lazy: scipy loads in ~0.1 s)

        y = expit(x)
    y = np.asarray(y)  # an array even for a 0-D x (NumPy's ufuncs return scalars there)
    return y, (x if kind == "leaky_relu" else y)


def activation_backward(kind, saved, dy, negative_slope):
    """See the module docstring."""
    s = check_activation_backward(kind, saved, dy, negative_slope)
    if kind == "relu":  # dx = dy [y > 0], as a select
        dx = np.where(saved <= 0, saved.dtype.type(0), dy)
    elif kind == "leaky_relu":  # dx = dy if x > 0 else s dy
        dx = np.where(saved > 0, dy, saved.dtype.type(s) * dy)
    elif kind == "tanh":  # dx = dy (1 - y^2)
        dx = dy * (1 - saved * saved)
    else:  # sigmoid: dx = dy y (1 - y)
        dx = dy * saved * (1 - saved)
    return np.asarray(dx)
