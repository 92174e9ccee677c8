"""Pooling, upsampling and flattening of channels-last images: ``MaxPool2D``, ``AvgPool2D``,
``GlobalAvgPool2D``, ``Upsample2D``, ``Flatten``.

Legend: B = batch, H/W = height/width, C = channels, OH/OW = output height/width, kh/kw = kernel,
sh/sw = stride, ph/pw = padding, dh/dw = dilation, i/j = tap of the window along H/W.

Images are (B, H, W, C), as Conv1D's sequences are (B, T, C); the numbers are PyTorch's on the
(B, C, H, W) transpose (``torch.nn.MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d(1)``,
``Upsample``, ``Flatten``). None of these layers has parameters: the dtype follows the input
(float64 stays float64, float32 stays float32, float16 is widened to float32). The kernels'
contract is :mod:`pyrnn.backends.pool2d_reference`.

- MaxPool2D: ``y[b, oh, ow, c] = max_{i,j} xp[b, oh*sh + i*dh, ow*sw + j*dw, c]`` (padding -inf)
- AvgPool2D: ``y[b, oh, ow, c] = (1/D) sum_{i,j} xp[b, oh*sh + i, ow*sw + j, c]`` (padding 0)
- GlobalAvgPool2D: ``y[b, c] = (1/(H*W)) sum_{h,w} x[b, h, w, c]``
- Upsample2D: ``y[b, p, q, c] = sum_{h,w} Mh[p, h] x[b, h, w, c] Mw[q, w]``
- Flatten: ``y[b, (c*H + h)*W + w] = x[b, h, w, c]`` (torch's NCHW order)

with, per axis, ``O = floor((L + 2p - d*(k-1) - 1 + (ceil_mode ? s-1 : 0)) / s) + 1``, less one if
ceil_mode and the last window would start at or after ``L + p`` (torch's rule).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._checks import check_array_size, check_bool, check_choice, check_int, check_ndim, check_shape, float_input
from ..backends import backend_module, get_backend
from ..backends.pool2d_reference import pool2d_output_shape
from .base import Layer


def _pair(name, value, minimum):
    """An int or an (h, w) pair of ints as a tuple (h, w); wrong type TypeError, wrong value ValueError."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name}: expected an int or a pair (h, w), got {len(value)} values {tuple(value)!r}")
        return check_int(f"{name}[0]", value[0], minimum), check_int(f"{name}[1]", value[1], minimum)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int or a pair (h, w) of ints, got {type(value).__name__} {value!r}")
    v = check_int(name, value, minimum)
    return v, v


def _image(x):
    """x as a float32/float64 (B, H, W, C) array (its own dtype; float16 widened)."""
    x = float_input("x", x)
    check_ndim("x", x, 4, "(batch, height, width, channels)")
    return x


class _NoWork(NamedTuple):
    """What a forward saves when x has no elements (B or C is 0): no kernel runs, forward or backward.
    A kernel would still walk every window or output pixel of the empty image, which takes hours when
    H and W (or the upsampling factors) are huge."""

    x_shape: tuple
    dtype: np.dtype


def _run_forward(x, y_shape, kernel):
    """``kernel(backend module) -> (y, saved)`` on the current backend; zeros and no kernel for an empty x.
    Returns (y, backend, saved), backend None for the empty case."""
    if x.size == 0:
        return np.zeros(y_shape, x.dtype), None, _NoWork(x.shape, x.dtype)
    backend = get_backend()
    y, saved = kernel(backend_module(backend))
    return y, backend, saved


def _run_backward(backend, saved, kernel):
    """``kernel(backend module) -> dx`` on the forward's backend; zeros after an empty forward."""
    return np.zeros(saved.x_shape, saved.dtype) if backend is None else kernel(backend_module(backend))


