"""Batch normalisation on channels-last data: ``BatchNorm2D`` (images) and ``BatchNorm1D`` (sequences).

Legend: B = batch, H/W = image height/width, T = time, C = channels (``num_features``),
N = the rows normalised together (B*H*W, B*T or B).

Images are (B, H, W, C) and sequences (B, T, C), so every channel is a column of x viewed as
(N, C) and the kernels (contract: :mod:`pyrnn.backends.norm_reference`) see one 2-D problem.
Names, defaults and numbers are PyTorch's (``torch.nn.BatchNorm2d`` on the (B, C, H, W)
transpose, ``BatchNorm1d`` on (B, C, T)), so their state dicts load directly:

- ``weight``, ``bias`` (C,): parameters, when ``affine`` (init 1 and 0);
- ``running_mean``, ``running_var`` (C,) and ``num_batches_tracked`` (int64, 0-D): buffers,
  when ``track_running_stats`` (init 0, 1, 0), saved and loaded with the parameters.

In training the layer normalises with the batch mean and biased variance and updates the
running buffers with the *unbiased* variance: ``running = (1 - m) running + m batch``, with
``m = momentum`` or, for ``momentum=None``, ``1 / num_batches_tracked`` (a cumulative
average); ``num_batches_tracked`` counts training forwards. In eval mode and inside
``pyrnn.inference()`` (``predict``, ``evaluate``) it normalises with the running statistics,
unless ``track_running_stats=False``: then batch statistics are used always (as torch).
``y = (x - mean) / sqrt(var + eps) * weight + bias``.
"""

from __future__ import annotations

import numpy as np

from .._checks import as_float_array, check_bool, check_float, check_int, check_shape
from ..backends import backend_module, get_backend
from ..grad_mode import is_grad_enabled
from .base import Layer


