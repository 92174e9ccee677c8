"""Image convolutions on channels-last batches: ``Conv2D`` and ``ConvTranspose2D``.

Legend: B = batch, H/W = height/width, C = input channels, O = output channels, G = groups,
KH/KW = kernel size, s = stride, p = padding, op = output_padding, d = dilation (each an
(h, w) pair), HO/WO = output height/width.

Images are (B, H, W, C) (channels-last, NHWC); weights use PyTorch's layout and names, so
``torch.nn.Conv2d``/``ConvTranspose2d`` state dicts load directly and the numbers are torch's on
the (B, C, H, W) transpose. The kernels' contract is :mod:`pyrnn.backends.conv2d_reference`;
ConvTranspose2D runs on the same kernels as their adjoint (its forward is Conv2D's data gradient,
its backward Conv2D's forward plus a weight gradient).

- Conv2D: ``y[b, i, j, o] = bias[o] + sum_{c, kh, kw} weight[o, c, kh, kw] xp[b, i*sh + kh*dh, j*sw + kw*dw, g*Cg + c]``
  (g = o // (O/G), Cg = C/G), ``HO = (H + pt + pb - dh*(KH-1) - 1) // sh + 1``;
- ConvTranspose2D: ``y[b, i*sh + kh*dh - ph, j*sw + kw*dw - pw, g*Og + o] += weight[c, o, kh, kw] x[b, i, j, c]``
  (c in group g, Og = O/G), plus bias, ``HO = (H-1)*sh - 2*ph + dh*(KH-1) + oph + 1``.
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import as_float_array, check_array_size, check_bool, check_int, check_ndim, check_seed, check_shape
from ..backends import backend_module, get_backend
from ..backends.contract import Conv2dSaved
from ..grad_mode import is_grad_enabled
from .base import Layer
from .dense import column_sums


def _pair(name, value, minimum):
    """An int or an (h, w) pair of ints >= minimum, as a tuple (h, w)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name}: expected an integer or a pair (h, w), got {value!r}")
        return (check_int(f"{name}[0]", value[0], minimum), check_int(f"{name}[1]", value[1], minimum))
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name}: expected an integer or a pair (h, w) of integers, got {type(value).__name__} {value!r}")
    v = check_int(name, value, minimum)
    return (v, v)


def _check_groups(groups, in_channels, out_channels):
    groups = check_int("groups", groups, 1)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"groups: expected a divisor of in_channels={in_channels} and out_channels={out_channels}, got {groups}")
    return groups


def _image(layer, x):
    """x as a 4-D (B, H, W, in_channels) array of the layer's dtype, H and W >= 1 (as torch)."""
    x = as_float_array("x", x, layer.dtype)
    check_ndim("x", x, 4, "(batch, height, width, in_channels)")
    C = layer.in_channels
    if x.shape[3] != C:
        hint = ("; it looks like NCHW (channels first): pass x.transpose(0, 2, 3, 1)" if x.shape[1] == C else "")
        raise ValueError(f"x: expected in_channels={C} channels in the last axis (channels-last, (batch, height, width, "
                         f"channels)), got shape {x.shape}{hint}")
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(f"x: expected a height and a width >= 1, got shape {x.shape}")
    return x


def _pairs_config(value):
    return list(value) if isinstance(value, tuple) else value


