"""Callbacks for ``fit`` and ``fit_tbptt`` (Keras names): objects with any of ``on_train_begin()``,
``on_epoch_begin(epoch)``, ``on_batch_end(batch, logs)``, ``on_epoch_end(epoch, logs)``,
``on_train_end()``; the loop (:func:`pyrnn.models.training.run_epochs`) sets
``callback.model`` first. ``on_batch_end``'s logs hold the batch's (or TBPTT window's)
``loss`` and ``grad_norm``; ``on_epoch_end``'s hold ``loss``, metrics, ``grad_norm``,
``lr`` and the ``val_`` entries. Setting ``model.stop_training`` ends training after the
current batch (from ``on_batch_end``) or epoch."""

from __future__ import annotations

import math

from ._checks import check_bool, check_float, check_int


class Callback:
    model = None


def _better(mode, monitor):
    if mode == "auto":
        mode = "max" if any(k in monitor for k in ("acc", "skill")) else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"mode: expected 'min', 'max' or 'auto', got {mode!r}")
    return (lambda a, b, d: a < b - d) if mode == "min" else (lambda a, b, d: a > b + d)


def _monitored(logs, monitor, who):
    if monitor not in logs:
        raise ValueError(f"{who}: expected {monitor!r} among the epoch logs, got {sorted(logs)} "
                         "(val_ entries need validation_data or validation_split)")
    return logs[monitor]


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs;
    with ``restore_best_weights`` the best epoch's weights are put back at the end.

    When it stops training it prints one line (``verbose=1``, the default; 0 is silent), e.g.
    ``Early stopping: stopped at epoch 45, restored epoch 25 (val_loss 0.0123)``; epochs count
    from 1 as the progress bar does. The line is also kept in :attr:`message` (None if it did not stop).
    """

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto", restore_best_weights=False,
                 verbose=1):
        self.verbose = check_int("verbose", verbose, 0, 1)
        self.message = None
        self.monitor, self.patience = monitor, check_int("patience", patience, 0, None)
        self.min_delta = abs(check_float("min_delta", min_delta))
        restore_best_weights = check_bool("restore_best_weights", restore_best_weights)
        self.better = _better(mode, monitor)
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self):
        self.best, self.best_epoch, self.wait, self.best_weights, self.stopped_epoch = None, None, 0, None, None

    def on_epoch_end(self, epoch, logs):
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if self.best is None or self.better(value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.state_dict()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self):
        restored = self.restore_best_weights and self.best_weights is not None
        if restored:
            self.model.load_state_dict(self.best_weights)
        if self.stopped_epoch is None:
            return
        best = f"{self.monitor} {self.best:.4g}"
        if restored:
            self.message = f"Early stopping: stopped at epoch {self.stopped_epoch + 1}, restored epoch {self.best_epoch + 1} ({best})"
        else:
            self.message = (f"Early stopping: stopped at epoch {self.stopped_epoch + 1}, best epoch {self.best_epoch + 1} "
                            f"({best}); the weights are the last epoch's (restore_best_weights=True puts the best back)")
        if self.verbose:
            print(self.message, flush=True)


class ModelCheckpoint(Callback):
    """Save the model (weights, config, optimizer and training state: a resumable checkpoint)
    at the end of each epoch to ``path`` (``{epoch}`` is formatted, 1-based), or only when
    ``monitor`` improves with ``save_best_only``. Every write is atomic."""

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        self.path, self.monitor, self.save_best_only = str(path), monitor, save_best_only
        self.better = _better(mode, monitor)
        self.best = None
        self.saved = []

    def on_epoch_end(self, epoch, logs):
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if self.best is not None and not self.better(value, self.best, 0.0):
                return
            self.best = value
        path = self.path.format(epoch=epoch + 1, **{k: v for k, v in logs.items()})
        self.model.save(path)
        self.saved.append(path)


class LearningRateScheduler(Callback):
    """At each epoch's end: ``schedule.step()`` for a schedule object from :mod:`pyrnn.optim`
    (``schedule.step(logs[monitor])`` for ReduceLROnPlateau), or ``lr = schedule(epoch, lr)``
    for a plain function."""

    def __init__(self, schedule, monitor=None):
        self.schedule, self.monitor = schedule, monitor

    def on_epoch_end(self, epoch, logs):
        if hasattr(self.schedule, "step"):
            if self.monitor is None:
                self.schedule.step()
            else:
                self.schedule.step(_monitored(logs, self.monitor, "LearningRateScheduler"))
        else:
            self.model.optimizer.lr = float(self.schedule(epoch, self.model.optimizer.lr))


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss or gradient norm is NaN or infinite.

    The loop never applies such a batch (the weights stay those after the last finite step);
    with this callback training then ends without an error, that epoch's logs (with the
    non-finite loss) in History; without it ``fit`` raises ``FloatingPointError``.
    ``stopped_at`` is the batch index within its epoch."""

    def __init__(self):
        self.stopped_at = None

    def on_batch_end(self, batch, logs):
        if not all(math.isfinite(v) for v in logs.values()):
            self.stopped_at = batch
            self.model.stop_training = True
