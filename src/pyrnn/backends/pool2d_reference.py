"""The 2-D pooling/upsampling family's kernel contract, and its NumPy reference (the specification).

Legend: B = batch, H/W = input height/width, C = channels, OH/OW = output height/width,
kh/kw = kernel, sh/sw = stride, ph/pw = padding (both sides of an axis), dh/dw = dilation.
Images are channels-last (B, H, W, C); the numbers are PyTorch's on the (B, C, H, W) transpose.
Every size pair is (h, w); arrays are C-contiguous and of one float dtype (float32 or float64).

``pool2d_forward(kind, x, kernel, stride, padding, dilation, ceil_mode, count_include_pad) -> (y, saved)``
    y (B, OH, OW, C); per axis (torch's ``pooling_output_shape``)::

        O = floor((L + 2p - d*(k-1) - 1 + (ceil_mode ? s-1 : 0)) / s) + 1,
        and O -= 1 if ceil_mode and (O-1)*s >= L + p  (the last window starts inside x or the left padding)

    Output (oh, ow) reads the taps ``ih = oh*sh - ph + i*dh``, ``iw = ow*sw - pw + j*dw``
    (0 <= i < kh, 0 <= j < kw); taps outside x are padding.

    kind "max" (``torch.nn.MaxPool2d``): ``y = max over the taps inside x`` (padding is -inf).
    ``saved.argmax`` (B, OH, OW, C) int64 is ``ih*W + iw`` of the winner: the first maximum in
    window order (i, then j), as torch's gradient; a NaN wins (the first NaN); if every tap is
    -inf the first tap inside x wins. A window with no tap inside x (possible only with
    dilation) gives -inf and argmax -1 (no gradient).

    kind "avg" (``torch.nn.AvgPool2d``, dilation (1, 1)): ``y = (sum over the taps inside x) / D``
    with ``D = Dh * Dw``, per axis ``start = o*s - p``, ``end = min(start + k, L + p)`` and
    ``D = end - start`` if count_include_pad, else ``min(end, L) - max(start, 0)`` (so a
    ceil_mode window running past the padded input is divided by what it covers). ``saved.argmax`` None.

``pool2d_backward(saved, dy) -> dx``
    dy (B, OH, OW, C) in x's dtype; dx (B, H, W, C). max: ``dx[b, argmax, c] += dy[b, oh, ow, c]``;
    avg: every tap inside x gets ``dy / D``.

``upsample2d_forward(x, scale, mode) -> (y, saved)``
    Integer scale (sh, sw) >= 1; y (B, H*sh, W*sw, C). mode "nearest": ``y[b, p, q] = x[b, p // sh, q // sw]``.
    mode "bilinear" (``torch.nn.Upsample``, align_corners=False), per axis:
    ``src = max((o + 0.5) / s - 0.5, 0)``, ``i0 = floor(src)``, ``i1 = min(i0 + 1, L - 1)``,
    ``l1 = src - i0``, ``l0 = 1 - l1``, and ``y = sum_{a,b in {0,1}} lh_a lw_b x[b, ih_a, iw_b]``,
    i.e. ``y[b, :, :, c] = Mh x[b, :, :, c] Mw^T`` with interpolation matrices Mh (OH, H), Mw (OW, W).
    Bilinear is specified for finite inputs (a weight 0 times an inf is NaN, as in torch).

``upsample2d_backward(saved, dy) -> dx``
    nearest: ``dx[b, h, w] = sum of dy over its sh x sw block``; bilinear: ``dx = Mh^T dy Mw``.

B = 0 or C = 0 give correctly shaped (empty) results; H = 0, W = 0 or an output size < 1 are a
ValueError naming every size. What forward saves is a :class:`~pyrnn.backends.contract.Pool2DSaved`
or :class:`~pyrnn.backends.contract.Upsample2DSaved` in every backend. The ``check_*`` and geometry
functions below are part of the contract: every backend's Python side calls them before any compiled code.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_kernel_input, is_int
from .contract import Pool2DSaved, Upsample2DSaved

POOL2D_KINDS = ("max", "avg")
UPSAMPLE_MODES = ("nearest", "bilinear")


# --------------------------------------------------------------------- geometry
def pool_output_size(L, kernel, stride, padding, dilation, ceil_mode):
    """O for one axis by torch's rule (see the module docstring); may be < 1."""
    span = dilation * (kernel - 1) + 1
    O = (L + 2 * padding - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (O - 1) * stride >= L + padding:
        O -= 1
    return O


def pool_least_size(kernel, stride, padding, dilation, ceil_mode):
    """The smallest L >= 1 with ``pool_output_size(L, ...) >= 1``: ``L + 2p - span`` (plus ``s - 1``
    with ceil_mode) must be >= 0, and a first window never starts past ``L + p`` when L >= 1. Closed
    form: a search over L would take up to 2**31 steps for a huge kernel or dilation."""
    span = dilation * (kernel - 1) + 1
    return max(1, span - 2 * padding - (stride - 1 if ceil_mode else 0))


def pool2d_output_shape(H, W, kernel, stride, padding, dilation, ceil_mode, name="x"):
    """(OH, OW), or a ValueError naming every size if an axis would have no output."""
    for axis, L, k, s, p, d in (("H", H, kernel[0], stride[0], padding[0], dilation[0]),
                                ("W", W, kernel[1], stride[1], padding[1], dilation[1])):
        if L < 1 or pool_output_size(L, k, s, p, d, ceil_mode) < 1:
            least = pool_least_size(k, s, p, d, ceil_mode)
            raise ValueError(
                f"{name}: expected {axis} >= {least} for kernel_size={tuple(kernel)}, stride={tuple(stride)}, "
                f"padding={tuple(padding)}, dilation={tuple(dilation)}, ceil_mode={ceil_mode}, got H={H}, W={W} "
                f"(the output would have no {'rows' if axis == 'H' else 'columns'})"
            )
    return (pool_output_size(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode),
            pool_output_size(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode))


def avg_divisors(L, O, kernel, stride, padding, count_include_pad):
    """(O,) int64: one axis's factor of the average's divisor D (see the module docstring)."""
    start = np.arange(O) * stride - padding
    end = np.minimum(start + kernel, L + padding)
    if count_include_pad:
        return end - start
    return np.minimum(end, L) - np.maximum(start, 0)


def upsample_axis(L, scale, mode):
    """(i0, i1, l0, l1), each (L*scale,): the two source indices and weights of every output index."""
    o = np.arange(L * scale)
    if mode == "nearest":
        i0 = o // scale
        return i0, i0.copy(), np.ones(o.size), np.zeros(o.size)
    src = np.maximum((1.0 / scale) * (o + 0.5) - 0.5, 0.0)  # torch's area_pixel_compute_source_index
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, L - 1)
    l1 = src - i0
    return i0, i1, 1.0 - l1, l1