class _Pool2D(Layer):
    """Shared forward/backward of the pooling layers (``kind`` and the geometry set by subclasses)."""

    kind = None

    def _geometry(self):
        dilation = getattr(self, "dilation", (1, 1))
        return dict(kernel=self.kernel_size, stride=self.stride, padding=self.padding, dilation=dilation,
                    ceil_mode=self.ceil_mode, count_include_pad=getattr(self, "count_include_pad", True))

    def _check_padding(self):
        half = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)
        if self.padding[0] > half[0] or self.padding[1] > half[1]:
            raise ValueError(f"padding: expected at most kernel_size // 2 = {half} (as torch), got {self.padding} "
                             f"for kernel_size={self.kernel_size}")

    def forward(self, x):
        """Pool.

        Parameters
        ----------
        x : array (B, H, W, C), float

        Returns
        -------
        y : ndarray (B, OH, OW, C), x's dtype (float32 or float64)
        """
        x = _image(x)
        g = self._geometry()
        B, H, W, C = x.shape
        OH, OW = pool2d_output_shape(H, W, g["kernel"], g["stride"], g["padding"], g["dilation"], g["ceil_mode"])
        y, backend, saved = _run_forward(x, (B, OH, OW, C), lambda kernels: kernels.pool2d_forward(self.kind, x, **g))
        self._save((backend, saved, y.shape))
        return y

    def backward(self, dy):
        """Gradient of the last ``forward``.

        Parameters
        ----------
        dy : array (B, OH, OW, C), dL/dy

        Returns
        -------
        dx : ndarray (B, H, W, C)
        """
        backend, saved, y_shape = self._peek_saved()
        dy = float_input("dy", dy, saved.dtype)
        check_shape("dy", dy, y_shape, "(batch, out_height, out_width, channels) of the last forward")
        self._pop_saved()
        return _run_backward(backend, saved, lambda kernels: kernels.pool2d_backward(saved, dy))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class MaxPool2D(_Pool2D):
    """Max over each window, padding counts as -inf (``torch.nn.MaxPool2d`` on the NCHW transpose).

    Parameters
    ----------
    kernel_size : int or (int, int)
        (kh, kw), taps per window.
    stride : int, (int, int) or None
        (sh, sw), steps between windows; None means ``kernel_size`` (torch's default).
    padding : int or (int, int)
        (ph, pw), added on both sides of each axis, at most ``kernel_size // 2`` (as torch).
    dilation : int or (int, int)
        (dh, dw), steps between taps.
    ceil_mode : bool
        Round the output size up: one more window if it starts inside x or the left padding.

    Notes
    -----
    ``y[b, oh, ow, c] = max_{i,j} xp[b, oh*sh + i*dh, ow*sw + j*dw, c]``. ``forward(x)``: (B, H, W, C) ->
    (B, OH, OW, C); ``backward(dy)`` sends each dy to the first maximum of its window in window order
    (i, then j: torch's choice on ties; a NaN wins); a window lying wholly in the padding (possible
    only with dilation) gives -inf and no gradient.
    """

    kind = "max"

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else _pair("stride", stride, 1)
        self.padding = _pair("padding", padding, 0)
        self.dilation = _pair("dilation", dilation, 1)
        self.ceil_mode = check_bool("ceil_mode", ceil_mode)
        self._check_padding()

    def get_config(self):
        return dict(kernel_size=list(self.kernel_size), stride=list(self.stride), padding=list(self.padding),
                    dilation=list(self.dilation), ceil_mode=self.ceil_mode)


