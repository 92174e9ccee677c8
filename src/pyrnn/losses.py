"""Losses: ``forward(pred, target, mask=None) -> float`` and ``backward() -> dpred``.

Legend: B = batch, T = time, F = trailing feature axes (any number), N = samples,
C = classes, m = the selection mask broadcast over F, M = number of selected
elements (the mean's denominator).

Every loss is the MEAN over the selected elements, computed in float64 and returned
as a Python float; ``backward`` returns d(mean)/d(pred) with pred's shape and dtype,
from what the last ``forward`` saved (PyTorch's ``reduction="mean"``). A mask
(bool or 0/1) over pred's leading axes, e.g. (B,) or (B, T), selects samples or time
steps (padding past a sequence's end); masked-out values are never read, so padding
may hold anything, even NaN. Names follow PyTorch; :func:`get_loss` also takes Keras'.

- ``MSELoss``:   ``l = (p - y)^2``
- ``L1Loss``:    ``l = |p - y|``
- ``HuberLoss``: ``l = (p - y)^2 / 2`` if ``|p - y| < delta`` else ``delta (|p - y| - delta / 2)``
- ``CrossEntropyLoss``: ``l = -log softmax(x)[y]`` over the last axis, y an integer class index
- ``BCEWithLogitsLoss``: ``l = max(x, 0) - x y + log1p(exp(-|x|))`` = ``-y log s(x) - (1 - y) log(1 - s(x))``

The two cross-entropies take ``from_logits`` (Keras' name). **Its default is True** (PyTorch's
meaning, also under the Keras names ``sparse_categorical_crossentropy``/``binary_crossentropy``,
where Keras defaults to False): the model's last layer outputs raw scores, no ``Softmax``/
``Sigmoid``. ``from_logits=False`` takes probabilities as Keras does: ``p / sum(p)`` over the
classes (cross-entropy), clipped to ``[eps, 1 - eps]``, eps = 1e-7, with gradient 0 where clipped.
``model.compile`` warns (:class:`LogitsWarning`) when the model ends in ``Softmax``/``Sigmoid``
and its loss expects logits.
"""

from __future__ import annotations

import functools

import numpy as np

from ._checks import check_bool, check_float
from .grad_mode import is_grad_enabled, note_loss_gradient, output_generation
from .layers.activations import sigmoid

# ----------------------------------------------------------------- input checks


#: Keras' clip of probabilities (``backend.epsilon()``) for ``from_logits=False``
EPSILON = 1e-7


class LogitsWarning(UserWarning):
    """The model's last layer is ``Softmax``/``Sigmoid`` but its loss expects logits (``from_logits=True``)."""


def _pred_array(pred):
    arr = np.asarray(pred)
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"pred: expected a float32 or float64 array, got dtype {arr.dtype}")
    return arr


def _real_target(target, shape):
    arr = np.asarray(target)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"target: expected a real-valued array, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"target: expected shape {shape} (the shape of pred), got {arr.shape}")
    return arr


def _mask_array(mask, shape, what, exact=False):
    """``mask`` as a bool array of ``shape`` (``exact``) or of a prefix of ``shape``."""
    m = np.asarray(mask)
    if m.dtype.kind not in "biuf":
        raise TypeError(f"mask: expected a boolean or 0/1 array, got dtype {m.dtype}")
    fits = m.shape == shape if exact else (m.ndim > 0 and m.shape == shape[: m.ndim])
    if not fits:
        raise ValueError(f"mask: expected shape {what}, got {m.shape}")
    if m.dtype != np.bool_:
        bad = m[(m != 0) & (m != 1)]
        if bad.size:
            raise ValueError(f"mask: expected boolean or 0/1 values, got {bad.flat[0].item()!r}")
    m = m != 0  # a new array: the caller may reuse theirs before backward
    if not m.any():
        raise ValueError("mask: expected at least one selected position, got none")
    return m


class NonFiniteError(ValueError):
    """A loss was given NaN or inf where it reads its predictions or targets."""

    def __init__(self, message, name):
        super().__init__(message)
        self.name = name


