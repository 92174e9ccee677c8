"""Elementwise activations without parameters: ``ReLU``, ``LeakyReLU``, ``Tanh``, ``Sigmoid``,
``GELU``, ``Softmax``, ``Identity`` (PyTorch's formulas, names and defaults).

Legend: x = input, y = output, dy = dL/dy, dx = dL/dx; every array has any shape
(...), and y, dy, dx have the shape of x. ``*`` is elementwise.

The dtype follows the input: float32 stays float32, float64 stays float64
(float16 is widened to float32); integer, boolean, complex and object inputs raise
TypeError. Where the derivative can be read from the output (ReLU, Tanh, Sigmoid,
Softmax), backward uses the saved output and nothing else.

ReLU, LeakyReLU, Tanh and Sigmoid run on the current backend's activation kernels (contract and
NumPy reference: :mod:`pyrnn.backends.activation_reference`; ``cpp``: vectorised C++ loops over the
kernels' thread team); GELU, Softmax and Identity are NumPy on every backend.

This module also holds :class:`Elementwise`, the base of every layer whose output
has its input's shape (the activations and ``Dropout``), and the two helpers the
other parameterless layers share: :func:`float_input` and :func:`config_repr`.
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import check_choice, check_float, check_int, check_shape, float_input
from ..backends import backend_module, get_backend
from .base import Layer


def config_repr(layer):
    """``Name(key=value, ...)`` from :meth:`Layer.get_config`."""
    args = ", ".join(f"{k}={v!r}" for k, v in layer.get_config().items())
    return f"{type(layer).__name__}({args})"


class Elementwise(Layer):
    """Base of the layers whose output has the input's shape and dtype.

    Subclasses implement ``_forward(x) -> (y, saved)`` and ``_backward(dy, saved) -> dx``
    side by side; this class validates, casts and keeps ``saved`` for backward.
    """

    def forward(self, x):
        """Apply the layer.

        Parameters
        ----------
        x : array (...), float32 or float64 (the output has its dtype)

        Returns
        -------
        y : ndarray (...), same shape and dtype as x
        """
        x = float_input("x", x)
        y, saved = self._forward(x)
        self._save((saved, x.shape, x.dtype))
        return y

    def backward(self, dy):
        """Gradient w.r.t. the input of the last forward.

        Parameters
        ----------
        dy : array (...) with the shape of the last forward's output, dL/dy

        Returns
        -------
        dx : ndarray (...), dL/dx, in the dtype of the last forward's input
        """
        saved, shape, dtype = self._peek_saved()
        dy = float_input("dy", dy, dtype)
        check_shape("dy", dy, shape, "(the shape of the last forward's input)")
        self._pop_saved()
        return self._backward(dy, saved)

    def get_config(self):
        return {}

    __repr__ = config_repr


class Identity(Elementwise):
    """``y = x``: returns the input array itself (as ``torch.nn.Identity``) when it already is a
    C-contiguous float32/float64 array, otherwise its contiguous (or widened float16) copy."""

    # y = x
    def _forward(self, x):
        return x, None

    # dx = dy
    def _backward(self, dy, saved):
        return dy


class _Kernel(Elementwise):
    """An activation computed by the backend's elementwise kernels (``kind`` of
    :mod:`pyrnn.backends.activation_reference`, where the equations are), forward and backward on the
    backend of the forward."""

    kind = ""
    negative_slope = 0.0

    def _forward(self, x):
        backend = get_backend()
        y, saved = backend_module(backend).activation_forward(self.kind, x, self.negative_slope)
        return y, (backend, saved)

    def _backward(self, dy, saved):
        backend, saved = saved
        return backend_module(backend).activation_backward(self.kind, saved, dy, self.negative_slope)


class ReLU(_Kernel):
    """``y = max(x, 0)``; NaN propagates (as in PyTorch). Backward: ``dx = dy * [y > 0]``."""

    kind = "relu"


class LeakyReLU(_Kernel):
    """``y = x if x > 0 else negative_slope * x`` (PyTorch's ``LeakyReLU``). Backward:
    ``dx = dy if x > 0 else negative_slope * dy``.

    Parameters
    ----------
    negative_slope : float, default 0.01
        Any finite number (0 gives ReLU, negative values are allowed as in PyTorch).
    """

    kind = "leaky_relu"

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = check_float("negative_slope", negative_slope)

    def get_config(self):
        return {"negative_slope": self.negative_slope}


class Tanh(_Kernel):
    """``y = tanh(x)``. Backward: ``dx = dy * (1 - y^2)``."""

    kind = "tanh"


def sigmoid(x):
    """``1 / (1 + exp(-x))`` in NumPy without overflow: ``1 / (1 + e)`` for x >= 0 and ``e / (1 + e)``
    otherwise, e = exp(-|x|) (for the BCE loss on logits; the ``Sigmoid`` layer runs its backend's kernel)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e).astype(e.dtype, copy=False) / (1.0 + e)


class Sigmoid(_Kernel):
    """``y = 1 / (1 + exp(-x))``, overflow-free. Backward: ``dx = dy * y * (1 - y)``."""

    kind = "sigmoid"


_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


class GELU(Elementwise):
    """Gaussian error linear unit, ``y = x * Phi(x)`` (PyTorch's ``GELU``).

    Parameters
    ----------
    approximate : {"none", "tanh"}, default "none"
        ``"none"``: exact, ``Phi(x) = (1 + erf(x / sqrt(2))) / 2``, the standard normal CDF.
        ``"tanh"``: ``Phi(x) ~ (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2``.
    """

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = check_choice("approximate", approximate, ("none", "tanh"))

    # exact: y = x * P, P = (1 + erf(x / sqrt 2)) / 2
    # tanh:  y = x * (1 + t) / 2, t = tanh(sqrt(2/pi) (c + a c^3)), a = 0.044715, c = clip(x, -10, 10)
    #        (t is exactly +-1 beyond |x| = 10 either way; the clip only keeps c^3 from overflowing)
    def _forward(self, x):
        if self.approximate == "none":
            from scipy.special import erf  # lazy: scipy loads in ~0.1 s

            cdf = 0.5 * (1 + erf(x * _SQRT_HALF))
            return x * cdf, (x, cdf)
        c = np.clip(x, -10, 10)
        t = np.tanh(_SQRT_2_OVER_PI * (c + _GELU_CUBIC * c * c * c))
        return 0.5 * x * (1 + t), (c, t)

    # exact: dx = dy * (P + x * exp(-x^2 / 2) / sqrt(2 pi))
    # tanh:  dx = dy * ((1 + t) / 2 + c (1 - t^2) sqrt(2/pi) (1 + 3 a c^2) / 2)
    def _backward(self, dy, saved):
        if self.approximate == "none":
            x, cdf = saved
            with np.errstate(over="ignore"):  # x^2 overflows to inf for huge |x|: exp(-inf) = 0 is right
                x2 = x * x
            return dy * (cdf + x * np.exp(-0.5 * x2) * _INV_SQRT_2PI)
        c, t = saved
        return dy * (0.5 * (1 + t) + 0.5 * c * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * _GELU_CUBIC * c * c))

    def get_config(self):
        return {"approximate": self.approximate}


class Softmax(Elementwise):
    """``y = exp(x) / sum(exp(x))`` along ``axis`` (PyTorch's ``Softmax(dim=axis)``).

    Parameters
    ----------
    axis : int, default -1
        The axis normalised to sum 1; must exist in every input.

    Notes
    -----
    Computed as ``exp(x - max(x))`` so large inputs do not overflow. A slice that is all
    ``-inf`` (fully masked) gives NaN, as in PyTorch.
    """

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = check_int("axis", axis, None, None)

    # y = exp(x - m) / sum_axis exp(x - m), m = max_axis x
    def _forward(self, x):
        if not -x.ndim <= self.axis < x.ndim:
            raise ValueError(f"x: expected an array with axis {self.axis}, got {x.ndim}-D with shape {x.shape}")
        if x.size == 0:  # nothing to normalise (max() of an empty axis would raise)
            return x.copy(), x.copy()
        # inf - inf in an all -inf slice gives NaN, as in PyTorch; -max - max overflows to -inf: exp gives 0
        with np.errstate(invalid="ignore", over="ignore"):
            e = np.exp(x - x.max(axis=self.axis, keepdims=True))
        y = e / e.sum(axis=self.axis, keepdims=True)
        return y, y

    # dx = y * (dy - sum_axis(dy * y))
    def _backward(self, dy, y):
        return y * (dy - np.sum(dy * y, axis=self.axis, keepdims=True))

    def get_config(self):
        return {"axis": self.axis}