class AvgPool2D(_Pool2D):
    """Mean over each window (``torch.nn.AvgPool2d`` on the NCHW transpose).

    Parameters
    ----------
    kernel_size : int or (int, int)
        (kh, kw), taps per window.
    stride : int, (int, int) or None
        (sh, sw); None means ``kernel_size``.
    padding : int or (int, int)
        (ph, pw) zeros on both sides of each axis, at most ``kernel_size // 2``.
    ceil_mode : bool
        Round the output size up (see :class:`MaxPool2D`).
    count_include_pad : bool
        Whether the zero padding counts in the divisor.

    Notes
    -----
    ``y[b, oh, ow, c] = (1/D) sum_{i,j} xp[b, oh*sh + i, ow*sw + j, c]`` with torch's divisor
    ``D = Dh[oh] * Dw[ow]``, per axis ``start = o*s - p``, ``end = min(start + k, L + p)``:
    ``D = end - start`` with count_include_pad, else ``min(end, L) - max(start, 0)`` (so a
    ceil_mode window running past the padded input is divided by what it covers). Each tap inside
    x gets ``dy / D`` in backward.
    """

    kind = "avg"

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else _pair("stride", stride, 1)
        self.padding = _pair("padding", padding, 0)
        self.ceil_mode = check_bool("ceil_mode", ceil_mode)
        self.count_include_pad = check_bool("count_include_pad", count_include_pad)
        self._check_padding()

    def get_config(self):
        return dict(kernel_size=list(self.kernel_size), stride=list(self.stride), padding=list(self.padding),
                    ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)


class GlobalAvgPool2D(Layer):
    """Mean over height and width (``torch.nn.AdaptiveAvgPool2d(1)`` then flatten).

    Notes
    -----
    ``y[b, c] = (1/(H*W)) sum_{h,w} x[b, h, w, c]``. ``forward(x)``: (B, H, W, C) -> (B, C);
    ``backward(dy)``: (B, C) -> dx (B, H, W, C), ``dx[b, h, w, c] = dy[b, c] / (H*W)``.
    Runs as the backend's average pool with one (H, W) window.
    """

    def forward(self, x):
        """Average over space: x (B, H, W, C) float -> y (B, C) of x's dtype."""
        x = _image(x)
        B, H, W, C = x.shape
        if H < 1 or W < 1:
            raise ValueError(f"x: expected H >= 1 and W >= 1, got H={H}, W={W} (shape {x.shape})")
        y, backend, saved = _run_forward(
            x, (B, 1, 1, C), lambda kernels: kernels.pool2d_forward("avg", x, (H, W), (H, W), (0, 0), (1, 1), False, True))
        self._save((backend, saved))
        return y.reshape(B, C)

    def backward(self, dy):
        """dy (B, C) -> dx (B, H, W, C) of the last ``forward``."""
        backend, saved = self._peek_saved()
        B, _, _, C = saved.x_shape
        dy = float_input("dy", dy, saved.dtype)
        check_shape("dy", dy, (B, C), "(batch, channels) of the last forward")
        self._pop_saved()
        return _run_backward(backend, saved, lambda kernels: kernels.pool2d_backward(saved, dy.reshape(B, 1, 1, C)))

    def get_config(self):
        return {}

    def __repr__(self):
        return "GlobalAvgPool2D()"