def _check_finite(name, arr):
    if not np.isfinite(arr).all():
        what = "NaN" if np.isnan(arr).any() else "inf"
        raise NonFiniteError(f"{name}: expected finite values, got an array that contains {what}", name)


def _selected_float64(arr, mb):
    """float64 copy of ``arr`` with the masked-out elements set to 0 (never read)."""
    return arr.astype(np.float64) if mb is None else np.where(mb, arr, 0.0)


# ----------------------------------------------------------------------- base


def _tracked_forward(forward):
    @functools.wraps(forward)
    def tracked(self, pred, *args, **kwargs):
        value = forward(self, pred, *args, **kwargs)
        self._pred_generation = output_generation(pred)
        return value

    return tracked


def _tracked_backward(backward):
    @functools.wraps(backward)
    def tracked(self, *args, **kwargs):
        grad = backward(self, *args, **kwargs)
        note_loss_gradient(grad, getattr(self, "_pred_generation", None))
        return grad

    return tracked


class Loss:
    """A mean-reduced loss with ``forward``/``backward`` (see the module docstring).

    ``backward``'s gradient is tagged with the forward that produced ``forward``'s prediction, so
    a model's backward fed it refuses to run on another forward's saved state
    (:func:`pyrnn.grad_mode.check_gradient_source`)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__:
            cls.forward = _tracked_forward(cls.__dict__["forward"])
        if "backward" in cls.__dict__:
            cls.backward = _tracked_backward(cls.__dict__["backward"])

    def __init__(self):
        self._saved = None
        self._pred_generation = None

    def _save(self, saved):
        if is_grad_enabled():  # nothing kept under pyrnn.no_grad()
            self._saved = saved

    def _pop_saved(self):
        if self._saved is None:
            raise ValueError(
                f"{type(self).__name__}.backward: expected a forward() first, got none (or its backward already ran)"
            )
        saved, self._saved = self._saved, None
        return saved

    def get_config(self):
        """Constructor keyword arguments (JSON-serialisable)."""
        return {}

    def __call__(self, pred, target, mask=None):
        return self.forward(pred, target, mask)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _ElementwiseLoss(Loss):
    """pred and target of one shape (B, ...); a mask (B,) or (B, T, ...) selects leading positions.

    Subclasses give the elementwise pair ``_elementwise_forward(p, y) -> (l, saved)``
    and ``_elementwise_backward(saved) -> dl/dp`` on float64 arrays.
    """

    def forward(self, pred, target, mask=None):
        """Mean of the elementwise loss over the selected elements.

        Parameters
        ----------
        pred : array (B, ...) float32 or float64
        target : array of pred's shape, real-valued
        mask : None or bool/0-1 array over pred's leading axes, e.g. (B,) or (B, T)

        Returns
        -------
        float, ``sum(m * l) / M`` with M = (selected positions) * (elements per position)
        """
        pred = _pred_array(pred)
        target = _real_target(target, pred.shape)
        mb, count = None, pred.size
        if mask is not None:
            m = _mask_array(mask, pred.shape, f"a prefix of pred's shape {pred.shape}, e.g. {pred.shape[:1]}")
            mb = m.reshape(m.shape + (1,) * (pred.ndim - m.ndim))
            count = int(m.sum()) * int(np.prod(pred.shape[m.ndim :]))
        if count == 0:
            raise ValueError(f"pred: expected at least one element to average over, got shape {pred.shape}")
        p, y = _selected_float64(pred, mb), _selected_float64(target, mb)
        _check_finite("pred", p)
        _check_finite("target", y)
        self._check_target(y)
        elem, saved = self._elementwise_forward(p, y)
        if mb is not None:
            elem *= mb
        self._save((saved, mb, count, pred.dtype))
        return float(elem.sum() / count)

    def backward(self):
        """d(mean loss)/d(pred) = m * dl/dp / M, pred's shape and dtype."""
        saved, mb, count, dtype = self._pop_saved()
        grad = self._elementwise_backward(saved)
        if mb is not None:
            grad *= mb
        grad /= count
        return grad.astype(dtype, copy=False)

    def _check_target(self, y):
        """Hook: raise on target values the loss is not defined for (masked-out ones are 0)."""


