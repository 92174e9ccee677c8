"""The training loop behind ``model.fit`` and ``model.evaluate``.

One epoch: (seeded) shuffle of the training indices, then per batch
forward (training mode) -> loss -> loss.backward -> model.backward -> global
gradient norm (clipped if asked) -> optimizer step. The validation tail of
``validation_split`` is cut before any shuffle (right for time series).
"""

from __future__ import annotations

import sys

import numpy as np

from .._checks import check_finite
from ..grad_mode import no_grad


class History:
    """Per-epoch logs: ``history.history["loss"]``, ``["val_loss"]``, ``["grad_norm"]``, metrics, ``["lr"]``."""

    def __init__(self, history=None, epochs=None):
        self.history = {k: list(v) for k, v in (history or {}).items()}
        self.epoch = list(epochs or [])

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"


# ------------------------------------------------------------------ data checks
def as_input_list(model, x, what):
    """The model's inputs as a list of arrays (one per model input)."""
    n_inputs = len(getattr(model, "inputs", [None]))
    is_list = isinstance(x, (list, tuple)) and all(isinstance(a, np.ndarray) for a in x)
    xs = list(x) if is_list and (n_inputs > 1 or len(x) == 1) else [x]
    if len(xs) != n_inputs:
        raise ValueError(f"{what}: expected {n_inputs} input array(s), got {len(xs)}")
    out = []
    for i, a in enumerate(xs):
        arr = np.asarray(a)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{what}[{i}]: expected a numeric array, got dtype {arr.dtype}")
        if arr.ndim == 0:
            raise ValueError(f"{what}[{i}]: expected an array with a batch axis, got a scalar")
        out.append(arr)
    return out


def _as_target_list(model, y):
    n_outputs = len(getattr(model, "outputs", [None]))
    is_list = isinstance(y, (list, tuple)) and all(isinstance(a, np.ndarray) for a in y)
    ys = list(y) if is_list and (n_outputs > 1 or len(y) == 1) else [y]
    if len(ys) != n_outputs:
        raise ValueError(f"y: expected {n_outputs} target array(s), got {len(ys)}")
    return [np.asarray(a) for a in ys]


def _check_data(model, xs, ys, mask, lengths):
    n = len(xs[0])
    named = [(f"x[{i}]" if len(xs) > 1 else "x", a) for i, a in enumerate(xs)]
    named += [(f"y[{i}]" if len(ys) > 1 else "y", a) for i, a in enumerate(ys)]
    named += [(k, np.asarray(v)) for k, v in (("mask", mask), ("lengths", lengths)) if v is not None]
    for name, a in named:
        if len(a) != n:
            raise ValueError(f"{name}: expected {n} samples (as many as x), got {len(a)}")
        check_finite(name, a)
    if n == 0:
        raise ValueError("x: expected at least one sample, got 0")
    return n


def batch_forward_kwargs(model, lengths, sl):
    return {} if lengths is None else {"lengths": np.asarray(lengths)[sl]}


# ------------------------------------------------------------------ one batch
def _forward_loss(model, xs, ys, mask, lengths, sl):
    pred = model.forward(*[a[sl] for a in xs], **batch_forward_kwargs(model, lengths, sl))
    preds = list(pred) if isinstance(pred, tuple) else [pred]
    m = None if mask is None else np.asarray(mask)[sl]
    losses = list(model.loss) if isinstance(model.loss, (list, tuple)) else [model.loss]
    if len(losses) != len(preds):
        raise ValueError(f"loss: expected one loss per model output ({len(preds)}), got {len(losses)}")
    value = sum(loss.forward(p, t[sl], mask=m) for loss, p, t in zip(losses, preds, ys))
    return value, preds, losses, m


def _metric_values(model, preds, ys, m, sl):
    return {metric.name: metric(preds[0], ys[0][sl], m) for metric in model.metrics}


def _train_batch(model, xs, ys, mask, lengths, idx):
    from ..optim import clip_grad_norm_, clip_grad_value_

    model.zero_grad()
    value, preds, losses, m = _forward_loss(model, xs, ys, mask, lengths, idx)
    dpreds = [loss.backward() for loss in losses[: len(preds)]]
    model.backward(*dpreds)
    grads = [g for _, g in model.param_grad_pairs()]
    if model.clip_norm is not None:
        norm = clip_grad_norm_(grads, model.clip_norm)
    else:
        norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads)))
    if model.clip_value is not None:
        clip_grad_value_(grads, model.clip_value)
    model.optimizer.step()
    return value, float(norm), _metric_values(model, preds, ys, m, idx)


# ------------------------------------------------------------------ progress
class _Progress:
    """tqdm bar (verbose=1, when tqdm is installed), one line per epoch (verbose=2 or no tqdm), or silence."""

    def __init__(self, verbose, epoch, n_epochs, n_batches):
        self.verbose, self.bar = verbose, None
        self.prefix = f"Epoch {epoch + 1}/{n_epochs}"
        if verbose == 1:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=n_batches, desc=self.prefix, unit="batch", leave=True, file=sys.stderr)

    def update(self, loss):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4g}", refresh=False)

    def close(self, logs):
        text = " - ".join(f"{k}: {v:.4g}" for k, v in logs.items())
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            self.bar.close()
        elif self.verbose:
            print(f"{self.prefix} - {text}", flush=True)


