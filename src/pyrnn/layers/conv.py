"""Convolution and pooling over time on channels-last sequences: ``Conv1D``, ``MaxPool1D``, ``AvgPool1D``.

Legend: B = batch, T = time, C = input channels, O = output channels, K = kernel size,
U = output length, s = stride, d = dilation, pl/pr = zero padding left/right of the time axis.

Sequences are (B, T, C), the recurrent layers' layout, so ``Conv1D -> GRU`` needs no
transpose. Weights use PyTorch's layout and names (``weight`` (O, C, K), ``bias`` (O,)),
so ``torch.nn.Conv1d`` state dicts load directly; the numbers are those of torch on the
(B, C, T) transpose. The kernels' contract is :mod:`pyrnn.backends.conv_reference`.

- Conv1D: ``y[b, u, o] = bias[o] + sum_{c,k} weight[o, c, k] xp[b, u*s + k*d, c]``
- MaxPool1D: ``y[b, u, c] = max_k xp[b, u*s + k, c]`` (padding -inf)
- AvgPool1D: ``y[b, u, c] = (1/K) sum_k xp[b, u*s + k, c]`` (zero padding, counted)

with ``U = (T + pl + pr - d*(K-1) - 1) // s + 1``.
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import as_float_array, check_bool, check_int, check_ndim, check_seed, check_shape
from ..backends import backend_module, get_backend
from ..backends.bfloat16 import round_bf16
from ..backends.reference import gemm_operand
from .base import Layer
from .dense import column_sums

PADDING_MODES = ("valid", "same", "causal")


def _check_length(T, kernel_size, dilation, pad_left, pad_right):
    """Refuse a T that leaves no output step, naming every size involved."""
    span = dilation * (kernel_size - 1) + 1
    if T + pad_left + pad_right < span:
        raise ValueError(
            f"x: expected T >= {span - pad_left - pad_right} time steps for kernel_size={kernel_size}, "
            f"dilation={dilation}, padding=({pad_left}, {pad_right}), got T={T} (the output would have length 0)"
        )


class Conv1D(Layer):
    """1-D convolution over time (cross-correlation, as ``torch.nn.Conv1d``), channels-last.

    Parameters
    ----------
    in_channels : int
        C, channels of the input (its last axis).
    out_channels : int
        O, channels of the output.
    kernel_size : int
        K, taps per output step.
    stride : int
        s, time steps between output steps.
    padding : int, (int, int), "valid", "same" or "causal"
        Zero padding of the time axis: an int pads both sides, a pair is (left, right);
        "valid" is none; "same" gives ``U = ceil(T / s)`` (T for stride 1), the total
        ``max((U-1)*s + d*(K-1) + 1 - T, 0)`` split as TensorFlow/Keras do (the extra
        step on the right; for stride 1 this is torch's ``padding="same"``); "causal"
        pads ``d*(K-1)`` on the left only, so ``y[:, t]`` sees no input after t.
    dilation : int
        d, time steps between taps.
    bias : bool
        Whether the ``bias`` parameter exists.
    dtype : float32, float64 or "bfloat16"
        "bfloat16": mixed precision (float32 parameters, inputs and outputs; the convolution's
        products take bfloat16-rounded x, weight and dy with float32 sums, the bias and its gradient
        stay float32: :mod:`pyrnn.backends.bfloat16`). Computed by rounding the operands, then the
        float32 kernels (an emulation: no bf16 convolution kernel yet).
    seed : int or None
        Seed of the default init, torch's: ``U(-1/sqrt(C*K), 1/sqrt(C*K))`` for weight and bias.

    Notes
    -----
    ``forward(x)``: x (B, T, C) -> y (B, U, O). ``backward(dy)``: dy (B, U, O) -> dx (B, T, C),
    adding the weight gradients into :attr:`grads`.
    """

    supports_bfloat16 = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True,
                 dtype=np.float32, seed=None):
        super().__init__(dtype)
        self.in_channels = check_int("in_channels", in_channels, 1)
        self.out_channels = check_int("out_channels", out_channels, 1)
        self.kernel_size = check_int("kernel_size", kernel_size, 1)
        self.stride = check_int("stride", stride, 1)
        self.dilation = check_int("dilation", dilation, 1)
        self.padding = self._check_padding(padding)
        self.bias = check_bool("bias", bias)
        self.seed = check_seed("seed", seed)
        rng = np.random.default_rng(self.seed)
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size)
        init = lambda shape: rng.uniform(-bound, bound, shape)  # noqa: E731
        self.add_param("weight", (self.out_channels, self.in_channels, self.kernel_size), init)
        if self.bias:
            self.add_param("bias", (self.out_channels,), init)

    @staticmethod
    def _check_padding(padding):
        if isinstance(padding, str):
            if padding not in PADDING_MODES:
                raise ValueError(
                    f"padding: expected one of {list(PADDING_MODES)}, an int or a pair (left, right), got {padding!r}"
                )
            return padding
        if isinstance(padding, (tuple, list)):
            if len(padding) != 2:
                raise ValueError(f"padding: expected a pair (left, right), got {padding!r}")
            return (check_int("padding[0]", padding[0], 0), check_int("padding[1]", padding[1], 0))
        return check_int("padding", padding, 0)

    def padding_for(self, T):
        """The (left, right) zero padding this layer applies to a sequence of length T."""
        K, s, d, p = self.kernel_size, self.stride, self.dilation, self.padding
        if p == "valid":
            return 0, 0
        if p == "causal":
            return d * (K - 1), 0
        if p == "same":
            total = max((-(-T // s) - 1) * s + d * (K - 1) + 1 - T, 0)
            return total // 2, total - total // 2
        return (p, p) if isinstance(p, int) else p

    # y[b, u, o] = bias[o] + sum_{c,k} weight[o, c, k] xp[b, u*s + k*d, c]
    def forward(self, x):
        """Convolve over time.

        Parameters
        ----------
        x : array (B, T, C), any float dtype (cast to the layer's dtype)

        Returns
        -------
        y : ndarray (B, U, O)
        """
        x = as_float_array("x", x, self.dtype)
        check_ndim("x", x, 3, "(batch, time, in_channels)")
        if x.shape[2] != self.in_channels:
            raise ValueError(f"x: expected in_channels={self.in_channels} channels in the last axis, got shape {x.shape}")
        pad_left, pad_right = self.padding_for(x.shape[1])
        _check_length(x.shape[1], self.kernel_size, self.dilation, pad_left, pad_right)
        backend = get_backend()
        op = gemm_operand(self.bfloat16)  # bfloat16: the products' operands rounded to it
        x = op(x)
        y = backend_module(backend).conv1d_forward(
            x, op(self.params["weight"]), self.params.get("bias"), self.stride, pad_left, pad_right, self.dilation
        )
        self._save((backend, x, pad_left, pad_right, y.shape))
        return y

    # dweight[o, c, k] += sum_{b,u} dy[b, u, o] xp[b, u*s + k*d, c];  dbias[o] += sum_{b,u} dy[b, u, o]
    # dx[b, t, c] = sum over the (u, k) with u*s + k*d - pl = t of sum_o dy[b, u, o] weight[o, c, k]
    def backward(self, dy):
        """Gradient of the last ``forward``.

        Parameters
        ----------
        dy : array (B, U, O), dL/dy

        Returns
        -------
        dx : ndarray (B, T, C)

        ``weight`` and ``bias`` gradients are added into :attr:`grads`.
        """
        backend, x, pad_left, pad_right, y_shape = self._peek_saved()
        dy = as_float_array("dy", dy, self.dtype)
        check_shape("dy", dy, y_shape, "(batch, time_out, out_channels) of the last forward")
        self._pop_saved()
        if not self.bfloat16:
            return backend_module(backend).conv1d_backward(
                x, self.params["weight"], dy, self.stride, pad_left, pad_right, self.dilation,
                self.grads["weight"], self.grads.get("bias"),
            )
        # bfloat16: x was rounded by forward; dy and the weight rounded here; the bias gradient sums float32 dy
        dx = backend_module(backend).conv1d_backward(
            x, round_bf16(self.params["weight"]), round_bf16(dy), self.stride, pad_left, pad_right, self.dilation,
            self.grads["weight"], None,
        )
        if self.bias:
            self.grads["bias"] += column_sums(dy.reshape(-1, self.out_channels))
        return dx

    def get_config(self):
        padding = list(self.padding) if isinstance(self.padding, tuple) else self.padding
        return dict(in_channels=self.in_channels, out_channels=self.out_channels, kernel_size=self.kernel_size,
                    stride=self.stride, padding=padding, dilation=self.dilation, bias=self.bias,
                    dtype=self.dtype_name, seed=self.seed)

    def __repr__(self):
        return (f"Conv1D({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding!r}, dilation={self.dilation}, bias={self.bias}, dtype={self.dtype_name})")


def _pool_input(x):
    """x as float64 if it is float64, else float32 (any other float is cast; non-floats refused)."""
    try:
        probe = x if isinstance(x, np.ndarray) else np.asarray(x)
    except Exception:  # ragged lists and the like: as_float_array words the error
        probe = x
    dt = getattr(probe, "dtype", None)
    dtype = np.float64 if dt is not None and dt.kind == "f" and dt.itemsize == 8 else np.float32  # any byte order
    return as_float_array("x", probe, dtype)


class _Pool1D(Layer):
    """Pooling over time, PyTorch's ``MaxPool1d``/``AvgPool1d`` (ceil_mode=False) on (B, T, C).

    Parameters
    ----------
    kernel_size : int
        K, time steps per window.
    stride : int or None
        s, time steps between windows; None means ``kernel_size`` (torch's default).
    padding : int
        Steps added on both sides of the time axis, at most ``kernel_size / 2`` (as torch).

    Notes
    -----
    No parameters. The dtype follows the input: float64 stays float64, any other float
    becomes float32. ``forward(x)``: (B, T, C) -> (B, U, C); ``backward(dy)`` -> dx (B, T, C).
    """

    kind = None  # "max" or "avg", set by the subclasses

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = check_int("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else check_int("stride", stride, 1)
        self.padding = check_int("padding", padding, 0)
        if 2 * self.padding > self.kernel_size:
            raise ValueError(f"padding: expected at most kernel_size / 2 = {self.kernel_size / 2}, got {self.padding}")

    def forward(self, x):
        """Pool over time: x (B, T, C) float -> y (B, U, C) of x's dtype (float32 or float64)."""
        x = _pool_input(x)
        check_ndim("x", x, 3, "(batch, time, channels)")
        p = self.padding
        _check_length(x.shape[1], self.kernel_size, 1, p, p)
        backend = get_backend()
        y, saved = backend_module(backend).pool1d_forward(self.kind, x, self.kernel_size, self.stride, p, p)
        self._save((backend, x.shape, saved, y.shape, x.dtype))
        return y

    def backward(self, dy):
        """dy (B, U, C) -> dx (B, T, C) of the last ``forward``."""
        backend, x_shape, saved, y_shape, dtype = self._peek_saved()
        dy = as_float_array("dy", dy, dtype)
        check_shape("dy", dy, y_shape, "(batch, time_out, channels) of the last forward")
        self._pop_saved()
        p = self.padding
        return backend_module(backend).pool1d_backward(self.kind, x_shape, dy, saved, self.kernel_size, self.stride, p, p)

    def get_config(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding)

    def __repr__(self):
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"


class MaxPool1D(_Pool1D):
    """Max over each window, padding counts as -inf (``torch.nn.MaxPool1d``). See :class:`_Pool1D`.

    ``y[b, u, c] = max_k xp[b, u*s + k, c]``; the gradient goes to the first maximum (a NaN wins).
    """

    kind = "max"


class AvgPool1D(_Pool1D):
    """Mean over each window, zero padding counted (``torch.nn.AvgPool1d``, count_include_pad=True).

    ``y[b, u, c] = (1/K) sum_k xp[b, u*s + k, c]``; each tap gets ``dy / K``. See :class:`_Pool1D`.
    """

    kind = "avg"
