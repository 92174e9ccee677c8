"""The conv family's kernel contract, and its NumPy reference (the specification).

Legend: B = batch, T = time (input length), U = output length, C = input channels (C_in),
O = output channels (C_out), K = kernel size, s = stride, d = dilation, pl/pr = zero
padding on the left/right of the time axis. Sequences are channels-last: (B, T, C).

Every backend exposes these four functions. Arrays are C-contiguous and of one float
dtype (float32 or float64); padding is explicit (the layers resolve "same"/"causal").

``conv1d_forward(x, w, b, stride, pad_left, pad_right, dilation) -> y``
    x (B, T, C), w (O, C, K) in PyTorch's layout, b (O,) or None. y (B, U, O) with
    ``U = (T + pl + pr - d*(K-1) - 1) // s + 1``. Cross-correlation, exactly
    ``torch.nn.functional.conv1d`` on the (B, C, T) transpose:
    ``y[b, u, o] = b[o] + sum_{c,k} w[o, c, k] xp[b, u*s + k*d, c]``, xp = x zero-padded.

``conv1d_backward(x, w, dy, stride, pad_left, pad_right, dilation, dw, db) -> dx``
    dy (B, U, O). ADDS into dw (O, C, K) and db (O,) (db may be None); returns dx (B, T, C).

``pool1d_forward(kind, x, kernel, stride, pad_left, pad_right) -> (y, saved)``
    kind "max": ``y[b, u, c] = max_k xp[b, u*s + k, c]`` with xp padded by -inf
    (PyTorch MaxPool1d); ``saved`` (B, U, C) int64 is the time index into x of the
    winner (the first maximum; a NaN wins and propagates). It lies outside [0, T)
    only if a whole window is padding. kind "avg": xp padded by zeros,
    ``y = (sum_k xp[b, u*s + k, c]) / K`` (AvgPool1d, count_include_pad=True); saved None.

``pool1d_backward(kind, x_shape, dy, saved, kernel, stride, pad_left, pad_right) -> dx``
    dy (B, U, C); returns dx of shape ``x_shape``.

An output length U < 1 is a ValueError; B = 0 or C = 0 or O = 0 give correctly shaped
(empty) results. The ``check_*`` functions below are part of the contract: every
backend's Python side calls them before any compiled code runs.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_kernel_array, check_kernel_input, is_int
from . import conv2d_reference
from .contract import Conv2dSaved

POOL_KINDS = ("max", "avg")


# --------------------------------------------------------------------- checks
def _check_int(name, value, minimum):
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)




def output_length(T, kernel, stride, pad_left, pad_right, dilation=1):
    """U = (T + pl + pr - d*(K-1) - 1) // s + 1, checked to be >= 1."""
    span = dilation * (kernel - 1) + 1
    if T + pad_left + pad_right < span:
        raise ValueError(
            f"expected T + pad_left + pad_right >= dilation*(kernel-1) + 1 = {span} (T={T}, kernel={kernel}, "
            f"dilation={dilation}, padding=({pad_left}, {pad_right})), got an output length of 0"
        )
    return (T + pad_left + pad_right - span) // stride + 1


def check_conv1d_forward(x, w, b, stride, pad_left, pad_right, dilation):
    """Check the forward arguments against the contract; returns (B, T, C, O, K, U)."""
    dt = check_kernel_input("x", x, 3, "(B, T, C_in)")
    if not isinstance(w, np.ndarray) or w.ndim != 3:
        what = f"shape {w.shape}" if isinstance(w, np.ndarray) else type(w).__name__
        raise ValueError(f"w: expected a 3-D array (C_out, C_in, K), got {what}")
    B, T, C = x.shape
    O, K = w.shape[0], w.shape[2]
    check_kernel_array("w", w, dt, (O, C, K), "(C_out, C_in, K)")
    if K < 1:
        raise ValueError(f"w: expected a kernel size K >= 1, got shape {w.shape}")
    if b is not None:
        check_kernel_array("b", b, dt, (O,), "(C_out,)")
    stride = _check_int("stride", stride, 1)
    dilation = _check_int("dilation", dilation, 1)
    pad_left, pad_right = _check_int("pad_left", pad_left, 0), _check_int("pad_right", pad_right, 0)
    return B, T, C, O, K, output_length(T, K, stride, pad_left, pad_right, dilation)


