"""Optimizers, learning-rate schedules and gradient clipping, with PyTorch's update formulas.

Legend: p = a parameter, g = its gradient, d = the gradient the update uses (g, plus
``wd p`` where weight decay is L2), lr = learning rate, wd = weight decay, t = step
count (1 on the first step), buffers (m, v, ...) are per parameter, of p's shape and dtype.

- :class:`SGD`, :class:`RMSprop`, :class:`Adam`, :class:`AdamW`: ``torch.optim``'s
  defaults and single-tensor formulas, each written above its ``_update``. Parameters are
  ``(param, grad)`` pairs of NumPy arrays; ``step()`` updates every param in place from
  its grad (grads are only read), ``zero_grad()`` fills the grads with 0, ``lr`` is a
  mutable attribute (schedules set it). ``state_dict()``/``load_state_dict()`` resume
  bit for bit.
- Schedules, stepped once per epoch after the optimizer's steps: :class:`StepLR`,
  :class:`ExponentialLR`, :class:`CosineAnnealingLR`, :class:`ReduceLROnPlateau`.
- :func:`clip_grad_norm_` and :func:`clip_grad_value_`, in place on a list of grads
  (the remedy for exploding gradients in recurrent networks).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._checks import check_bool, check_float, check_int
from .threads import dot_threads

try:
    from . import _C  # the fused updates (csrc/optim)
except ImportError:  # the compiled module is optional at run time: the NumPy updates do the same
    _C = None

# ----------------------------------------------------------------- checks


def _check_pairs(params):
    if not isinstance(params, (list, tuple)):
        raise TypeError(f"params: expected a list of (param, grad) pairs of arrays, got {type(params).__name__}")
    if not params:
        raise ValueError("params: expected at least one (param, grad) pair, got an empty list")
    pairs = []
    for i, pair in enumerate(params):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError(f"params[{i}]: expected a (param, grad) pair, got {type(pair).__name__}")
        p, g = pair
        for what, a in (("param", p), ("grad", g)):
            if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
                kind = f"dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
                raise TypeError(f"params[{i}] {what}: expected a float32 or float64 ndarray, got {kind}")
        if g.shape != p.shape or g.dtype != p.dtype:
            raise ValueError(
                f"params[{i}] grad: expected shape {p.shape} and dtype {p.dtype} (the param's), got {g.shape} {g.dtype}"
            )
        if not (p.flags.writeable and g.flags.writeable):
            which = "param" if not p.flags.writeable else "grad"
            raise ValueError(f"params[{i}]: expected writeable arrays, got a read-only {which}")
        pairs.append((p, g))
    return pairs


def _lerp_(a, b, w):
    """``a += w (b - a)`` in place, evaluated as torch's ``lerp_`` does for each side of w = 0.5."""
    diff = b - a
    if abs(w) < 0.5:
        diff *= w
        a += diff
    else:
        diff *= 1.0 - w
        np.subtract(b, diff, out=a)


# -------------------------------------------------------------- optimizers