# ------------------------------------------------------------------ fit
def fit(model, x, y, epochs=1, batch_size=32, shuffle=True, seed=None, validation_data=None,
        validation_split=0.0, callbacks=(), verbose=1, mask=None, lengths=None):
    """Train ``model`` for ``epochs`` more epochs and return its :class:`History`.

    Parameters
    ----------
    x, y : arrays (or lists of arrays for several inputs/outputs), batch axis first
    epochs, batch_size : ints
    shuffle : reshuffle the training samples every epoch (with the model's generator)
    seed : reseed that generator first (None continues it: a resumed run goes on bit for bit)
    validation_data : (x_val, y_val) or (x_val, y_val, mask_val)
    validation_split : fraction in [0, 1) taken from the TAIL of the data, before shuffling
    callbacks : objects with optional on_train_begin/on_epoch_begin/on_batch_end/on_epoch_end/on_train_end
    verbose : 0 silent, 1 progress bar, 2 one line per epoch
    mask : (N,) or (N, T) for the loss (e.g. padding); lengths : (N,) for Sequential models
    """
    if model.loss is None or model.optimizer is None:
        raise ValueError("fit: expected a compiled model (call model.compile(optimizer=..., loss=...)), got none")
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    if not 0 <= validation_split < 1:
        raise ValueError(f"validation_split: expected a fraction in [0, 1), got {validation_split!r}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose: expected 0, 1 or 2, got {verbose!r}")
    xs, ys = as_input_list(model, x, "x"), _as_target_list(model, y)
    n = _check_data(model, xs, ys, mask, lengths)
    val = None
    if validation_data is not None:
        val = tuple(validation_data) + (None,) * (3 - len(validation_data))
    elif validation_split:
        n_val = max(1, int(round(n * validation_split)))
        if n_val >= n:
            raise ValueError(f"validation_split: leaves no training sample out of {n}")
        cut = slice(n - n_val, n)
        val = ([a[cut] for a in xs], [a[cut] for a in ys], None if mask is None else np.asarray(mask)[cut],
               None if lengths is None else np.asarray(lengths)[cut])
        head = slice(0, n - n_val)
        xs, ys = [a[head] for a in xs], [a[head] for a in ys]
        mask = None if mask is None else np.asarray(mask)[head]
        lengths = None if lengths is None else np.asarray(lengths)[head]
        n -= n_val
    _dry_run(model, xs, lengths)
    if seed is not None:
        model._rng = np.random.default_rng(seed)
    model.history = model.history or History()
    model.stop_training = False
    callbacks = list(callbacks)
    for cb in callbacks:
        cb.model = model
    _call(callbacks, "on_train_begin")
    first = model.epochs_done
    for epoch in range(first, first + epochs):
        _call(callbacks, "on_epoch_begin", epoch)
        model.train()
        order = model._rng.permutation(n) if shuffle else np.arange(n)
        batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
        progress = _Progress(verbose, epoch, first + epochs, len(batches))
        total, norms, metric_sums = 0.0, [], {}
        for idx in batches:
            value, norm, metric_vals = _train_batch(model, xs, ys, mask, lengths, idx)
            total += value * len(idx)
            norms.append(norm)
            for k, v in metric_vals.items():
                metric_sums[k] = metric_sums.get(k, 0.0) + v * len(idx)
            progress.update(value)
            _call(callbacks, "on_batch_end", len(norms) - 1, {"loss": value, "grad_norm": norm})
            if model.stop_training:
                break
        logs = {"loss": total / n, **{k: v / n for k, v in metric_sums.items()}, "grad_norm": float(np.mean(norms))}
        if val is not None:
            vx, vy, vm = val[:3]
            vl = val[3] if len(val) > 3 else None
            logs.update({f"val_{k}": v for k, v in evaluate(model, vx, vy, mask=vm, lengths=vl).items()})
        logs["lr"] = float(model.optimizer.lr)
        model.epochs_done = epoch + 1
        model.history.append(epoch, logs)
        progress.close(logs)
        _call(callbacks, "on_epoch_end", epoch, logs)
        if model.stop_training:
            break
    _call(callbacks, "on_train_end")
    return model.history


def _call(callbacks, hook, *args):
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)


def _dry_run(model, xs, lengths):
    """One sample through the model before any training, so shape errors surface first.
    In eval mode: it draws no dropout mask, so a resumed run stays bit-for-bit identical."""
    was = [layer.training for layer in model.layers]
    model.eval()
    try:
        with no_grad():
            model.forward(*[a[:1] for a in xs], **batch_forward_kwargs(model, lengths, slice(0, 1)))
    finally:
        model.clear_saved()
        for layer, mode in zip(model.layers, was):
            layer.train(mode)


# ------------------------------------------------------------------ evaluate
def evaluate(model, x, y, batch_size=256, mask=None, lengths=None):
    """Mean loss and metrics over (x, y) in eval mode, keeping nothing for backward."""
    if model.loss is None:
        raise ValueError("evaluate: expected a compiled model (call model.compile(...)), got none")
    xs, ys = as_input_list(model, x, "x"), _as_target_list(model, y)
    n = _check_data(model, xs, ys, mask, lengths)
    was = [layer.training for layer in model.layers]
    model.eval()
    total, metric_sums = 0.0, {}
    try:
        with no_grad():
            for start in range(0, n, batch_size):
                sl = slice(start, min(start + batch_size, n))
                value, preds, _, m = _forward_loss(model, xs, ys, mask, lengths, sl)
                count = sl.stop - sl.start
                total += value * count
                for k, v in _metric_values(model, preds, ys, m, sl).items():
                    metric_sums[k] = metric_sums.get(k, 0.0) + v * count
    finally:
        for layer, mode in zip(model.layers, was):
            layer.train(mode)
    return {"loss": total / n, **{k: v / n for k, v in metric_sums.items()}}