class Upsample2D(Layer):
    """Upsampling by integer factors (``torch.nn.Upsample(scale_factor, mode)`` on the NCHW transpose).

    Parameters
    ----------
    scale_factor : int or (int, int)
        (sh, sw) >= 1: the output is (B, H*sh, W*sw, C).
    mode : "nearest" or "bilinear"
        "nearest": ``y[b, p, q] = x[b, p // sh, q // sw]``. "bilinear" (align_corners=False), per
        axis ``src = max((o + 0.5)/s - 0.5, 0)``, ``i0 = floor(src)``, ``i1 = min(i0 + 1, L - 1)``,
        ``l1 = src - i0``, ``l0 = 1 - l1``: ``y = sum_{a,b} lh_a lw_b x[b, ih_a, iw_b]``.

    Notes
    -----
    ``y[b, :, :, c] = Mh x[b, :, :, c] Mw^T`` with the interpolation matrices Mh (H*sh, H), Mw (W*sw, W);
    ``backward(dy)``: ``dx[b, :, :, c] = Mh^T dy[b, :, :, c] Mw`` (nearest: the sum of each sh x sw block).
    """

    def __init__(self, scale_factor, mode="nearest"):
        super().__init__()
        self.scale_factor = _pair("scale_factor", scale_factor, 1)
        self.mode = check_choice("mode", mode, ("nearest", "bilinear"))

    def forward(self, x):
        """Upsample: x (B, H, W, C) float -> y (B, H*sh, W*sw, C) of x's dtype."""
        x = _image(x)
        if x.shape[1] < 1 or x.shape[2] < 1:
            raise ValueError(f"x: expected H >= 1 and W >= 1, got H={x.shape[1]}, W={x.shape[2]} (shape {x.shape})")
        B, H, W, C = x.shape
        y_shape = (B, H * self.scale_factor[0], W * self.scale_factor[1], C)
        check_array_size("x", y_shape, x.dtype, "output")
        y, backend, saved = _run_forward(x, y_shape, lambda kernels: kernels.upsample2d_forward(x, self.scale_factor, self.mode))
        self._save((backend, saved, y.shape))
        return y

    def backward(self, dy):
        """dy (B, H*sh, W*sw, C) -> dx (B, H, W, C) of the last ``forward``."""
        backend, saved, y_shape = self._peek_saved()
        dy = float_input("dy", dy, saved.dtype)
        check_shape("dy", dy, y_shape, "(batch, height*sh, width*sw, channels) of the last forward")
        self._pop_saved()
        return _run_backward(backend, saved, lambda kernels: kernels.upsample2d_backward(saved, dy))

    def get_config(self):
        return dict(scale_factor=list(self.scale_factor), mode=self.mode)

    def __repr__(self):
        return f"Upsample2D(scale_factor={self.scale_factor}, mode={self.mode!r})"


class Flatten(Layer):
    """Everything after the batch axis in one axis, **in PyTorch's channels-first order**.

    (B, H, W, C) -> (B, C*H*W) with ``y[b, (c*H + h)*W + w] = x[b, h, w, c]``: exactly
    ``torch.nn.Flatten()`` on the (B, C, H, W) transpose, so the weights of a ``torch.nn.Linear``
    that follows ``Flatten`` in a torch CNN load unchanged into the ``Dense`` that follows this one.
    In general the last (channel) axis moves to position 1 before flattening: (B, T, C) flattens in
    torch's (B, C, T) order, and a (B, F) input is returned as it is (a copy).

    Notes
    -----
    ``forward(x)``: (B, d1, ..., dn, C) -> (B, C*d1*...*dn), x's dtype; ``backward(dy)`` undoes the
    permutation: (B, C*d1*...*dn) -> dx of x's shape. No kernel: a transpose and a reshape.
    """

    def forward(self, x):
        """Flatten: x (B, ..., C) float, at least 2-D -> y (B, prod of the other axes)."""
        x = float_input("x", x)
        if x.ndim < 2:
            raise ValueError(f"x: expected an array of at least 2 dimensions (batch, ...), got {x.ndim}-D with shape {x.shape}")
        y = np.moveaxis(x, -1, 1).reshape(x.shape[0], math.prod(x.shape[1:]))
        if np.shares_memory(y, x):  # (B, F): a copy, never a view of the caller's array
            y = y.copy()
        self._save((x.shape, x.dtype, y.shape))
        return y

    def backward(self, dy):
        """dy (B, F) -> dx of the last forward's input shape."""
        x_shape, dtype, y_shape = self._peek_saved()
        dy = float_input("dy", dy, dtype)
        check_shape("dy", dy, y_shape, "(batch, flattened features) of the last forward")
        self._pop_saved()
        channels_first = (x_shape[0], x_shape[-1]) + tuple(x_shape[1:-1])
        dx = np.ascontiguousarray(np.moveaxis(dy.reshape(channels_first), 1, -1))
        return dx.copy() if np.shares_memory(dx, dy) else dx

    def get_config(self):
        return {}

    def __repr__(self):
        return "Flatten()"