class _BatchNorm(Layer):
    """Shared by :class:`BatchNorm1D` and :class:`BatchNorm2D`; see the module docstring.

    Parameters
    ----------
    num_features : int
        C, channels (the last axis of the input).
    eps : float
        Added to the variance before the square root (> 0).
    momentum : float in [0, 1] or None
        Weight of the batch statistics in the running ones; None: cumulative average.
    affine : bool
        Whether the ``weight`` and ``bias`` parameters exist.
    track_running_stats : bool
        Whether the running buffers exist (and are used outside training).
    dtype : float32 or float64
    """

    #: the accepted layouts, {ndim: axis labels}, and the layout torch would use (for the error message)
    layouts: dict = {}
    torch_layout = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, dtype=np.float32):
        super().__init__(dtype)
        self.num_features = check_int("num_features", num_features, 1)
        self.eps = check_float("eps", eps, above=0.0)
        self.momentum = None if momentum is None else check_float("momentum", momentum, 0.0, 1.0)
        self.affine = check_bool("affine", affine)
        self.track_running_stats = check_bool("track_running_stats", track_running_stats)
        C = self.num_features
        if self.affine:
            self.add_param("weight", (C,), np.ones)
            self.add_param("bias", (C,), np.zeros)
        if self.track_running_stats:
            self.add_buffer("running_mean", np.zeros(C, self.dtype))
            self.add_buffer("running_var", np.ones(C, self.dtype))
            self.add_buffer("num_batches_tracked", np.array(0, np.int64))

    def _check_input(self, x):
        x = as_float_array("x", x, self.dtype)
        C = self.num_features
        if x.ndim not in self.layouts:
            want = " or ".join(f"a {n}-D array {labels}" for n, labels in self.layouts.items())
            raise ValueError(f"x: expected {want}, got {x.ndim}-D with shape {x.shape}")
        if x.shape[-1] != C:
            hint = ""
            if x.ndim >= 3 and x.shape[1] == C:
                hint = f"; it looks like {self.torch_layout}: pyrnn takes channels-last"
            raise ValueError(f"x: expected num_features={C} channels in the last axis {self.layouts[x.ndim]}, "
                             f"got shape {x.shape}{hint}")
        return x

    def forward(self, x):
        """Normalise each channel.

        Parameters
        ----------
        x : array, channels-last (see the subclass), any float dtype (cast to the layer's dtype)

        Returns
        -------
        y : ndarray of x's shape
        """
        return self._run(x, None)

    def fused_relu_forward(self, x):
        """``max(forward(x), 0)`` in one pass where the backend has the fused kernels (cpp), else None. The graph
        calls it for a BatchNorm whose output only a ReLU reads (:meth:`pyrnn.models.Model.forward`), and then
        skips the ReLU: in training :meth:`backward` takes the ReLU's upstream gradient and applies the ReLU's
        backward as it reads it. The same numbers as the two layers."""
        kernels = backend_module(get_backend())
        fused = getattr(kernels, "batchnorm_relu_forward", None)
        if fused is None or (is_grad_enabled() and not hasattr(kernels, "batchnorm_relu_backward")):
            return None
        return self._run(x, fused)

    # s = weight / sqrt(running_var + eps):  w' = w s (per output channel),  b' = (b - running_mean) s + bias
    def folded(self, w, b):
        """The weight and bias of a layer followed by this BatchNorm as one layer: w (C, ...) with output channel c
        as its row c (a Conv2D's), b (C,) or None, of this layer's dtype. None when this BatchNorm normalises with
        batch statistics (training mode, or ``track_running_stats=False``) or w does not match it (then the layers
        run one by one and the mismatch is reported there). The per-channel factors in float64, rounded to the dtype
        once; w times them in the dtype (a float64 copy of a large weight cost as much as the pass it saves)."""
        C = self.num_features
        if self.is_training or not self.track_running_stats or w.shape[:1] != (C,) or w.dtype != self.dtype:
            return None
        s = 1.0 / np.sqrt(self.buffers["running_var"].astype(np.float64) + self.eps)
        shift = -self.buffers["running_mean"].astype(np.float64)
        if b is not None:
            shift = shift + b
        if self.affine:
            s = s * self.params["weight"]
        shift = shift * s
        if self.affine:
            shift = shift + self.params["bias"]
        return w * s.astype(self.dtype).reshape(C, *(1,) * (w.ndim - 1)), shift.astype(self.dtype)

    def _run(self, x, fused):
        """forward (``fused`` None) or the fused BatchNorm -> ReLU (``fused``: the backend's kernel)."""
        x = self._check_input(x)
        C = self.num_features
        x2 = x.reshape(-1, C)
        training = self.is_training
        batch_stats = training or not self.track_running_stats
        if batch_stats and x2.shape[0] < 2:
            raise ValueError(f"x: expected more than 1 value per channel in training (batch statistics), got shape "
                             f"{x.shape} ({x2.shape[0]} value per channel)")
        momentum = 0.0
        running_mean = self.buffers.get("running_mean")
        running_var = self.buffers.get("running_var")
        tracking = training and self.track_running_stats
        if tracking:
            n = int(self.buffers["num_batches_tracked"]) + 1
            momentum = 1.0 / n if self.momentum is None else self.momentum
        elif batch_stats:  # batch statistics and nothing to update: track_running_stats=False
            running_mean = running_var = None
        backend = get_backend()
        kernel = fused or backend_module(backend).batchnorm_forward
        y, saved = kernel(x2, self.params.get("weight"), self.params.get("bias"), running_mean, running_var,
                          batch_stats, momentum, self.eps)
        if tracking:  # counted once the kernel has run: an interrupted forward (Ctrl-C) changes no state
            self.buffers["num_batches_tracked"] += 1
        self._save((backend, saved, x.shape, y if fused else None))  # fused: the ReLU's output, for its backward
        return y.reshape(x.shape)

    # batch statistics: dx = inv_std / N * (N g - sum_n g - x_hat sum_n g x_hat), g = dy * weight
    # running statistics: dx = g * inv_std;  dweight += sum_n dy x_hat;  dbias += sum_n dy
    # after fused_relu_forward, dy is first the ReLU's backward of the upstream gradient: 0 where y <= 0, else dy
    def backward(self, dy):
        """Gradient of the last ``forward`` (or ``fused_relu_forward``: dy is then the gradient of the ReLU's
        output): dy of x's shape -> dx; ``weight`` and ``bias`` gradients are added into :attr:`grads`."""
        backend, saved, x_shape, relu_y = self._peek_saved()
        dy = as_float_array("dy", dy, self.dtype)
        check_shape("dy", dy, x_shape, "(the shape of the last forward's x)")
        self._pop_saved()
        kernels, dy2 = backend_module(backend), dy.reshape(-1, self.num_features)
        dw, db = self.grads.get("weight"), self.grads.get("bias")
        if relu_y is None:
            dx = kernels.batchnorm_backward(saved, dy2, dw, db)
        else:
            dx = kernels.batchnorm_relu_backward(saved, relu_y, dy2, dw, db)
        return dx.reshape(x_shape)

    def get_config(self):
        return dict(num_features=self.num_features, eps=self.eps, momentum=self.momentum, affine=self.affine,
                    track_running_stats=self.track_running_stats, dtype=self.dtype.name)

    def __repr__(self):
        return (f"{type(self).__name__}({self.num_features}, eps={self.eps:g}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}, dtype={self.dtype.name})")


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of images (B, H, W, C), channels-last (``torch.nn.BatchNorm2d`` on the
    (B, C, H, W) transpose): statistics per channel over B, H and W. See :class:`_BatchNorm`."""

    layouts = {4: "(batch, height, width, channels)"}
    torch_layout = "(B, C, H, W)"


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of sequences (B, T, C) or vectors (B, C) (``torch.nn.BatchNorm1d`` on
    (B, C, T) or (B, C)): statistics per channel over B (and T). See :class:`_BatchNorm`."""

    layouts = {2: "(batch, channels)", 3: "(batch, time, channels)"}
    torch_layout = "(B, C, T)"