def check_conv1d_backward(x, w, dy, stride, pad_left, pad_right, dilation, dw, db):
    """Check the backward arguments; returns (B, T, C, O, K, U)."""
    B, T, C, O, K, U = check_conv1d_forward(x, w, None, stride, pad_left, pad_right, dilation)
    check_kernel_array("dy", dy, x.dtype, (B, U, O), "(B, T_out, C_out)")
    check_kernel_array("dw", dw, x.dtype, (O, C, K), "(C_out, C_in, K)", writable=True)
    if db is not None:
        check_kernel_array("db", db, x.dtype, (O,), "(C_out,)", writable=True)
    return B, T, C, O, K, U


def _check_pool_params(kind, kernel, stride, pad_left, pad_right):
    if kind not in POOL_KINDS:
        raise ValueError(f"kind: expected 'max' or 'avg', got {kind!r}")
    return (_check_int("kernel", kernel, 1), _check_int("stride", stride, 1),
            _check_int("pad_left", pad_left, 0), _check_int("pad_right", pad_right, 0))


def check_pool1d_forward(kind, x, kernel, stride, pad_left, pad_right):
    """Check the pooling arguments; returns (B, T, C, U)."""
    check_kernel_input("x", x, 3, "(B, T, C)")
    kernel, stride, pad_left, pad_right = _check_pool_params(kind, kernel, stride, pad_left, pad_right)
    B, T, C = x.shape
    return B, T, C, output_length(T, kernel, stride, pad_left, pad_right)