class Optimizer:
    """Base: (param, grad) pairs, per-parameter buffers, a step count and ``lr``.

    Subclasses define ``_config_keys``, ``_validate_config(cfg) -> cfg``,
    ``_buffer_names(cfg)`` and ``_update(i, p, g, t)``.
    """

    _config_keys: tuple = ()

    def __init__(self, params, **config):
        self._pairs = _check_pairs(params)
        config = self._validate_config(config)
        self._set_config(config)
        self.step_count = 0
        self._buffers = {name: [np.zeros_like(p) for p, _ in self._pairs] for name in self._buffer_names(config)}

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = check_float("lr", value, 0.0)

    def _set_config(self, cfg):
        for k, v in cfg.items():
            setattr(self, k, v)

    def get_config(self):
        """Constructor keyword arguments (JSON-serialisable)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in ((k, getattr(self, k)) for k in self._config_keys)}

    def step(self):
        """One update of every parameter, in place, from its current gradient."""
        self.step_count += 1
        for i, (p, g) in enumerate(self._pairs):
            self._update(i, p, g, self.step_count)

    def zero_grad(self):
        """Fill every gradient with 0."""
        for _, g in self._pairs:
            g.fill(0)

    # ------------------------------------------------------------ state
    def state_dict(self):
        """``{"class", "config", "step", "num_params", "buffers": {"<name>.<param index>": copy}}``."""
        return {
            "class": type(self).__name__,
            "config": self.get_config(),
            "step": self.step_count,
            "num_params": len(self._pairs),
            "buffers": {f"{name}.{i}": b.copy() for name, bufs in self._buffers.items() for i, b in enumerate(bufs)},
        }

    def load_state_dict(self, state):
        """Strict load of :meth:`state_dict` (class, parameter count, config keys, buffer names and shapes);
        nothing changes unless everything checks."""
        if not isinstance(state, dict):
            raise TypeError(f"state: expected a dict from state_dict(), got {type(state).__name__}")
        missing = [k for k in ("class", "config", "step", "num_params", "buffers") if k not in state]
        if missing:
            raise ValueError(f"state: expected keys class, config, step, num_params, buffers, missing {missing}")
        name, n = type(self).__name__, len(self._pairs)
        if state["class"] != name:
            raise ValueError(f"state['class']: expected {name!r}, got {state['class']!r}")
        if state["num_params"] != n:
            raise ValueError(f"state['num_params']: expected {n} (this optimizer's parameters), got {state['num_params']!r}")
        cfg = dict(state["config"])
        if sorted(cfg) != sorted(self._config_keys):
            raise ValueError(f"state['config']: expected keys {sorted(self._config_keys)}, got {sorted(cfg)}")
        cfg = self._validate_config(cfg)
        step = check_int("state['step']", state["step"], 0, None)
        expected = [f"{b}.{i}" for b in self._buffer_names(cfg) for i in range(n)]
        got = state["buffers"]
        if sorted(got) != sorted(expected):
            raise ValueError(f"state['buffers']: expected keys {expected}, got {sorted(got)}")
        buffers = {b: [] for b in self._buffer_names(cfg)}
        for b in buffers:
            for i, (p, _) in enumerate(self._pairs):
                arr = np.asarray(got[f"{b}.{i}"])
                if arr.shape != p.shape:
                    raise ValueError(f"state['buffers']['{b}.{i}']: expected shape {p.shape}, got {arr.shape}")
                if arr.dtype.kind != "f":
                    raise TypeError(f"state['buffers']['{b}.{i}']: expected a floating-point array, got dtype {arr.dtype}")
                buffers[b].append(np.array(arr, dtype=p.dtype, copy=True))
        self._set_config(cfg)
        self.step_count = step
        self._buffers = buffers

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({len(self._pairs)} params, {args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum; ``torch.optim.SGD``.

    Parameters
    ----------
    params : list of (param, grad) pairs of same-shape float arrays
    lr : float >= 0
    momentum : float >= 0
    dampening : float, scales the new gradient in the momentum buffer by (1 - dampening)
    weight_decay : float >= 0, L2 penalty added to the gradient
    nesterov : bool, needs momentum > 0 and dampening = 0
    """

    _config_keys = ("lr", "momentum", "dampening", "weight_decay", "nesterov")

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)

    @staticmethod
    def _validate_config(cfg):
        out = dict(lr=check_float("lr", cfg["lr"], 0.0), momentum=check_float("momentum", cfg["momentum"], 0.0),
                   dampening=check_float("dampening", cfg["dampening"]),
                   weight_decay=check_float("weight_decay", cfg["weight_decay"], 0.0), nesterov=check_bool("nesterov", cfg["nesterov"]))
        if out["nesterov"] and (out["momentum"] <= 0 or out["dampening"] != 0):
            raise ValueError(
                f"nesterov: expected momentum > 0 and dampening = 0, got momentum={out['momentum']}, dampening={out['dampening']}"
            )
        return out

    @staticmethod
    def _buffer_names(cfg):
        return ("momentum_buffer",) if cfg["momentum"] else ()

    # d = g + wd p
    # buf = d at t = 1, else momentum buf + (1 - dampening) d
    # p -= lr (d + momentum buf) with nesterov, lr buf with momentum, lr d without
    def _update(self, i, p, g, t):
        d = g + self.weight_decay * p if self.weight_decay else g
        if self.momentum:
            buf = self._buffers["momentum_buffer"][i]
            if t == 1:
                np.copyto(buf, d)
            else:
                buf *= self.momentum
                buf += d if self.dampening == 0 else (1.0 - self.dampening) * d
            d = d + self.momentum * buf if self.nesterov else buf
        p -= self.lr * d