class MSELoss(_ElementwiseLoss):
    """Mean squared error (Keras ``mean_squared_error``)."""

    # l = d^2, d = p - y
    def _elementwise_forward(self, p, y):
        d = p - y
        return d * d, d

    # dl/dp = 2 d
    def _elementwise_backward(self, d):
        return 2.0 * d


class L1Loss(_ElementwiseLoss):
    """Mean absolute error (Keras ``mean_absolute_error``); the gradient at p == y is 0, as in PyTorch."""

    # l = |d|, d = p - y
    def _elementwise_forward(self, p, y):
        d = p - y
        return np.abs(d), d

    # dl/dp = sign(d)
    def _elementwise_backward(self, d):
        return np.sign(d)


class HuberLoss(_ElementwiseLoss):
    """Huber loss with PyTorch's ``torch.nn.HuberLoss`` semantics.

    Parameters
    ----------
    delta : float > 0
        Where the loss turns from quadratic to linear.
    """

    def __init__(self, delta=1.0):
        super().__init__()
        self.delta = check_float("delta", delta, above=0.0)

    def get_config(self):
        return {"delta": self.delta}

    # l = d^2 / 2 if |d| < delta else delta (|d| - delta / 2), d = p - y
    def _elementwise_forward(self, p, y):
        d = p - y
        a = np.abs(d)
        return np.where(a < self.delta, 0.5 * d * d, self.delta * (a - 0.5 * self.delta)), d

    # dl/dp = clip(d, -delta, delta)
    def _elementwise_backward(self, d):
        return np.clip(d, -self.delta, self.delta)