def _init(layer, weight_shape, fan_in):
    """torch's default init: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), in that order."""
    rng = np.random.default_rng(layer.seed)
    bound = 1.0 / math.sqrt(fan_in)
    init = lambda shape: rng.uniform(-bound, bound, shape)  # noqa: E731
    layer.add_param("weight", weight_shape, init)
    if layer.bias:
        layer.add_param("bias", (layer.out_channels,), init)


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as ``torch.nn.Conv2d``) on channels-last images.

    Parameters
    ----------
    in_channels : int
        C, channels of the input (its last axis).
    out_channels : int
        O, channels of the output.
    kernel_size : int or (int, int)
        (KH, KW).
    stride : int or (int, int)
        (sh, sw), pixels between output pixels.
    padding : int, (int, int), "valid" or "same"
        Zero padding: an int pads all four sides, a pair (ph, pw) pads ph above and below and pw
        left and right; "valid" is none; "same" (stride 1 only, as torch) keeps H and W, the total
        ``d*(K-1)`` split with the extra pixel at the bottom/right (torch's rule).
    dilation : int or (int, int)
        (dh, dw), pixels between taps.
    groups : int
        G, dividing C and O: input channels [g*C/G, (g+1)*C/G) feed output channels
        [g*O/G, (g+1)*O/G); G = C is a depthwise convolution.
    bias : bool
        Whether the ``bias`` parameter exists.
    dtype : float32 or float64
    seed : int or None
        Seed of the default init, torch's: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weight and
        bias, ``fan_in = C/G * KH * KW``.

    Notes
    -----
    Parameters: ``weight`` (O, C/G, KH, KW), ``bias`` (O,). ``forward(x)``: x (B, H, W, C) ->
    y (B, HO, WO, O). ``backward(dy)``: dy (B, HO, WO, O) -> dx (B, H, W, C), adding the weight
    gradients into :attr:`grads`. ``forward`` keeps a reference to x for ``backward``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 dtype=np.float32, seed=None):
        super().__init__(dtype)
        self.in_channels = check_int("in_channels", in_channels, 1)
        self.out_channels = check_int("out_channels", out_channels, 1)
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self.stride = _pair("stride", stride, 1)
        self.dilation = _pair("dilation", dilation, 1)
        self.padding = self._check_padding(padding)
        self.groups = _check_groups(groups, self.in_channels, self.out_channels)
        self.bias = check_bool("bias", bias)
        self.seed = check_seed("seed", seed)
        KH, KW = self.kernel_size
        _init(self, (self.out_channels, self.in_channels // self.groups, KH, KW), self.in_channels // self.groups * KH * KW)

    def _check_padding(self, padding):
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"padding: expected 'valid', 'same', an integer or a pair (h, w), got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"padding: expected stride 1 for 'same' (strided convolutions do not support it, as torch), "
                                 f"got stride={self.stride}")
            return padding
        return _pair("padding", padding, 0)

    def padding_for(self):
        """The zero padding (top, bottom, left, right) this layer applies."""
        p = self.padding
        if p == "valid":
            return (0, 0, 0, 0)
        if p == "same":
            (th, tw) = (d * (k - 1) for d, k in zip(self.dilation, self.kernel_size))
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        return (p[0], p[0], p[1], p[1])

    def _check_size(self, x):
        pad = self.padding_for()
        B, H, W, C = x.shape
        out = []
        for axis, n, k, s, d, (a, z) in (("H", H, self.kernel_size[0], self.stride[0], self.dilation[0], pad[:2]),
                                         ("W", W, self.kernel_size[1], self.stride[1], self.dilation[1], pad[2:])):
            span = d * (k - 1) + 1
            if n + a + z < span:
                raise ValueError(f"x: expected {axis} >= {span - a - z} for kernel_size={self.kernel_size}, dilation={self.dilation}, "
                                 f"padding={pad} (top, bottom, left, right), got {axis}={n} (the output would be empty)")
            out.append((n + a + z - span) // s + 1)
        check_array_size("x", (B, pad[0] + H + pad[1], pad[2] + W + pad[3], C), self.dtype, "zero-padded input")
        check_array_size("x", (B, *out, self.out_channels), self.dtype, "output")
        return pad

    # y[b, i, j, o] = bias[o] + sum_{c, kh, kw} weight[o, c, kh, kw] xp[b, i*sh + kh*dh, j*sw + kw*dw, g*Cg + c]
    def forward(self, x):
        """Convolve.

        Parameters
        ----------
        x : array (B, H, W, C), any float dtype (cast to the layer's dtype)

        Returns
        -------
        y : ndarray (B, HO, WO, O)
        """
        x = _image(self, x)
        pad = self._check_size(x)
        backend = get_backend()
        y, saved = backend_module(backend).conv2d_forward(
            x, self.params["weight"], self.params.get("bias"), self.stride, pad, self.dilation, self.groups)
        self._save((backend, saved, y.shape, None))
        return y

    # BatchNorm folded: y = act(conv(x, weight * s) + (bias - running_mean) * s + bn.bias), s = bn.weight / sqrt(running_var + eps)
    def fused_forward(self, x, batchnorm=None, activation=None):
        """``forward(x)`` followed by ``batchnorm`` and ``activation`` (``"relu"``, ``"tanh"`` or None) in one
        kernel call: what :class:`pyrnn.models.Model` runs for a ``Conv2D -> (BatchNorm2D ->) (ReLU | Tanh)``
        chain. Inside ``pyrnn.no_grad()``/``pyrnn.inference()`` the BatchNorm's running statistics are folded into
        this layer's weight and bias, as inference engines do (the normalisation's pass over y, and the
        activation's, vanish into the convolution; the numbers are the chain's up to float rounding: the products
        are scaled before the sum). With gradients on, a ``Conv2D -> (ReLU | Tanh)`` chain (no BatchNorm) runs the
        activation on each chunk of y as the convolution writes it, and :meth:`backward` then takes the
        activation's upstream gradient and applies the activation's backward first.

        Parameters
        ----------
        x : array (B, H, W, C)
        batchnorm : BatchNorm2D or None
            Folded when gradients are off and it normalises with its running statistics (eval mode or
            inference, and ``track_running_stats``) and matches this layer's channels and dtype.
        activation : "relu", "tanh" or None

        Returns
        -------
        y : ndarray (B, HO, WO, O), or None when the chain cannot run as one call (gradients on with a
        ``batchnorm`` or without an ``activation``, or a ``batchnorm`` that cannot be folded): the caller then
        runs the layers one by one
        """
        w, b = self.params["weight"], self.params.get("bias")
        training = is_grad_enabled()
        if training and (batchnorm is not None or activation is None):
            return None
        if batchnorm is not None:
            folded = batchnorm.folded(w, b)
            if folded is None:
                return None
            w, b = folded
        x = _image(self, x)
        pad = self._check_size(x)
        backend = get_backend()
        y, saved = backend_module(backend).conv2d_forward(x, w, b, self.stride, pad, self.dilation, self.groups,
                                                         activation=activation)
        if training:
            self._save((backend, saved, y.shape, (activation, y)))
        return y

    # dweight[o, c, kh, kw] += sum_{b,i,j} dy[b, i, j, o] xp[b, i*sh + kh*dh, j*sw + kw*dw, g*Cg + c];
    # dbias[o] += sum_{b,i,j} dy[b, i, j, o];  dx: each tap's dy[b, i, j, :] weight[:, c, kh, kw], summed where it lands
    def backward(self, dy):
        """Gradient of the last ``forward`` (or ``fused_forward`` with an activation: dy is then the gradient of
        the activation's output).

        Parameters
        ----------
        dy : array (B, HO, WO, O), dL/dy

        Returns
        -------
        dx : ndarray (B, H, W, C)

        ``weight`` and ``bias`` gradients are added into :attr:`grads`.
        """
        return self._backward(dy, need_dx=True)

    def backward_params(self, dy):
        """:meth:`backward` for the weight and bias gradients alone (no data gradient pass); returns None."""
        self._backward(dy, need_dx=False)

    def _backward(self, dy, need_dx):
        backend, saved, y_shape, post = self._peek_saved()
        dy = as_float_array("dy", dy, self.dtype)
        check_shape("dy", dy, y_shape, "(batch, height_out, width_out, out_channels) of the last forward")
        self._pop_saved()
        kernels = backend_module(backend)
        if post is not None:  # fused_forward's activation: dy is its output's gradient
            activation, y = post
            dy = kernels.activation_backward(activation, y, dy, 0.0)
        return kernels.conv2d_backward(saved, dy, self.grads["weight"], self.grads.get("bias"), need_dx=need_dx)

    def get_config(self):
        return dict(in_channels=self.in_channels, out_channels=self.out_channels, kernel_size=list(self.kernel_size),
                    stride=list(self.stride), padding=_pairs_config(self.padding), dilation=list(self.dilation),
                    groups=self.groups, bias=self.bias, dtype=self.dtype.name, seed=self.seed)

    def __repr__(self):
        return (f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding!r}, dilation={self.dilation}, groups={self.groups}, bias={self.bias}, "
                f"dtype={self.dtype.name})")


class ConvTranspose2D(Layer):
    """2-D transposed convolution (``torch.nn.ConvTranspose2d``) on channels-last images: the
    adjoint of :class:`Conv2D` (each input pixel scatters ``weight`` times its channels).

    Parameters
    ----------
    in_channels : int
        C, channels of the input (its last axis).
    out_channels : int
        O, channels of the output.
    kernel_size : int or (int, int)
        (KH, KW).
    stride : int or (int, int)
        (sh, sw): output pixels between the scatters of neighbouring input pixels.
    padding : int or (int, int)
        (ph, pw): ``dilation*(kernel_size-1) - padding`` zeros are added around the input, i.e.
        ph rows are cut from the top and the bottom of the full output (as torch).
    output_padding : int or (int, int)
        (oph, opw): rows/columns added at the bottom/right of the output, each smaller than
        ``max(stride, dilation)`` on its axis (as torch); with stride > 1 they pick one of the
        input sizes that a Conv2D of the same geometry maps to the same size.
    dilation : int or (int, int)
        (dh, dw), pixels between taps.
    groups : int
        G, dividing C and O.
    bias : bool
        Whether the ``bias`` parameter exists.
    dtype : float32 or float64
    seed : int or None
        Seed of the default init, torch's: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weight and
        bias with torch's ``fan_in`` of this weight, ``O/G * KH * KW``.

    Notes
    -----
    Parameters: ``weight`` (C, O/G, KH, KW) (torch's layout), ``bias`` (O,). ``forward(x)``: x
    (B, H, W, C) -> y (B, HO, WO, O) with ``HO = (H-1)*sh - 2*ph + dh*(KH-1) + oph + 1`` (WO
    alike). ``backward(dy)`` -> dx (B, H, W, C), adding the weight gradients into :attr:`grads`.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, dilation=1,
                 groups=1, bias=True, dtype=np.float32, seed=None):
        super().__init__(dtype)
        self.in_channels = check_int("in_channels", in_channels, 1)
        self.out_channels = check_int("out_channels", out_channels, 1)
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self.stride = _pair("stride", stride, 1)
        self.padding = _pair("padding", padding, 0)
        self.output_padding = _pair("output_padding", output_padding, 0)
        self.dilation = _pair("dilation", dilation, 1)
        for axis, op, s, d in zip("hw", self.output_padding, self.stride, self.dilation):
            if op >= max(s, d):
                raise ValueError(f"output_padding: expected each value smaller than max(stride, dilation) on its axis (as torch), "
                                 f"got output_padding={self.output_padding} with stride={self.stride}, dilation={self.dilation} "
                                 f"({axis}: {op} >= {max(s, d)})")
        self.groups = _check_groups(groups, self.in_channels, self.out_channels)
        self.bias = check_bool("bias", bias)
        self.seed = check_seed("seed", seed)
        KH, KW = self.kernel_size
        Og = self.out_channels // self.groups
        _init(self, (self.in_channels, Og, KH, KW), Og * KH * KW)

    def output_size(self, H, W):
        """(HO, WO) for an input of H x W."""
        return tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, k, op in
                     zip((H, W), self.stride, self.padding, self.dilation, self.kernel_size, self.output_padding))

    def _adjoint(self, H, W):
        """The Conv2D whose data gradient this forward is: that convolution's input size (nh, nw)
        and padding (top, bottom, left, right). Its input is the top-left (nh, nw) of the output;
        the rows and columns past it (there when output_padding > padding) receive no tap. None when
        no tap lands inside the output at all."""
        sizes, pads = [], []
        for n, s, p, d, k, op in zip((H, W), self.stride, self.padding, self.dilation, self.kernel_size, self.output_padding):
            full = (n - 1) * s + d * (k - 1) + 1  # the uncut output
            sizes.append(min(full - 2 * p + op, full - p))
            pads += [p, max(p - op, 0)]
        return (tuple(sizes), tuple(pads)) if min(sizes) > 0 else None

    # y = bias + the data gradient of Conv2D(weight) at x: x[b, i, j, c] weight[c, o, kh, kw] lands on
    # y[b, i*sh + kh*dh - ph, j*sw + kw*dw - pw, g*Og + o]
    def forward(self, x):
        """Transposed convolution.

        Parameters
        ----------
        x : array (B, H, W, C), any float dtype (cast to the layer's dtype)

        Returns
        -------
        y : ndarray (B, HO, WO, O)
        """
        x = _image(self, x)
        B, H, W, _ = x.shape
        HO, WO = self.output_size(H, W)
        if HO < 1 or WO < 1:
            raise ValueError(f"x: expected an input giving an output of at least 1x1, got H={H}, W={W} -> {HO}x{WO} for "
                             f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                             f"output_padding={self.output_padding}, dilation={self.dilation}")
        check_array_size("x", (B, HO, WO, self.out_channels), self.dtype, "output")
        backend = get_backend()
        adjoint = self._adjoint(H, W)
        if adjoint is not None:  # the data gradient of the adjoint convolution spans its zero-padded input
            (nh, nw), (pt, pb, pl, pr) = adjoint
            check_array_size("x", (B, pt + nh + pb, pl + nw + pr, self.out_channels), self.dtype, "zero-padded output")
        if adjoint is None:
            y = np.zeros((B, HO, WO, self.out_channels), self.dtype)
        else:
            (nh, nw), pad = adjoint
            saved = Conv2dSaved(None, (B, nh, nw, self.out_channels), self.params["weight"], self.stride, pad,
                                self.dilation, self.groups)
            y = backend_module(backend).conv2d_backward(saved, x, None, None)
            if (nh, nw) != (HO, WO):  # the rows and columns past (nh, nw) receive no tap
                y = np.pad(y, ((0, 0), (0, HO - nh), (0, WO - nw), (0, 0)))
        if self.bias:  # per channel, as rows of WO*O values: NumPy's loop over O = 16 values is 4x slower
            y.reshape(-1, WO * self.out_channels)[...] += np.tile(self.params["bias"], WO)
        self._save((backend, x, adjoint, y.shape))
        return y

    # dx = Conv2D(weight) applied to dy;  dweight += Conv2D's weight gradient with input dy and output gradient x;
    # dbias[o] += sum_{b,i,j} dy[b, i, j, o]
    def backward(self, dy):
        """Gradient of the last ``forward``.

        Parameters
        ----------
        dy : array (B, HO, WO, O), dL/dy

        Returns
        -------
        dx : ndarray (B, H, W, C)

        ``weight`` and ``bias`` gradients are added into :attr:`grads`.
        """
        return self._backward(dy, need_dx=True)

    def backward_params(self, dy):
        """:meth:`backward` for the weight and bias gradients alone (no data gradient pass); returns None."""
        self._backward(dy, need_dx=False)

    def _backward(self, dy, need_dx):
        backend, x, adjoint, y_shape = self._peek_saved()
        dy = as_float_array("dy", dy, self.dtype)
        check_shape("dy", dy, y_shape, "(batch, height_out, width_out, out_channels) of the last forward")
        self._pop_saved()
        if self.bias:
            self.grads["bias"] += column_sums(dy.reshape(-1, self.out_channels))
        if adjoint is None:  # no tap inside the output: nothing flows back
            return np.zeros_like(x) if need_dx else None
        (nh, nw), pad = adjoint
        dyc = dy if (nh, nw) == y_shape[1:3] else np.ascontiguousarray(dy[:, :nh, :nw])
        kernels = backend_module(backend)
        geometry = (self.stride, pad, self.dilation, self.groups)
        if need_dx:
            dx, saved = kernels.conv2d_forward(dyc, self.params["weight"], None, *geometry)
        else:  # only the weight gradient: the adjoint's geometry without running it
            dx, saved = None, Conv2dSaved(dyc, dyc.shape, self.params["weight"], *geometry)
        kernels.conv2d_backward(saved, x, self.grads["weight"], None, need_dx=False)
        return dx

    def get_config(self):
        return dict(in_channels=self.in_channels, out_channels=self.out_channels, kernel_size=list(self.kernel_size),
                    stride=list(self.stride), padding=list(self.padding), output_padding=list(self.output_padding),
                    dilation=list(self.dilation), groups=self.groups, bias=self.bias, dtype=self.dtype.name,
                    seed=self.seed)

    def __repr__(self):
        return (f"ConvTranspose2D({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, output_padding={self.output_padding}, "
                f"dilation={self.dilation}, groups={self.groups}, bias={self.bias}, dtype={self.dtype.name})")