def check_pool1d_backward(kind, x_shape, dy, saved, kernel, stride, pad_left, pad_right):
    """Check the pooling backward arguments; returns (B, T, C, U)."""
    kernel, stride, pad_left, pad_right = _check_pool_params(kind, kernel, stride, pad_left, pad_right)
    try:
        shape = tuple(x_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or any(not is_int(n) or n < 0 for n in shape):
        raise ValueError(f"x_shape: expected a shape (B, T, C) of 3 non-negative integers, got {x_shape!r}")
    B, T, C = shape
    U = output_length(T, kernel, stride, pad_left, pad_right)
    check_kernel_input("dy", dy, 3, "(B, T_out, C)")
    check_kernel_array("dy", dy, dy.dtype, (B, U, C), "(B, T_out, C)")
    if kind == "max":
        check_kernel_array("saved", saved, np.int64, (B, U, C), "(B, T_out, C) argmax indices")
    return B, T, C, U


# ----------------------------------------------------------------- reference
def _padded(x, pad_left, pad_right, value=0.0):
    """x with ``value`` rows added before and after along time: (B, pl + T + pr, C)."""
    return np.pad(x, ((0, 0), (pad_left, pad_right), (0, 0)), constant_values=value)


def _taps(U, K, stride, dilation):
    """(U, K): the padded time index read by output step u at tap k, u*s + k*d."""
    return np.arange(U)[:, None] * stride + np.arange(K)[None, :] * dilation


# A sequence (B, T, C) is an image of height 1, (B, 1, T, C), and a kernel (O, C, K) one of (O, C, 1, K):
# Conv1D is the 2-D convolution's case H = 1, run by each backend's conv2d kernels (one engine, not two).
def conv1d_via(conv2d_forward, conv2d_backward):
    """The conv1d pair of a backend, over its conv2d pair (views: dw and db receive the gradients in place).

    y[b, u, o] = b[o] + sum_{c,k} w[o, c, k] xp[b, u*s + k*d, c] is conv2d's equation with
    one row, kernel height 1, stride (1, s), padding (0, 0, pl, pr) and dilation (1, d).
    """

    def conv1d_forward(x, w, b, stride, pad_left, pad_right, dilation):
        """See :mod:`pyrnn.backends.conv_reference`."""
        B, T, C, O, K, U = check_conv1d_forward(x, w, b, stride, pad_left, pad_right, dilation)
        y, _ = conv2d_forward(x.reshape(B, 1, T, C), w.reshape(O, C, 1, K), b, *_geometry_2d(stride, pad_left, pad_right, dilation))
        return y.reshape(B, U, O)

    def conv1d_backward(x, w, dy, stride, pad_left, pad_right, dilation, dw, db):
        """See :mod:`pyrnn.backends.conv_reference`."""
        B, T, C, O, K, U = check_conv1d_backward(x, w, dy, stride, pad_left, pad_right, dilation, dw, db)
        saved = Conv2dSaved(x.reshape(B, 1, T, C), (B, 1, T, C), w.reshape(O, C, 1, K),
                            *_geometry_2d(stride, pad_left, pad_right, dilation))
        dx = conv2d_backward(saved, dy.reshape(B, 1, U, O), dw.reshape(O, C, 1, K), db)  # dw: C-contiguous, a view
        return dx.reshape(B, T, C)

    return conv1d_forward, conv1d_backward


def _geometry_2d(stride, pad_left, pad_right, dilation):
    """conv2d's (stride, padding, dilation, groups) for a sequence seen as an image of height 1."""
    return (1, int(stride)), (0, 0, int(pad_left), int(pad_right)), (1, int(dilation)), 1


conv1d_forward, conv1d_backward = conv1d_via(conv2d_reference.conv2d_forward, conv2d_reference.conv2d_backward)


# max: y[b, u, c] = max_k xp[b, u*s + k, c] (padding -inf), saved = time index in x of the first maximum
# avg: y[b, u, c] = (sum_k xp[b, u*s + k, c]) / K (padding 0, counted)
def pool1d_forward(kind, x, kernel, stride, pad_left, pad_right):
    """See the module docstring."""
    B, T, C, U = check_pool1d_forward(kind, x, kernel, stride, pad_left, pad_right)
    taps = _taps(U, kernel, stride, 1)
    if kind == "avg":
        return _padded(x, pad_left, pad_right)[:, taps, :].sum(axis=2) / x.dtype.type(kernel), None
    windows = _padded(x, pad_left, pad_right, -np.inf)[:, taps, :]  # (B, U, K, C)
    first = np.argmax(windows, axis=2)  # the first maximum; NaN counts as the maximum
    y = np.take_along_axis(windows, first[:, :, None, :], axis=2)[:, :, 0, :]
    return np.ascontiguousarray(y), (taps[:, :1] - pad_left + first).astype(np.int64)


# max: dx[b, saved[b, u, c], c] += dy[b, u, c]
# avg: dx[b, u*s + k - pl, c] += dy[b, u, c] / K for every tap k inside x
def pool1d_backward(kind, x_shape, dy, saved, kernel, stride, pad_left, pad_right):
    """See the module docstring."""
    B, T, C, U = check_pool1d_backward(kind, x_shape, dy, saved, kernel, stride, pad_left, pad_right)
    if kind == "max":
        dx = np.zeros((B, T, C), dy.dtype)
        bb, _, cc = np.indices(dy.shape)
        inside = (saved >= 0) & (saved < T)
        np.add.at(dx, (bb[inside], saved[inside], cc[inside]), dy[inside])
        return dx
    dxp = np.zeros((B, pad_left + T + pad_right, C), dy.dtype)
    share = dy / dy.dtype.type(kernel)
    np.add.at(dxp, (slice(None), _taps(U, kernel, stride, 1)), np.broadcast_to(share[:, :, None, :], (B, U, kernel, C)))
    return np.ascontiguousarray(dxp[:, pad_left : pad_left + T])