class BCEWithLogitsLoss(_ElementwiseLoss):
    """Binary cross-entropy (Keras ``binary_crossentropy``), on logits by default.

    Parameters
    ----------
    from_logits : bool, default True
        True: pred are logits x (any real; PyTorch's ``BCEWithLogitsLoss``). False: pred are
        probabilities p in [0, 1] (a ``Sigmoid`` output; PyTorch's ``BCELoss``), clipped to
        [1e-7, 1 - 1e-7] as Keras does. Target y are 0/1 labels or soft labels in [0, 1].
    """

    def __init__(self, from_logits=True):
        super().__init__()
        self.from_logits = check_bool("from_logits", from_logits)

    def get_config(self):
        return {} if self.from_logits else {"from_logits": False}

    def _elementwise_forward(self, x, y):
        if self.from_logits:
            return self._logits_forward(x, y)
        if not ((x >= 0) & (x <= 1)).all():
            bad = x[~((x >= 0) & (x <= 1))].flat[0]
            raise ValueError(f"pred: expected probabilities in [0, 1] (from_logits=False), got {bad!r}; "
                             "pass logits with from_logits=True")
        return self._probs_forward(x, y)

    def _elementwise_backward(self, saved):
        return self._logits_backward(saved) if self.from_logits else self._probs_backward(saved)

    # l = -(y log q + (1 - y) log(1 - q)),  q = clip(p, eps, 1 - eps)
    def _probs_forward(self, p, y):
        q = np.clip(p, EPSILON, 1 - EPSILON)
        return -(y * np.log(q) + (1 - y) * np.log1p(-q)), (p, q, y)

    # dl/dp = (q - y) / (q (1 - q)) where p is not clipped, else 0
    def _probs_backward(self, saved):
        p, q, y = saved
        return np.where(p == q, (q - y) / (q * (1 - q)), 0.0)

    def _check_target(self, y):
        bad = y[~((y >= 0) & (y <= 1))]
        if bad.size:
            raise ValueError(f"target: expected labels in [0, 1], got {bad.flat[0].item()!r}")

    # l = max(x, 0) - x y + log1p(exp(-|x|))   (never overflows)
    def _logits_forward(self, x, y):
        return np.maximum(x, 0.0) - x * y + np.log1p(np.exp(-np.abs(x))), (x, y)

    # dl/dx = s(x) - y, s(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) otherwise, e = exp(-|x|)
    def _logits_backward(self, saved):
        x, y = saved
        return sigmoid(x) - y


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy over integer class indices (Keras ``sparse_categorical_crossentropy``),
    per sample, per time step or per pixel; on logits by default.

    Parameters
    ----------
    from_logits : bool, default True
        True: pred are logits (PyTorch's ``CrossEntropyLoss``; no ``Softmax`` at the model's end).
        False: pred are probabilities (a ``Softmax`` output), normalised to sum 1 over the classes
        and clipped to [1e-7, 1 - 1e-7], as Keras does.

    ``forward(logits, target, mask=None)``: logits (N, C) with target (N,), logits (B, T, C)
    with target (B, T), or any (..., C) with target (...), e.g. a segmentation's (B, H, W, C)
    with (B, H, W); mask of target's shape selects the positions averaged (e.g. the steps before
    each sequence's end). Masked-out targets are not checked.
    """

    def __init__(self, from_logits=True):
        super().__init__()
        self.from_logits = check_bool("from_logits", from_logits)

    def get_config(self):
        return {} if self.from_logits else {"from_logits": False}

    # logits:        l = lse(x) - x[y],  lse(x) = max(x) + log(sum(exp(x - max(x))))
    # probabilities: l = -log q,  q = clip(p[y] / sum(p), eps, 1 - eps)
    def forward(self, pred, target, mask=None):
        """Mean cross-entropy over the selected positions.

        Parameters
        ----------
        pred : array (..., C) float32 or float64, logits: (N, C), (B, T, C), (B, H, W, C), ...
        target : integer array (...), pred's shape without the class axis, class indices in [0, C)
        mask : None or bool/0-1 array of target's shape

        Returns
        -------
        float, ``sum(m * l) / sum(m)``
        """
        logits = _pred_array(pred)
        if logits.ndim < 2 or logits.shape[-1] == 0:
            raise ValueError(f"pred: expected logits (..., C) with a batch axis and C >= 1, got shape {logits.shape}")
        lead, C = logits.shape[:-1], logits.shape[-1]
        target = np.asarray(target)
        if target.dtype.kind not in "iu":
            raise TypeError(f"target: expected integer class indices, got dtype {target.dtype}")
        if target.shape != lead:
            raise ValueError(f"target: expected shape {lead} (pred's shape without the class axis), got {target.shape}")
        m = None if mask is None else _mask_array(mask, lead, f"{lead} (the shape of target)", exact=True).reshape(-1)
        count = target.size if m is None else int(m.sum())
        if count == 0:
            raise ValueError(f"pred: expected at least one position to average over, got shape {logits.shape}")
        t = target.reshape(-1)
        sel = t if m is None else t[m]
        bad = sel[(sel < 0) | (sel >= C)]
        if bad.size:
            raise ValueError(f"target: expected class indices in [0, {C}), got {bad.flat[0]}")
        mb = None if m is None else m[:, None]
        x = _selected_float64(logits.reshape(-1, C), mb)
        _check_finite("pred", x)
        t = t if m is None else np.where(m, t, 0)
        if not self.from_logits:
            return self._probs_forward(x, t, m, mb, count, logits)
        z = x - x.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        rows = np.arange(t.size)
        losses = lse - z[rows, t]
        if m is not None:
            losses *= m
        self._save(("logits", (z, lse), t, mb, count, logits.shape, logits.dtype))
        return float(losses.sum() / count)

    def _probs_forward(self, p, t, m, mb, count, pred):
        if (p < 0).any():
            raise ValueError(f"pred: expected probabilities >= 0 (from_logits=False), got {p[p < 0].flat[0]!r}; "
                             "pass logits with from_logits=True")
        s = p.sum(axis=1)
        if m is not None:
            s = np.where(m, s, 1.0)  # masked-out rows are zeros: never divided by
        if (s == 0).any():
            raise ValueError("pred: expected probabilities with a positive sum over the classes (from_logits=False), "
                             "got a row of zeros")
        pt = p[np.arange(t.size), t]
        ratio = pt / s
        losses = -np.log(np.clip(ratio, EPSILON, 1 - EPSILON))
        if m is not None:
            losses *= m
        inside = (ratio >= EPSILON) & (ratio <= 1 - EPSILON)
        self._save(("probabilities", (s, pt, inside), t, mb, count, pred.shape, pred.dtype))
        return float(losses.sum() / count)

    # logits:        dl/dx = softmax(x) - onehot(y) = exp(z - lse) - onehot(y)
    # probabilities: dl/dp_j = 1 / sum(p) - [j = y] / p[y]   (0 where q was clipped)
    def backward(self):
        """d(mean loss)/d(pred), pred's shape and dtype."""
        kind, saved, t, mb, count, shape, dtype = self._pop_saved()
        rows = np.arange(t.size)
        if kind == "probabilities":
            s, pt, inside = saved
            grad = np.repeat((inside / s)[:, None], shape[-1], axis=1)
            grad[rows, t] -= np.where(inside, 1.0 / np.where(inside, pt, 1.0), 0.0)
        else:
            z, lse = saved
            grad = np.exp(z - lse[:, None])
            grad[rows, t] -= 1.0
        if mb is not None:
            grad *= mb
        grad /= count
        return grad.reshape(shape).astype(dtype, copy=False)


