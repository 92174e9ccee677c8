"""The training loop behind ``model.fit``, :func:`pyrnn.fit_tbptt` and ``model.evaluate``.

One loop, :func:`run_epochs`, owns everything around the optimizer steps: History, the
progress bar, the callbacks (``on_train_begin``/``on_epoch_begin``/``on_batch_end``/
``on_epoch_end``/``on_train_end``), ``model.stop_training``, validation, the per-epoch
logs and what happens when the loss diverges. Its callers only say what one epoch's
steps are: :func:`fit` a (seeded) shuffle of the training indices cut into mini-batches,
``fit_tbptt`` the windows of truncated BPTT. Every step is :func:`train_step`: forward
(training mode) -> loss -> loss.backward -> model.backward -> global gradient norm
(clipped if asked) -> optimizer step. The validation tail of ``validation_split`` is cut
before any shuffle (right for time series). Validation, ``evaluate`` and fit's dry run
run inside :func:`pyrnn.grad_mode.inference`: eval behaviour, nothing saved for backward,
and no layer's ``training`` flag touched, so other threads never see a changed mode.

Divergence: a step whose loss or gradient norm is NaN or infinite is skipped (no optimizer
step: the weights stay those after the last finite step) and ``on_batch_end`` sees the
non-finite value. If a callback (``callbacks.TerminateOnNaN()``) then sets
``model.stop_training``, training ends cleanly with that epoch's logs in History; otherwise
the loop raises ``FloatingPointError``. Predictions that are not finite where the loss
reads them give the loss value NaN instead of the loss's ValueError.

Public-internal API (no leading underscore; used across pyrnn's modules, not exported at
the top level):

- :class:`History`: per-epoch logs.
- :func:`as_input_list`, :func:`as_target_list`: a model's inputs / targets as lists of arrays.
- :func:`check_data`: same number of samples everywhere, finite values; returns that number.
- :func:`batch_forward_kwargs`: the keyword arguments of ``model.forward`` for one batch.
- :func:`forward_loss`: one batch's forward and summed loss (NaN for non-finite predictions).
- :func:`metric_values`: the compiled metrics on one batch.
- :func:`train_step`: one optimizer step on one batch -> ``(loss, grad_norm, metrics)``.
- :class:`WeightedMeans`: the loss and metric means of an epoch or an evaluation.
- :func:`run_epochs`: the epoch loop above; :func:`fit` and :func:`evaluate`.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from .._checks import check_finite, check_int
from ..grad_mode import inference
from ..losses import NonFiniteError
from ..optim import clip_grad_norm_, clip_grad_value_
from ..threads import dot_threads
from .data_adapter import ArraySource, as_source, fit_target, is_data_source, target_shapes

__all__ = ["History", "as_input_list", "as_target_list", "check_data", "batch_forward_kwargs",
           "forward_loss", "metric_values", "train_step", "WeightedMeans", "run_epochs", "fit", "evaluate"]


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


def as_target_list(model, y):
    """The targets as a list of arrays (one per model output)."""
    n_outputs = len(getattr(model, "outputs", [None]))
    is_list = isinstance(y, (list, tuple)) and all(isinstance(a, np.ndarray) for a in y)
    ys = list(y) if is_list and (n_outputs > 1 or len(y) == 1) else [y]
    if len(ys) != n_outputs:
        raise ValueError(f"y: expected {n_outputs} target array(s), got {len(ys)}")
    return [np.asarray(a) for a in ys]


def check_data(model, xs, ys, mask, lengths):
    """Raise unless inputs, targets, mask and lengths have one sample count and finite values; return it."""
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
    """``model.forward``'s keyword arguments for the samples ``sl`` (``lengths`` if given)."""
    return {} if lengths is None else {"lengths": np.asarray(lengths)[sl]}


