"""The 2-D convolution contract, and its NumPy reference (the specification).

Legend: B = batch, H/W = input height/width, C = input channels (C_in), O = output channels
(C_out), G = groups, Cg = C/G and Og = O/G (channels per group), KH/KW = kernel height/width,
HO/WO = output height/width, s = (sh, sw) stride, d = (dh, dw) dilation, p = (pt, pb, pl, pr)
zero padding (top, bottom, left, right). Images are channels-last: x (B, H, W, C).

Every backend exposes these two functions (:class:`pyrnn.backends.contract.Conv2dBackend`).
Arrays are C-contiguous and of one float dtype (float32 or float64); padding is explicit (the
layers resolve "same"); stride, padding and dilation are tuples of ints.

``conv2d_forward(x, w, b, stride, padding, dilation, groups, activation=None) -> (y, saved)``
    x (B, H, W, C), w (O, Cg, KH, KW) in PyTorch's layout, b (O,) or None. y (B, HO, WO, O) with
    ``HO = (H + pt + pb - dh*(KH-1) - 1) // sh + 1`` (WO alike). Cross-correlation, exactly
    ``torch.nn.functional.conv2d`` on the (B, C, H, W) transpose: for output channel o of group
    g = o // Og,
    ``y[b, i, j, o] = b[o] + sum_{c<Cg, kh, kw} w[o, c, kh, kw] xp[b, i*sh + kh*dh, j*sw + kw*dw, g*Cg + c]``,
    xp = x zero-padded. ``activation`` ``"relu"`` or ``"tanh"`` is then applied to y (ReLU:
    ``y < 0 ? 0 : y``, a NaN stays NaN), the activation of an inference ``Conv2D -> (BatchNorm2D
    ->) ReLU/Tanh`` chain run as one call (:meth:`pyrnn.layers.Conv2D.fused_forward`); backward
    differentiates the convolution alone, so it is for forwards that keep nothing for backward. ``saved`` is a
    :class:`~pyrnn.backends.contract.Conv2dSaved` (x and the geometry; no copy).

``conv2d_backward(saved, dy, dw, db, need_dx=True) -> dx``
    dy (B, HO, WO, O). ADDS the weight gradient into dw (O, Cg, KH, KW) and the bias gradient
    into db (O,); either may be None (not wanted; with dw None, ``saved.x`` may be None too).
    Returns dx of shape ``saved.x_shape``, or None with ``need_dx=False``.

The data gradient with ``saved.x`` None is how ConvTranspose2D's forward runs (the adjoint),
and its backward is ``conv2d_forward`` plus ``conv2d_backward(..., need_dx=False)``.

An output size HO or WO < 1 is a ValueError; H = 0 or W = 0 is allowed when the padding
covers a window; B = 0, C = 0 or O = 0 give correctly shaped (empty) results. The
``check_*`` functions below are part of the contract: every backend calls them before any
compiled code runs.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_kernel_array, check_kernel_input, is_int
from . import ordered
from .contract import Conv2dSaved

#: the activations conv2d_forward applies to its output
POST_ACTIVATIONS = (None, "relu", "tanh")


def activate(y, activation):
    """y = activation(y) in place: the ``activation`` of :func:`conv2d_forward` (ReLU: y < 0 ? 0 : y, a NaN
    stays NaN)."""
    if activation == "relu":
        np.copyto(y, 0, where=y < 0)
    elif activation == "tanh":
        np.tanh(y, out=y)


# --------------------------------------------------------------------- checks
def _check_ints(name, value, n, minimum):
    """``value`` as a tuple of n Python ints >= minimum (bools refused)."""
    if type(value) is tuple and len(value) == n and all(type(v) is int and v >= minimum for v in value):
        return value  # what the layers pass, at every call: the rest of the checks cost ~3 us
    if not isinstance(value, (tuple, list)) or len(value) != n or any(
            not is_int(v) or v < minimum for v in value):
        raise ValueError(f"{name}: expected a tuple of {n} integers >= {minimum}, got {value!r}")
    return tuple(int(v) for v in value)




def conv2d_output_size(H, W, kernel, stride, padding, dilation):
    """(HO, WO) = ((H + pt + pb - dh*(KH-1) - 1) // sh + 1, likewise for W), checked to be >= 1."""
    out = []
    for axis, n, k, s, pa, pz, d in (("H", H, kernel[0], stride[0], padding[0], padding[1], dilation[0]),
                                     ("W", W, kernel[1], stride[1], padding[2], padding[3], dilation[1])):
        span = d * (k - 1) + 1
        if n + pa + pz < span:
            raise ValueError(
                f"expected {axis} + padding >= dilation*(kernel-1) + 1 = {span} ({axis}={n}, kernel={k}, dilation={d}, "
                f"padding=({pa}, {pz})), got an output size of 0"
            )
        out.append((n + pa + pz - span) // s + 1)
    return tuple(out)


def check_conv2d_geometry(stride, padding, dilation, groups):
    """stride (sh, sw) >= 1, padding (pt, pb, pl, pr) >= 0, dilation (dh, dw) >= 1, groups >= 1."""
    stride = _check_ints("stride", stride, 2, 1)
    padding = _check_ints("padding", padding, 4, 0)
    dilation = _check_ints("dilation", dilation, 2, 1)
    if not is_int(groups) or groups < 1:
        raise ValueError(f"groups: expected an integer >= 1, got {groups!r}")
    return stride, padding, dilation, int(groups)


def _check_weight(w, dtype, C, groups):
    """w (O, C/G, KH, KW) of ``dtype``, G dividing C and O; returns (O, KH, KW)."""
    if not isinstance(w, np.ndarray) or w.ndim != 4:
        what = f"shape {w.shape}" if isinstance(w, np.ndarray) else type(w).__name__
        raise ValueError(f"w: expected a 4-D array (C_out, C_in/groups, kH, kW), got {what}")
    O, _, KH, KW = w.shape
    if C % groups or O % groups:
        raise ValueError(f"groups: expected a divisor of C_in={C} and C_out={O}, got {groups}")
    check_kernel_array("w", w, dtype, (O, C // groups, KH, KW), "(C_out, C_in/groups, kH, kW)")
    if KH < 1 or KW < 1:
        raise ValueError(f"w: expected a kernel size of at least 1x1, got shape {w.shape}")
    return O, KH, KW


def check_conv2d_forward(x, w, b, stride, padding, dilation, groups, activation=None):
    """Check the forward arguments against the contract; returns (stride, padding, dilation,
    groups) normalised and the output shape (B, HO, WO, O)."""
    check_kernel_input("x", x, 4, "(B, H, W, C_in)")
    if activation not in POST_ACTIVATIONS:
        raise ValueError(f"activation: expected None, 'relu' or 'tanh', got {activation!r}")
    stride, padding, dilation, groups = check_conv2d_geometry(stride, padding, dilation, groups)
    B, H, W, C = x.shape
    O, KH, KW = _check_weight(w, x.dtype, C, groups)
    if b is not None:
        check_kernel_array("b", b, x.dtype, (O,), "(C_out,)")
    HO, WO = conv2d_output_size(H, W, (KH, KW), stride, padding, dilation)
    return (stride, padding, dilation, groups), (B, HO, WO, O)


def check_conv2d_backward(saved, dy, dw, db, need_dx=True):
    """Check the backward arguments; returns the geometry normalised and dy's shape (B, HO, WO, O)."""
    if not isinstance(saved, Conv2dSaved):
        raise TypeError(f"saved: expected a Conv2dSaved, got {type(saved).__name__}")
    if not isinstance(need_dx, (bool, np.bool_)):
        raise TypeError(f"need_dx: expected True or False, got {type(need_dx).__name__}")
    x_shape = saved.x_shape
    if not isinstance(x_shape, tuple) or len(x_shape) != 4 or any(
            not is_int(n) or n < 0 for n in x_shape):
        raise ValueError(f"saved.x_shape: expected (B, H, W, C_in), 4 non-negative integers, got {x_shape!r}")
    w = saved.w
    if not isinstance(w, np.ndarray) or w.dtype not in (np.float32, np.float64):
        raise TypeError(f"w: expected a float32 or float64 numpy.ndarray, got {getattr(w, 'dtype', type(w).__name__)}")
    dt = w.dtype
    if saved.x is not None:
        check_kernel_array("x", saved.x, dt, x_shape, "(B, H, W, C_in)")
    elif dw is not None:
        raise ValueError("saved.x: expected the forward's input for a weight gradient (dw given), got None")
    geometry = check_conv2d_geometry(saved.stride, saved.padding, saved.dilation, saved.groups)
    B, H, W, C = x_shape
    O, KH, KW = _check_weight(w, dt, C, geometry[3])
    HO, WO = conv2d_output_size(H, W, (KH, KW), *geometry[:3])
    check_kernel_array("dy", dy, dt, (B, HO, WO, O), "(B, H_out, W_out, C_out)")
    if dw is not None:
        check_kernel_array("dw", dw, dt, w.shape, "(C_out, C_in/groups, kH, kW)", writable=True)
    if db is not None:
        check_kernel_array("db", db, dt, (O,), "(C_out,)", writable=True)
    return geometry, (B, HO, WO, O)


# ----------------------------------------------------------------- reference
def _windows(x, kernel, stride, padding, dilation, out_hw):
    """win[b, i, j, c, kh, kw] = xp[b, i*sh + kh*dh, j*sw + kw*dw, c]: a strided view, (B, HO, WO, C, KH, KW)."""
    (KH, KW), (sh, sw), (pt, pb, pl, pr), (dh, dw) = kernel, stride, padding, dilation
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    spans = (dh * (KH - 1) + 1, dw * (KW - 1) + 1)
    win = np.lib.stride_tricks.sliding_window_view(xp, spans, axis=(1, 2))  # (B, ., ., C, span_h, span_w)
    return win[:, ::sh, ::sw, :, ::dh, ::dw][:, : out_hw[0], : out_hw[1]]


def _group(g, n_per_group):
    return slice(g * n_per_group, (g + 1) * n_per_group)


# y[b, i, j, o] = b[o] + sum_{c, kh, kw} w[o, c, kh, kw] win[b, i, j, g*Cg + c, kh, kw],  g = o // Og
def conv2d_forward(x, w, b, stride, padding, dilation, groups, activation=None):
    """See the module docstring."""
    (stride, padding, dilation, groups), (B, HO, WO, O) = check_conv2d_forward(x, w, b, stride, padding, dilation, groups,
                                                                               activation)
    Cg, Og = w.shape[1], O // groups
    win = _windows(x, w.shape[2:], stride, padding, dilation, (HO, WO))
    y = np.zeros((B, HO, WO, O), x.dtype)
    for g in range(groups):
        y[..., _group(g, Og)] = np.tensordot(win[..., _group(g, Cg), :, :], w[_group(g, Og)], axes=([3, 4, 5], [1, 2, 3]))
    if b is not None:
        y += b
    activate(y, activation)
    return y, Conv2dSaved(x, x.shape, w, stride, padding, dilation, groups)


# dw[o, c, kh, kw] += sum_{b,i,j} dy[b, i, j, o] win[b, i, j, g*Cg + c, kh, kw];   db[o] += sum_{b,i,j} dy[b, i, j, o]
# dx[b, i*sh + kh*dh - pt, j*sw + kw*dw - pl, g*Cg + c] += sum_{o in g} dy[b, i, j, o] w[o, c, kh, kw]
#   (taps that fall in the padding are dropped)
def conv2d_backward(saved, dy, dw, db, need_dx=True):
    """See the module docstring."""
    (stride, padding, dilation, groups), (B, HO, WO, O) = check_conv2d_backward(saved, dy, dw, db, need_dx)
    w = saved.w
    Cg, KH, KW = w.shape[1:]
    Og = O // groups
    if db is not None:
        db += dy.sum(axis=(0, 1, 2))
    if dw is not None:
        win = _windows(saved.x, (KH, KW), stride, padding, dilation, (HO, WO))
        for g in range(groups):
            rows = dy[..., _group(g, Og)].reshape(B * HO * WO, Og)  # a sum over the pixels: thread-count independent
            cols = win[..., _group(g, Cg), :, :].reshape(B * HO * WO, Cg * KH * KW)
            dw[_group(g, Og)] += ordered.matmul(rows.T, cols).reshape(Og, Cg, KH, KW)
    if not need_dx:
        return None
    (sh, sw), (pt, pb, pl, pr), (dh, dwd) = stride, padding, dilation
    _, H, W, C = saved.x_shape
    dxp = np.zeros((B, pt + H + pb, pl + W + pr, C), w.dtype)
    for g in range(groups):
        dwin = np.tensordot(dy[..., _group(g, Og)], w[_group(g, Og)], axes=([3], [0]))  # (B, HO, WO, Cg, KH, KW)
        for kh in range(KH):
            for kw in range(KW):  # one tap: distinct output pixels read distinct input pixels
                rows = slice(kh * dh, kh * dh + sh * (HO - 1) + 1, sh)
                cols = slice(kw * dwd, kw * dwd + sw * (WO - 1) + 1, sw)
                dxp[:, rows, cols, _group(g, Cg)] += dwin[..., kh, kw]
    return np.ascontiguousarray(dxp[:, pt : pt + H, pl : pl + W])