# ------------------------------------------------------------------- registry

_CLASSES = {cls.__name__: cls for cls in (MSELoss, L1Loss, HuberLoss, CrossEntropyLoss, BCEWithLogitsLoss)}

_ALIASES = {
    "mse": MSELoss, "mean_squared_error": MSELoss,
    "mae": L1Loss, "l1": L1Loss, "mean_absolute_error": L1Loss,
    "huber": HuberLoss,
    "cross_entropy": CrossEntropyLoss, "sparse_categorical_crossentropy": CrossEntropyLoss,
    "bce_with_logits": BCEWithLogitsLoss, "binary_crossentropy": BCEWithLogitsLoss,
}


def get_loss(name_or_obj):
    """A :class:`Loss` instance (returned as is) or a new one from a name (PyTorch- or Keras-style).

    Names: ``mse``/``mean_squared_error``, ``mae``/``l1``/``mean_absolute_error``,
    ``huber``, ``cross_entropy``/``sparse_categorical_crossentropy``,
    ``bce_with_logits``/``binary_crossentropy`` (case-insensitive).
    """
    if isinstance(name_or_obj, Loss):
        return name_or_obj
    if not isinstance(name_or_obj, str):
        raise TypeError(f"loss: expected a Loss instance or a name, got {type(name_or_obj).__name__}")
    cls = _ALIASES.get(name_or_obj.lower())
    if cls is None:
        raise ValueError(f"loss: expected one of {sorted(_ALIASES)}, got {name_or_obj!r}")
    return cls()


def loss_to_config(loss):
    """``{"class": name, "config": kwargs}`` for a checkpoint; :func:`loss_from_config` rebuilds it."""
    if not isinstance(loss, Loss):
        raise TypeError(f"loss: expected a Loss instance, got {type(loss).__name__}")
    return {"class": type(loss).__name__, "config": loss.get_config()}


def loss_from_config(config):
    """Rebuild a loss from :func:`loss_to_config`'s ``{"class": name, "config": kwargs}``."""
    if not isinstance(config, dict) or "class" not in config:
        raise ValueError(f"config: expected a dict with keys 'class' and 'config', got {config!r}")
    cls = _CLASSES.get(config["class"])
    if cls is None:
        raise ValueError(f"config['class']: expected one of {sorted(_CLASSES)}, got {config['class']!r}")
    return cls(**config.get("config", {}))