# ------------------------------------------------------------------ one batch
def _loss_value(loss, pred, target, mask):
    """``loss.forward``, except that predictions that are not finite where the loss reads them
    give NaN: the losses refuse them with a ValueError, the training loop reports them."""
    try:
        return loss.forward(pred, target, mask=mask)
    except NonFiniteError as exc:
        if exc.name == "pred":
            return math.nan
        raise


def forward_loss(model, xs, ys, mask, lengths, sl):
    """Forward of the samples ``sl`` and the summed loss -> ``(value, preds, losses, batch_mask, targets)``.

    ``value`` is NaN when a prediction the loss reads is not finite (nothing is then saved
    for that loss's backward). ``targets`` are the batch's targets as the losses read them: a
    target that differs from its prediction only by axes of size 1 is reshaped to it
    (:func:`~pyrnn.models.data_adapter.fit_target`; other mismatches raise, naming the fix)."""
    pred = model.forward(*[a[sl] for a in xs], **batch_forward_kwargs(model, lengths, sl))
    preds = list(pred) if isinstance(pred, tuple) else [pred]
    m = None if mask is None else np.asarray(mask)[sl]
    losses = list(model.loss) if isinstance(model.loss, (list, tuple)) else [model.loss]
    if len(losses) != len(preds):
        raise ValueError(f"loss: expected one loss per model output ({len(preds)}), got {len(losses)}")
    wants = target_shapes(model, pred)
    names = ["y"] if len(ys) == 1 else [f"y[{i}]" for i in range(len(ys))]
    targets = [fit_target(t[sl], w, name) for t, w, name in zip(ys, wants, names)]
    value = sum(_loss_value(loss, p, t, m) for loss, p, t in zip(losses, preds, targets))
    return value, preds, losses, m, targets


def metric_values(model, preds, targets, m):
    """``{name: value}`` of the compiled metrics on the first output of one batch (``targets``:
    :func:`forward_loss`'s)."""
    return {metric.name: metric(preds[0], targets[0], m) for metric in model.metrics}


def _gradient_norm(model, grads):
    if model.clip_norm is not None:
        return clip_grad_norm_(grads, model.clip_norm)  # a non-finite norm is returned, nothing scaled
    with dot_threads(max((g.size for g in grads), default=0)):  # small: OpenBLAS' pool stays asleep
        return float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads)))


def train_step(model, xs, ys, mask, lengths, idx, reducer=None):
    """One optimizer step on the samples ``idx`` -> ``(loss, grad_norm, metrics)``.

    ``model`` needs ``forward``, ``backward``, ``loss``, ``metrics``, ``optimizer``,
    ``clip_norm``, ``clip_value``, ``zero_grad`` and ``param_grad_pairs`` (a model, or an
    object standing for one, as truncated BPTT's windows and seq2seq do). When the loss or the
    gradient norm is not finite the step is skipped: no optimizer step (the weights stay as
    they are), the returned loss or norm is that non-finite value (the norm is NaN when the
    loss already was: no backward ran) and :func:`run_epochs` decides what follows.

    ``reducer`` (None in one process) combines the ranks' shares of a global batch
    (:mod:`pyrnn.distributed.mpi`): ``has_rows`` (False: this rank computes nothing but takes
    part), ``scalars(loss, metrics)`` and ``grads(grads)`` (in place) return the global values.
    """
    model.zero_grad()
    local = reducer is None or reducer.has_rows
    value, metrics = 0.0, {}
    if local:
        value, preds, losses, m, targets = forward_loss(model, xs, ys, mask, lengths, idx)
        metrics = metric_values(model, preds, targets, m)
    if reducer is not None:
        value, metrics = reducer.scalars(value, metrics)
    if not math.isfinite(value):
        clear = getattr(model, "clear_saved", None)
        if local and clear is not None:
            clear()  # the forward's saved state: no backward will take it
        return value, math.nan, metrics
    if local:
        dpreds = [loss.backward() for loss in losses[: len(preds)]]
        model.backward(*dpreds, input_grad=False)  # the data needs no gradient: first layers skip theirs
    grads = [g for _, g in model.param_grad_pairs()]
    if reducer is not None:
        reducer.grads(grads)  # the global batch's gradient, before clipping
    norm = float(_gradient_norm(model, grads))
    if math.isfinite(norm):
        if model.clip_value is not None:
            clip_grad_value_(grads, model.clip_value)
        model.optimizer.step()
    return value, norm, metrics