class RMSprop(Optimizer):
    """RMSprop, optionally centered and with momentum; ``torch.optim.RMSprop``.

    Parameters
    ----------
    params : list of (param, grad) pairs of same-shape float arrays
    lr : float >= 0
    alpha : float >= 0, smoothing constant of the squared-gradient average
    eps : float >= 0, added to the denominator
    weight_decay : float >= 0, L2 penalty added to the gradient
    momentum : float >= 0
    centered : bool, normalise by the estimated variance (subtract the squared mean gradient)
    """

    _config_keys = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered)

    @staticmethod
    def _validate_config(cfg):
        return dict(lr=check_float("lr", cfg["lr"], 0.0), alpha=check_float("alpha", cfg["alpha"], 0.0),
                    eps=check_float("eps", cfg["eps"], 0.0),
                    weight_decay=check_float("weight_decay", cfg["weight_decay"], 0.0),
                    momentum=check_float("momentum", cfg["momentum"], 0.0), centered=check_bool("centered", cfg["centered"]))

    @staticmethod
    def _buffer_names(cfg):
        return ("square_avg",) + (("momentum_buffer",) if cfg["momentum"] else ()) + (("grad_avg",) if cfg["centered"] else ())

    # d = g + wd p;  v = alpha v + (1 - alpha) d^2
    # centered: a = lerp(a, d, 1 - alpha), den = sqrt(v - a^2) + eps;  else den = sqrt(v) + eps
    # momentum: buf = momentum buf + d / den, p -= lr buf;  else p -= lr d / den
    def _update(self, i, p, g, t):
        d = g + self.weight_decay * p if self.weight_decay else g
        v = self._buffers["square_avg"][i]
        v *= self.alpha
        v += (1.0 - self.alpha) * d * d
        if self.centered:
            a = self._buffers["grad_avg"][i]
            _lerp_(a, d, 1.0 - self.alpha)
            den = v - a * a
            np.sqrt(den, out=den)
        else:
            den = np.sqrt(v)
        den += self.eps
        if self.momentum:
            buf = self._buffers["momentum_buffer"][i]
            buf *= self.momentum
            buf += d / den
            p -= self.lr * buf
        else:
            p -= self.lr * (d / den)


class Adam(Optimizer):
    """Adam with bias correction and optional AMSGrad; ``torch.optim.Adam`` (L2 weight decay).

    Parameters
    ----------
    params : list of (param, grad) pairs of same-shape float arrays
    lr : float >= 0
    betas : (beta1, beta2), each in [0, 1)
    eps : float >= 0, added to the denominator
    weight_decay : float >= 0, L2 penalty added to the gradient (decoupled in :class:`AdamW`)
    amsgrad : bool, normalise by the running maximum of the second moment
    """

    _config_keys = ("lr", "betas", "eps", "weight_decay", "amsgrad")
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        # the pairs are fixed for the optimizer's life, and an array's layout for its own
        self._contiguous = all(p.flags.c_contiguous and g.flags.c_contiguous for p, g in self._pairs)

    @staticmethod
    def _validate_config(cfg):
        betas = cfg["betas"]
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise ValueError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        betas = tuple(check_float(f"betas[{k}]", b, 0.0, below=1.0) for k, b in enumerate(betas))
        return dict(lr=check_float("lr", cfg["lr"], 0.0), betas=betas, eps=check_float("eps", cfg["eps"], 0.0),
                    weight_decay=check_float("weight_decay", cfg["weight_decay"], 0.0), amsgrad=check_bool("amsgrad", cfg["amsgrad"]))

    #: the fused update (csrc/optim/adam.h: one call, one pass per tensor, bit for bit _update's
    #: results) when the compiled module is there; False: _update, tensor by tensor (the reference)
    fused = True

    @staticmethod
    def _buffer_names(cfg):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if cfg["amsgrad"] else ())

    def step(self):
        """One update of every parameter, in place, from its current gradient."""
        if _C is None or not self.fused or not self._contiguous:
            return super().step()
        self.step_count += 1
        b = self._buffers
        _C.adam_update([p for p, _ in self._pairs], [g for _, g in self._pairs], b["exp_avg"], b["exp_avg_sq"],
                       b.get("max_exp_avg_sq"), self.lr, self.betas[0], self.betas[1], self.eps, self.weight_decay,
                       self._decoupled, self.step_count)

    # Adam: d = g + wd p;  AdamW: p *= 1 - lr wd, d = g
    # m = lerp(m, d, 1 - beta1);  v = beta2 v + (1 - beta2) d^2;  amsgrad: vmax = max(vmax, v), used for v below
    # p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    def _update(self, i, p, g, t):
        beta1, beta2 = self.betas
        d = g
        if self.weight_decay:
            if self._decoupled:
                p *= 1.0 - self.lr * self.weight_decay
            else:
                d = g + self.weight_decay * p
        m, v = self._buffers["exp_avg"][i], self._buffers["exp_avg_sq"][i]
        _lerp_(m, d, 1.0 - beta1)
        v *= beta2
        v += (1.0 - beta2) * d * d
        if self.amsgrad:
            v = np.maximum(self._buffers["max_exp_avg_sq"][i], v, out=self._buffers["max_exp_avg_sq"][i])
        step_size = self.lr / (1.0 - beta1**t)
        den = np.sqrt(v)
        den /= (1.0 - beta2**t) ** 0.5
        den += self.eps
        p -= step_size * (m / den)


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr wd`` before the update); ``torch.optim.AdamW``.

    Same parameters as :class:`Adam`; ``weight_decay`` defaults to 1e-2.
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


_OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get_optimizer(name_or_obj, params=None, **kwargs):
    """An :class:`Optimizer` instance (returned as is) or a new one by name over ``params``.

    Names: ``sgd``, ``rmsprop``, ``adam``, ``adamw`` (case-insensitive); ``kwargs`` go to the constructor.
    """
    if isinstance(name_or_obj, Optimizer):
        if kwargs:
            raise ValueError(f"kwargs: expected none with an optimizer instance, got {sorted(kwargs)}")
        return name_or_obj
    if not isinstance(name_or_obj, str):
        raise TypeError(f"optimizer: expected an Optimizer instance or a name, got {type(name_or_obj).__name__}")
    cls = _OPTIMIZERS.get(name_or_obj.lower())
    if cls is None:
        raise ValueError(f"optimizer: expected one of {sorted(_OPTIMIZERS)}, got {name_or_obj!r}")
    return cls(params, **kwargs)


def optimizer_from_state(state, params):
    """Rebuild an optimizer over ``params`` from its :meth:`Optimizer.state_dict`."""
    classes = {cls.__name__: cls for cls in _OPTIMIZERS.values()}
    cls = classes.get(state.get("class") if isinstance(state, dict) else None)
    if cls is None:
        got = state.get("class") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"state['class']: expected one of {sorted(classes)}, got {got!r}")
    opt = cls(params, **state["config"])
    opt.load_state_dict(state)
    return opt



# --------------------------------------------------------------- schedules


class LRScheduler:
    """Base of the schedules: :meth:`step` (once per epoch, after that epoch's optimizer steps)
    sets ``optimizer.lr``; ``last_epoch`` counts the calls to :meth:`step`.

    Subclasses define ``_config_keys``, ``_validate_config(cfg) -> cfg`` and ``_next_lr()``.
    """

    _config_keys: tuple = ()
    _state_keys = ("last_epoch", "base_lr", "last_lr")
    _int_state = ("last_epoch", "num_bad_epochs", "cooldown_counter")

    def __init__(self, optimizer, **config):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected a pyrnn.optim Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.__dict__.update(self._validate_config(config))
        self.base_lr = optimizer.lr
        self.last_epoch = 0
        self.last_lr = optimizer.lr

    def step(self):
        """Advance one epoch and set the optimizer's lr."""
        self.last_epoch += 1
        self.optimizer.lr = self._next_lr()
        self.last_lr = self.optimizer.lr

    def get_last_lr(self):
        """The lr set by the latest :meth:`step` (the optimizer's lr at construction before any)."""
        return self.last_lr

    def get_config(self):
        """Constructor keyword arguments, without the optimizer (JSON-serialisable)."""
        return {k: getattr(self, k) for k in self._config_keys}

    def state_dict(self):
        """``{"class", "config", <counters>}``; with the optimizer's state it resumes the schedule exactly."""
        return {"class": type(self).__name__, "config": self.get_config(), **{k: getattr(self, k) for k in self._state_keys}}

    def load_state_dict(self, state):
        """Strict load of :meth:`state_dict`: class, config keys and counters; nothing changes unless all check."""
        name = type(self).__name__
        if not isinstance(state, dict):
            raise TypeError(f"state: expected a dict from state_dict(), got {type(state).__name__}")
        missing = [k for k in ("class", "config") + self._state_keys if k not in state]
        if missing:
            raise ValueError(f"state: expected keys {['class', 'config', *self._state_keys]}, missing {missing}")
        if state["class"] != name:
            raise ValueError(f"state['class']: expected {name!r}, got {state['class']!r}")
        cfg = dict(state["config"])
        if sorted(cfg) != sorted(self._config_keys):
            raise ValueError(f"state['config']: expected keys {sorted(self._config_keys)}, got {sorted(cfg)}")
        new = self._validate_config(cfg)
        for k in self._state_keys:
            v = state[k]
            if k in self._int_state:
                new[k] = check_int(f"state[{k!r}]", v, 0, None)
            elif isinstance(v, numbers.Real) and not isinstance(v, bool):
                new[k] = float(v)
            else:
                raise ValueError(f"state[{k!r}]: expected a number, got {v!r}")
        self.__dict__.update(new)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args}, last_epoch={self.last_epoch})"