# --------------------------------------------------------------------- checks
def _pair(name, value, minimum):
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    if len(pair) != 2 or any(not is_int(v) or v < minimum for v in pair):
        raise ValueError(f"{name}: expected a pair (h, w) of integers >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_dy(dy, shape, dtype):
    check_kernel_input("dy", dy, 4, "(B, H, W, C)")
    if dy.dtype != dtype:
        raise TypeError(f"dy: expected dtype {np.dtype(dtype).name} (the forward's), got {dy.dtype}")
    if dy.shape != tuple(shape):
        raise ValueError(f"dy: expected shape {tuple(shape)} (B, OH, OW, C), got {dy.shape}")


def check_pool2d_forward(kind, x, kernel, stride, padding, dilation, ceil_mode, count_include_pad):
    """Check the forward arguments; returns (B, H, W, C, OH, OW, kernel, stride, padding, dilation) as ints."""
    if kind not in POOL2D_KINDS:
        raise ValueError(f"kind: expected 'max' or 'avg', got {kind!r}")
    check_kernel_input("x", x, 4, "(B, H, W, C)")
    kernel, stride = _pair("kernel", kernel, 1), _pair("stride", stride, 1)
    padding, dilation = _pair("padding", padding, 0), _pair("dilation", dilation, 1)
    for flag, value in (("ceil_mode", ceil_mode), ("count_include_pad", count_include_pad)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{flag}: expected True or False, got {type(value).__name__} {value!r}")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"padding: expected at most kernel // 2 = {(kernel[0] // 2, kernel[1] // 2)}, got {padding}")
    if kind == "avg" and dilation != (1, 1):
        raise ValueError(f"dilation: expected (1, 1) for average pooling, got {dilation}")
    B, H, W, C = x.shape
    OH, OW = pool2d_output_shape(H, W, kernel, stride, padding, dilation, bool(ceil_mode))
    return B, H, W, C, OH, OW, kernel, stride, padding, dilation


def check_pool2d_backward(saved, dy):
    """Check the backward arguments; returns (B, H, W, C, OH, OW)."""
    if not isinstance(saved, Pool2DSaved):
        raise TypeError(f"saved: expected a Pool2DSaved from pool2d_forward, got {type(saved).__name__}")
    B, H, W, C = saved.x_shape
    OH, OW = pool2d_output_shape(H, W, saved.kernel, saved.stride, saved.padding, saved.dilation, saved.ceil_mode)
    _check_dy(dy, (B, OH, OW, C), saved.dtype)
    if saved.kind == "max":
        a = saved.argmax
        if not isinstance(a, np.ndarray) or a.dtype != np.int64 or a.shape != (B, OH, OW, C) or not a.flags.c_contiguous:
            raise ValueError(f"saved.argmax: expected a C-contiguous int64 array {(B, OH, OW, C)}, got {a!r:.100}")
    return B, H, W, C, OH, OW


def check_upsample2d_forward(x, scale, mode):
    """Check the forward arguments; returns (B, H, W, C, (sh, sw))."""
    check_kernel_input("x", x, 4, "(B, H, W, C)")
    scale = _pair("scale", scale, 1)
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"mode: expected one of {list(UPSAMPLE_MODES)}, got {mode!r}")
    B, H, W, C = x.shape
    if H < 1 or W < 1:
        raise ValueError(f"x: expected H >= 1 and W >= 1, got H={H}, W={W} (shape {x.shape})")
    return B, H, W, C, scale


def check_upsample2d_backward(saved, dy):
    """Check the backward arguments; returns (B, H, W, C)."""
    if not isinstance(saved, Upsample2DSaved):
        raise TypeError(f"saved: expected an Upsample2DSaved from upsample2d_forward, got {type(saved).__name__}")
    B, H, W, C = saved.x_shape
    _check_dy(dy, (B, H * saved.scale[0], W * saved.scale[1], C), saved.dtype)
    return B, H, W, C


# ----------------------------------------------------------------- reference
def _axis_taps(L, O, k, s, p, d):
    """(taps, before, after) of one axis: the taps i that read inside x for some output, and the padding
    that holds what they read. The other taps read only padding: nothing for a sum, never the winner of
    a max over a tap inside x; skipping them keeps a huge kernel (2**30 taps) from being walked tap by tap."""
    lo = max(0, -(((O - 1) * s - p) // d))  # the first i with i*d - p + (O-1)*s >= 0
    hi = min(k, (L - 1 + p) // d + 1)  # past the last i with i*d - p <= L - 1
    if hi <= lo:
        return range(0), 0, 0
    return range(lo, hi), max(0, p - lo * d), max(0, (hi - 1) * d - p + (O - 1) * s + 1 - L)


def _taps(H, W, OH, OW, kernel, stride, padding, dilation):
    """((top, bottom), (left, right), [(rows, cols)]): the padding of x, and for every tap of the window
    that reads inside x (in window order: i, then j) the slices of the padded image it reads for all outputs."""
    ti, top, bottom = _axis_taps(H, OH, kernel[0], stride[0], padding[0], dilation[0])
    tj, left, right = _axis_taps(W, OW, kernel[1], stride[1], padding[1], dilation[1])
    r0 = [i * dilation[0] - padding[0] + top for i in ti]
    c0 = [j * dilation[1] - padding[1] + left for j in tj]
    slices = [(slice(r, r + (OH - 1) * stride[0] + 1, stride[0]), slice(c, c + (OW - 1) * stride[1] + 1, stride[1]))
              for r in r0 for c in c0]
    return (top, bottom), (left, right), slices


# max: y = max over the taps (padding -inf), argmax = ih*W + iw of the first maximum in window order
# avg: y = (sum over the taps, padding 0) / (Dh[oh] * Dw[ow])
def pool2d_forward(kind, x, kernel, stride, padding, dilation, ceil_mode, count_include_pad):
    """See the module docstring."""
    B, H, W, C, OH, OW, kernel, stride, padding, dilation = check_pool2d_forward(
        kind, x, kernel, stride, padding, dilation, ceil_mode, count_include_pad)
    saved = Pool2DSaved(kind, (B, H, W, C), x.dtype, kernel, stride, padding, dilation, bool(ceil_mode),
                        bool(count_include_pad), None)
    pad_h, pad_w, taps = _taps(H, W, OH, OW, kernel, stride, padding, dilation)
    if kind == "avg":
        xp = np.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
        total = np.zeros((B, OH, OW, C), x.dtype)
        for rows, cols in taps:
            total += xp[:, rows, cols]
        D = np.outer(avg_divisors(H, OH, kernel[0], stride[0], padding[0], count_include_pad),
                     avg_divisors(W, OW, kernel[1], stride[1], padding[1], count_include_pad))
        return total / D[:, :, None].astype(x.dtype), saved
    if not taps:  # every window lies wholly in the padding (possible with dilation)
        return np.full((B, OH, OW, C), -np.inf, x.dtype), saved._replace(argmax=np.full((B, OH, OW, C), -1, np.int64))
    xp = np.pad(x, ((0, 0), pad_h, pad_w, (0, 0)), constant_values=-np.inf)
    index = np.pad(np.arange(H * W).reshape(H, W), (pad_h, pad_w), constant_values=-1)  # ih*W + iw, -1 in the padding
    windows = np.stack([xp[:, rows, cols] for rows, cols in taps])  # (K, B, OH, OW, C), K taps reading inside x
    where = np.stack([index[rows, cols] for rows, cols in taps])  # (K, OH, OW)
    first = np.argmax(windows, axis=0)  # the first maximum; a NaN counts as the maximum
    winner = np.take_along_axis(np.broadcast_to(where[:, None, :, :, None], windows.shape), first[None], 0)[0]
    # a -inf maximum met first in the padding: torch's winner is the first tap inside x
    first_in = np.take_along_axis(where, np.argmax(where >= 0, axis=0)[None], 0)[0]  # (OH, OW), -1 if none
    winner = np.where(winner < 0, first_in[None, :, :, None], winner)
    y = np.take_along_axis(windows, first[None], 0)[0]
    return np.ascontiguousarray(y), saved._replace(argmax=np.ascontiguousarray(winner, dtype=np.int64))


# max: dx[b, argmax[b, oh, ow, c], c] += dy[b, oh, ow, c]
# avg: dx[b, ih, iw, c] += dy[b, oh, ow, c] / (Dh[oh] * Dw[ow]) for every tap (ih, iw) inside x
def pool2d_backward(saved, dy):
    """See the module docstring."""
    B, H, W, C, OH, OW = check_pool2d_backward(saved, dy)
    if saved.kind == "max":
        dx = np.zeros((B, H * W, C), dy.dtype)
        b, _, _, c = np.indices(dy.shape)
        hit = saved.argmax >= 0
        np.add.at(dx, (b[hit], saved.argmax[hit], c[hit]), dy[hit])
        return dx.reshape(B, H, W, C)
    pad_h, pad_w, taps = _taps(H, W, OH, OW, saved.kernel, saved.stride, saved.padding, saved.dilation)
    D = np.outer(avg_divisors(H, OH, saved.kernel[0], saved.stride[0], saved.padding[0], saved.count_include_pad),
                 avg_divisors(W, OW, saved.kernel[1], saved.stride[1], saved.padding[1], saved.count_include_pad))
    share = dy / D[:, :, None].astype(dy.dtype)
    dxp = np.zeros((B, H + sum(pad_h), W + sum(pad_w), C), dy.dtype)
    for rows, cols in taps:
        dxp[:, rows, cols] += share  # a tap's outputs read distinct pixels: no collisions within one slice
    return np.ascontiguousarray(dxp[:, pad_h[0]:pad_h[0] + H, pad_w[0]:pad_w[0] + W])


def _interpolation_matrix(L, scale, mode, dtype):
    """M (L*scale, L): row o holds l0 at column i0 and l1 at column i1 (added: i0 == i1 at the edge)."""
    i0, i1, l0, l1 = upsample_axis(L, scale, mode)
    M = np.zeros((L * scale, L))
    np.add.at(M, (np.arange(L * scale), i0), l0)
    np.add.at(M, (np.arange(L * scale), i1), l1)
    return M.astype(dtype)


# nearest: y[b, p, q] = x[b, p // sh, q // sw];  bilinear: y[b, :, :, c] = Mh x[b, :, :, c] Mw^T
def upsample2d_forward(x, scale, mode):
    """See the module docstring."""
    B, H, W, C, scale = check_upsample2d_forward(x, scale, mode)
    saved = Upsample2DSaved((B, H, W, C), x.dtype, scale, mode)
    if mode == "nearest":
        return np.ascontiguousarray(x.repeat(scale[0], axis=1).repeat(scale[1], axis=2)), saved
    Mh, Mw = _interpolation_matrix(H, scale[0], mode, x.dtype), _interpolation_matrix(W, scale[1], mode, x.dtype)
    rows = np.einsum("ph,bhwc->bpwc", Mh, x)
    return np.ascontiguousarray(np.einsum("qw,bpwc->bpqc", Mw, rows)), saved


# nearest: dx[b, h, w] = sum of dy over rows h*sh .. h*sh + sh - 1 and columns w*sw .. w*sw + sw - 1
# bilinear: dx[b, :, :, c] = Mh^T dy[b, :, :, c] Mw
def upsample2d_backward(saved, dy):
    """See the module docstring."""
    B, H, W, C = check_upsample2d_backward(saved, dy)
    sh, sw = saved.scale
    if saved.mode == "nearest":
        return np.ascontiguousarray(dy.reshape(B, H, sh, W, sw, C).sum(axis=(2, 4)))
    Mh, Mw = _interpolation_matrix(H, sh, saved.mode, dy.dtype), _interpolation_matrix(W, sw, saved.mode, dy.dtype)
    rows = np.einsum("ph,bpqc->bhqc", Mh, dy)
    return np.ascontiguousarray(np.einsum("qw,bhqc->bhwc", Mw, rows))