class WeightedMeans:
    """Means of the loss and the metrics over batches (or windows), each weighted by ``add``'s
    ``weight`` (its samples, or samples x steps)."""

    def __init__(self):
        self.total, self.count, self.sums = 0.0, 0, {}

    def add(self, weight, value, metrics):
        self.total += value * weight
        self.count += weight
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + v * weight

    def logs(self):
        return {"loss": self.total / self.count, **{k: v / self.count for k, v in self.sums.items()}}


# ------------------------------------------------------------------ progress
class _Progress:
    """A tqdm bar (verbose=1), one line per epoch (verbose=2), or silence (verbose=0)."""

    def __init__(self, verbose, epoch, n_epochs, n_batches, unit="batch"):
        self.verbose, self.bar = verbose, None
        self.prefix = f"Epoch {epoch + 1}/{n_epochs}"
        if verbose == 1:
            from tqdm import tqdm  # here: importing tqdm costs ~0.1 s of `import pyrnn`

            self.bar = tqdm(total=n_batches, desc=self.prefix, unit=unit, leave=True, file=sys.stderr)

    def update(self, loss):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4g}", refresh=False)

    def close(self, logs=None):
        if logs is None:  # the epoch ended with an exception
            if self.bar is not None:
                self.bar.close()
            return
        text = " - ".join(f"{k}: {v:.4g}" for k, v in logs.items())
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            self.bar.close()
        elif self.verbose:
            print(f"{self.prefix} - {text}", flush=True)


# ------------------------------------------------------------------ the epoch loop
def _call(callbacks, hook, *args):
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)


def _diverged(who, unit, epoch, n_epochs, batch, n_batches, value, norm):
    what = f"loss {value}" if not math.isfinite(value) else f"gradient norm {norm} (loss {value:.6g})"
    return FloatingPointError(
        f"{who}: non-finite {what} at epoch {epoch + 1}/{n_epochs}, {unit} {batch + 1}/{n_batches}; "
        "its update was skipped and training stopped, so the weights are those after the last finite step. "
        "callbacks.TerminateOnNaN() stops training without this error; a lower learning rate or clip_norm "
        "may avoid the divergence")