class StepLR(LRScheduler):
    """Multiply lr by ``gamma`` every ``step_size`` epochs; ``torch.optim.lr_scheduler.StepLR``."""

    _config_keys = ("step_size", "gamma")

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer, step_size=step_size, gamma=gamma)

    @staticmethod
    def _validate_config(cfg):
        return dict(step_size=check_int("step_size", cfg["step_size"], 1, None), gamma=check_float("gamma", cfg["gamma"], 0.0))

    # lr_e = gamma lr_{e-1} if e % step_size == 0 else lr_{e-1}
    def _next_lr(self):
        lr = self.optimizer.lr
        return lr * self.gamma if self.last_epoch % self.step_size == 0 else lr


class ExponentialLR(LRScheduler):
    """Multiply lr by ``gamma`` every epoch; ``torch.optim.lr_scheduler.ExponentialLR``."""

    _config_keys = ("gamma",)

    def __init__(self, optimizer, gamma):
        super().__init__(optimizer, gamma=gamma)

    @staticmethod
    def _validate_config(cfg):
        return dict(gamma=check_float("gamma", cfg["gamma"], 0.0))

    # lr_e = gamma lr_{e-1}
    def _next_lr(self):
        return self.optimizer.lr * self.gamma


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from the initial lr to ``eta_min`` over ``T_max`` epochs (closed form, and
    periodic past T_max, as PyTorch's recursive ``CosineAnnealingLR`` approximates)."""

    _config_keys = ("T_max", "eta_min")

    def __init__(self, optimizer, T_max, eta_min=0.0):
        super().__init__(optimizer, T_max=T_max, eta_min=eta_min)

    @staticmethod
    def _validate_config(cfg):
        return dict(T_max=check_int("T_max", cfg["T_max"], 1, None), eta_min=check_float("eta_min", cfg["eta_min"], 0.0))

    # lr_e = eta_min + (base_lr - eta_min) (1 + cos(pi e / T_max)) / 2
    def _next_lr(self):
        return self.eta_min + (self.base_lr - self.eta_min) * (1.0 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2.0


class ReduceLROnPlateau(LRScheduler):
    """Multiply lr by ``factor`` when a monitored metric stops improving for more than
    ``patience`` epochs; ``torch.optim.lr_scheduler.ReduceLROnPlateau``. ``step(metric)``.

    Parameters
    ----------
    optimizer : Optimizer
    mode : "min" or "max", whether lower or higher metric values are better
    factor : float in [0, 1), ``new_lr = max(lr * factor, min_lr)``
    patience : int >= 0, epochs without improvement tolerated before reducing
    threshold, threshold_mode : improvement means beating ``best * (1 -+ threshold)`` ("rel")
        or ``best -+ threshold`` ("abs")
    cooldown : int >= 0, epochs after a reduction during which bad epochs are not counted
    min_lr : float >= 0
    eps : float >= 0, reductions smaller than eps are skipped
    """

    _config_keys = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps")
    _state_keys = ("last_epoch", "last_lr", "best", "num_bad_epochs", "cooldown_counter")

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8):
        super().__init__(optimizer, mode=mode, factor=factor, patience=patience, threshold=threshold,
                         threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr, eps=eps)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    @staticmethod
    def _validate_config(cfg):
        if cfg["mode"] not in ("min", "max"):
            raise ValueError(f"mode: expected 'min' or 'max', got {cfg['mode']!r}")
        if cfg["threshold_mode"] not in ("rel", "abs"):
            raise ValueError(f"threshold_mode: expected 'rel' or 'abs', got {cfg['threshold_mode']!r}")
        return dict(mode=cfg["mode"], factor=check_float("factor", cfg["factor"], 0.0, below=1.0),
                    patience=check_int("patience", cfg["patience"], 0, None), threshold=check_float("threshold", cfg["threshold"], 0.0),
                    threshold_mode=cfg["threshold_mode"], cooldown=check_int("cooldown", cfg["cooldown"], 0, None),
                    min_lr=check_float("min_lr", cfg["min_lr"], 0.0), eps=check_float("eps", cfg["eps"], 0.0))

    def _is_better(self, a):
        if self.mode == "min":
            return a < (self.best * (1.0 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold)
        return a > (self.best * (1.0 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold)

    # bad = 0 if metric beats best (then best = metric) else bad + 1;  bad = 0 during cooldown
    # bad > patience: lr = max(factor lr, min_lr) unless that changes lr by <= eps; cooldown restarts
    def step(self, metric):
        """Advance one epoch given the monitored metric (a NaN metric counts as no improvement)."""
        if isinstance(metric, (np.ndarray, np.generic)) and np.ndim(metric) == 0 and np.asarray(metric).dtype.kind in "iuf":
            metric = np.asarray(metric).item()
        if isinstance(metric, bool) or not isinstance(metric, numbers.Real):
            raise TypeError(f"metric: expected a real number, got {type(metric).__name__}")
        current = float(metric)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = self.optimizer.lr
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self.last_lr = self.optimizer.lr


# ---------------------------------------------------------------- clipping


def _grad_list(grads):
    if isinstance(grads, np.ndarray):
        grads = [grads]
    if not isinstance(grads, (list, tuple)):
        raise TypeError(f"grads: expected a list of gradient arrays, got {type(grads).__name__}")
    for i, g in enumerate(grads):
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            kind = f"dtype {g.dtype}" if isinstance(g, np.ndarray) else type(g).__name__
            raise TypeError(f"grads[{i}]: expected a floating-point ndarray, got {kind}")
    return grads


def _sum_sq(g):
    a = g.ravel()
    a = a if a.dtype == np.float64 else a.astype(np.float64)
    return float(np.dot(a, a))


# total = sqrt(sum_k ||g_k||^2);  c = max_norm / (total + 1e-6);  g_k *= c if c < 1
def clip_grad_norm_(grads, max_norm):
    """Scale the gradients in place so that their global L2 norm is at most about ``max_norm``,
    as ``torch.nn.utils.clip_grad_norm_`` (coefficient ``max_norm / (total_norm + 1e-6)``, applied
    when below 1).

    Parameters
    ----------
    grads : list of float ndarrays (or one array), modified in place
    max_norm : float >= 0

    Returns
    -------
    float, the global norm before clipping (in float64). A NaN or inf norm is
    returned as is and nothing is scaled, so the caller can detect it and skip the step.
    """
    grads = _grad_list(grads)
    max_norm = check_float("max_norm", max_norm, 0.0)
    with dot_threads(max((g.size for g in grads), default=0)):  # small: OpenBLAS' pool stays asleep
        total = math.sqrt(sum(_sum_sq(g) for g in grads))
    if not math.isfinite(total):
        return total
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return total


# g = min(max(g, -clip_value), clip_value), elementwise; NaN stays NaN
def clip_grad_value_(grads, clip_value):
    """Clamp every gradient element into ``[-clip_value, clip_value]`` in place,
    as ``torch.nn.utils.clip_grad_value_``.

    Parameters
    ----------
    grads : list of float ndarrays (or one array), modified in place
    clip_value : float >= 0
    """
    grads = _grad_list(grads)
    clip_value = check_float("clip_value", clip_value, 0.0)
    for g in grads:
        np.clip(g, -clip_value, clip_value, out=g)