def run_epochs(model, epochs, epoch_steps, callbacks=(), validate=None, verbose=0, who="fit", unit="batch",
               strategy=None):
    """Train ``epochs`` more epochs and return a new :class:`History` of them: the loop behind fit and
    fit_tbptt. ``model.history`` goes on accumulating every epoch the model trained (checkpoints
    keep it, so a resumed run's record continues).

    Parameters
    ----------
    model : the model trained (``history``, ``epochs_done``, ``stop_training``, ``optimizer.lr``)
    epochs : int
    epoch_steps : ``epoch_steps(epoch) -> (n_steps, steps)``, called after ``on_epoch_begin``;
        ``steps`` yields ``(weight, (loss, grad_norm, metrics))`` per optimizer step, the step
        run lazily (e.g. by :func:`train_step`) when the loop asks for it; ``weight`` weighs
        the step's loss and metrics in the epoch means (samples, or samples x time steps)
    callbacks : objects with any of the hooks of :mod:`pyrnn.callbacks`; ``callback.model`` is set
    validate : None or ``validate() -> {name: value}``, run after each epoch's steps; its
        entries are logged with a ``val_`` prefix
    verbose : 0 silent, 1 progress bar, 2 one line per epoch
    who, unit : the function and what one step is ("batch", "window"), as error messages name them
    strategy : None, or a :class:`pyrnn.distributed.MPIStrategy` whose ``call(model)`` runs the
        callbacks on rank 0 and shares their decisions

    Each epoch logs ``loss`` and the metrics (means weighted as above), ``grad_norm`` (mean over
    the steps), the ``val_`` entries and ``lr``. A step with a non-finite loss or gradient norm
    was skipped by the step itself; after its ``on_batch_end`` the epoch ends if a callback set
    ``model.stop_training`` (its logs hold the non-finite loss), else ``FloatingPointError``.
    """
    history = History()  # this call's epochs (a new object per call, as Keras' fit returns)
    model.history = model.history or History()  # every epoch the model trained: checkpoints keep it, resume continues it
    model.stop_training = False
    callbacks = list(callbacks)
    for cb in callbacks:
        cb.model = model
    call = _call if strategy is None else strategy.call(model)
    call(callbacks, "on_train_begin")
    first = model.epochs_done
    last = first + epochs
    for epoch in range(first, last):
        call(callbacks, "on_epoch_begin", epoch)
        n_steps, steps = epoch_steps(epoch)
        progress = _Progress(verbose, epoch, last, n_steps, unit)
        means, norms = WeightedMeans(), []
        try:
            for batch, (weight, (value, norm, metrics)) in enumerate(steps):
                means.add(weight, value, metrics)
                norms.append(norm)
                progress.update(value)
                call(callbacks, "on_batch_end", batch, {"loss": value, "grad_norm": norm})
                if not model.stop_training and not (math.isfinite(value) and math.isfinite(norm)):
                    raise _diverged(who, unit, epoch, last, batch, n_steps, value, norm)
                if model.stop_training:
                    break
        except BaseException:
            progress.close()
            raise
        finally:
            close = getattr(steps, "close", None)
            if close is not None:
                close()  # a generator of steps stopped early
        logs = {**means.logs(), "grad_norm": float(np.mean(norms))}
        if validate is not None:
            logs.update({f"val_{k}": v for k, v in validate().items()})
        logs["lr"] = float(model.optimizer.lr)
        model.epochs_done = epoch + 1
        model.history.append(epoch, logs)
        history.append(epoch, logs)
        progress.close(logs)
        call(callbacks, "on_epoch_end", epoch, logs)
        if model.stop_training:
            break
    call(callbacks, "on_train_end")
    return history


# ------------------------------------------------------------------ fit
def fit(model, x, y=None, epochs=1, batch_size=32, shuffle=True, seed=None, validation_data=None,
        validation_split=0.0, callbacks=(), verbose=1, mask=None, lengths=None, distributed=None):
    """Train ``model`` for ``epochs`` more epochs and return a new :class:`History` of them.

    Parameters
    ----------
    x, y : arrays (or lists of arrays for several inputs/outputs), batch axis first; or ``x`` a
        dataset and ``y`` None: an object with ``__len__`` and ``batch(indices) -> (x, y)`` such as
        ``pyrnn.timeseries.WindowDataset`` (batches gathered lazily, shuffled by sample), a Keras-style
        ``PyDataset`` (``__len__`` batches, ``__getitem__(i) -> (x, y)``) or any re-iterable of
        ``(x, y)`` batches (see :mod:`pyrnn.models.data_adapter`). Targets that differ from the
        model's output only by axes of size 1 are reshaped to it; other mismatches raise.
    epochs, batch_size : ints
    shuffle : reshuffle the training samples every epoch (with the model's generator)
    seed : reseed that generator first (None continues it: a resumed run goes on bit for bit)
    validation_data : (x_val, y_val) or (x_val, y_val, mask_val), or a dataset as ``x``
    validation_split : fraction in [0, 1) taken from the TAIL of the data, before shuffling
    callbacks : objects with optional on_train_begin/on_epoch_begin/on_batch_end/on_epoch_end/on_train_end
    verbose : 0 silent, 1 progress bar, 2 one line per epoch
    mask : (N,) or (N, T) for the loss (e.g. padding); lengths : (N,) for Sequential models
    distributed : None, ``"mpi"`` or a :class:`pyrnn.distributed.MPIStrategy`: data-parallel over
        the ranks of ``mpiexec -n N`` (every rank passes the same data), equal to one process
        with the same ``batch_size`` (see :mod:`pyrnn.distributed`)

    A batch whose loss or gradient norm is NaN or infinite is not applied; training then stops
    with ``FloatingPointError``, or cleanly with ``callbacks.TerminateOnNaN()`` (see :func:`run_epochs`).
    """
    if distributed is None:
        return _fit(model, x, y, epochs, batch_size, shuffle, seed, validation_data, validation_split, callbacks,
                    verbose, mask, lengths, None)
    from ..distributed import get_strategy

    strategy = get_strategy(distributed)
    with strategy.guard("fit"):
        return _fit(model, x, y, epochs, batch_size, shuffle, seed, validation_data, validation_split, callbacks,
                    strategy.verbose(verbose), mask, lengths, strategy)


def _fit(model, x, y, epochs, batch_size, shuffle, seed, validation_data, validation_split, callbacks, verbose,
         mask, lengths, strategy):
    if model.loss is None or model.optimizer is None:
        raise ValueError("fit: expected a compiled model (call model.compile(optimizer=..., loss=...)), got none")
    check_int("epochs", epochs, 1)
    check_int("batch_size", batch_size, 1)
    if not 0 <= validation_split < 1:
        raise ValueError(f"validation_split: expected a fraction in [0, 1), got {validation_split!r}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose: expected 0, 1 or 2, got {verbose!r}")
    if y is None:
        if not is_data_source(x):
            raise ValueError("y: expected targets, got None (y may be left out only when x is a dataset with "
                             "batch(indices) or an iterable of (x, y) batches)")
        if validation_split:
            raise ValueError("validation_split: expected 0 with a dataset (it has no tail to cut); pass "
                             "validation_data=another dataset, e.g. WindowDataset.subset(...)")
        if mask is not None or lengths is not None:
            raise ValueError("mask, lengths: expected None with a dataset (its batches may be (x, y, mask))")
        if strategy is not None:
            raise ValueError("x: expected arrays x, y with distributed= (every rank passes the same arrays), got a "
                             f"dataset {type(x).__name__}: pass its arrays, e.g. x, y = ds.arrays()")
        source = as_source(x)
        val = None if validation_data is None else _validation_tuple(validation_data)
        return _fit_source(model, source, epochs, batch_size, shuffle, seed, val, callbacks, verbose)
    xs, ys = as_input_list(model, x, "x"), as_target_list(model, y)
    n = check_data(model, xs, ys, mask, lengths)
    val = None
    if validation_data is not None:
        val = _validation_tuple(validation_data)
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
    source = ArraySource(xs, ys, mask, lengths, n)
    return _fit_source(model, source, epochs, batch_size, shuffle, seed, val, callbacks, verbose, strategy)


def _fit_source(model, source, epochs, batch_size, shuffle, seed, val, callbacks, verbose, strategy=None):
    """fit's epochs over a data source (:mod:`pyrnn.models.data_adapter`)."""
    _check_targets(model, source)
    if seed is not None:
        model._rng = np.random.default_rng(seed)
    step = train_step
    if strategy is not None:  # every rank starts from rank 0's weights, optimizer and generators
        arrays = [*source.xs, *source.ys, *(a for a in (source.mask, source.lengths) if a is not None)]
        strategy.begin(model, arrays)
        step = strategy.train_step

    def epoch_steps(epoch):
        model.train()
        n = source.n
        order = None if n is None else model._rng.permutation(n) if shuffle and source.shuffles else np.arange(n)
        n_steps, batches = source.epoch(batch_size, order)
        if strategy is not None:  # the ranks' shares are rows of an index array
            batches = ((xs, ys, m, lengths, np.arange(n)[sel] if isinstance(sel, slice) else sel)
                       for xs, ys, m, lengths, sel in batches)
        return n_steps, ((_weight(xs, sel), step(model, xs, ys, m, lengths, sel)) for xs, ys, m, lengths, sel in batches)

    validate = None
    if val is not None:
        vx, vy, vm = val[:3]
        vl = val[3] if len(val) > 3 else None

        def validate():
            return evaluate(model, vx, vy, mask=vm, lengths=vl, strategy=strategy)

    return run_epochs(model, epochs, epoch_steps, callbacks=callbacks, validate=validate, verbose=verbose,
                      strategy=strategy)


def _validation_tuple(validation_data):
    """(x, y, mask) from ``validation_data``: (x_val, y_val[, mask_val]) or a dataset (y None)."""
    if is_data_source(validation_data) and not isinstance(validation_data, tuple):
        return (validation_data, None, None)
    return tuple(validation_data) + (None,) * (3 - len(validation_data))


def _weight(xs, sel):
    """Samples in one batch: those ``sel`` (an index array or a slice) selects from ``xs[0]``."""
    return len(range(*sel.indices(len(xs[0])))) if isinstance(sel, slice) else len(sel)


def _check_targets(model, source):
    """Dry run on the source's first sample, and its targets checked against what the losses
    want (:func:`~pyrnn.models.data_adapter.fit_target`), before any training. The dry run's
    answer is kept on the model for the next ``fit`` with samples of the same shapes and dtypes,
    the same layers and losses (one ``fit`` call per batch, online learning, pays it once)."""
    xs, lengths, ys = source.first()
    key = (tuple((np.shape(a)[1:], getattr(a, "dtype", None)) for a in xs), lengths is None, tuple(model.layers),
           model.loss)
    cached = model.__dict__.get("_dry_run_answer")
    if cached is not None and cached[0] == key:
        wants = cached[1]
    else:
        wants = _dry_run(model, xs, lengths)
        model._dry_run_answer = (key, wants)
    what = "y" if isinstance(source, ArraySource) else "the dataset's y"
    for i, y in enumerate(ys):
        fit_target(y, wants[i], what if len(ys) == 1 else f"{what}[{i}]")


def _dry_run(model, xs, lengths):
    """One sample through the model before any training, so shape errors surface first;
    returns the per-sample target shape each loss expects (:func:`target_shapes`).
    In inference mode: it draws no dropout mask (a resumed run stays bit-for-bit identical)
    and saves nothing for backward."""
    with inference():
        out = model.forward(*xs, **({} if lengths is None else {"lengths": lengths}))
    return target_shapes(model, out)


# ------------------------------------------------------------------ evaluate
def evaluate(model, x, y=None, batch_size=256, mask=None, lengths=None, strategy=None):
    """Mean loss and metrics over (x, y) (or a dataset ``x``, as in :func:`fit`) in inference mode (eval behaviour, nothing kept for
    backward, no layer attribute changed); the loss is NaN if the model predicts non-finite values.
    With a ``strategy`` (fit's validation under MPI) the ranks share the batches."""
    if model.loss is None:
        raise ValueError("evaluate: expected a compiled model (call model.compile(...)), got none")
    if y is None and is_data_source(x):
        source = as_source(x)
    else:
        xs, ys = as_input_list(model, x, "x"), as_target_list(model, y)
        source = ArraySource(xs, ys, mask, lengths, check_data(model, xs, ys, mask, lengths))
    means = WeightedMeans()
    with inference():
        batches = source.epoch(batch_size, None)[1]
        for xs, ys, m, lengths, sel in (batches if strategy is None else strategy.deal(batches)):
            value, preds, _, bm, targets = forward_loss(model, xs, ys, m, lengths, sel)
            means.add(_weight(xs, sel), value, metric_values(model, preds, targets, bm))
    if strategy is not None:
        means = strategy.combine(means, [metric.name for metric in model.metrics])
    return means.logs()
