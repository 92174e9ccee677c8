"""What ``fit``/``evaluate`` accept as data, turned into one thing: batches.

Legend: N = samples, B = samples in a batch.

- arrays ``x, y`` (lists of arrays for several inputs/outputs), with ``mask`` and ``lengths``
  (:class:`ArraySource`): batches are index arrays into them, nothing is copied;
- an object with ``__len__`` (samples) and ``batch(indices) -> (x, y)`` or ``(x, y, mask)``,
  such as :class:`pyrnn.timeseries.WindowDataset` (:class:`IndexedSource`): each batch is asked
  for when it is trained on, shuffled by sample as arrays are; no (N, ...) array is ever built;
- an object with ``__len__`` (batches) and ``__getitem__(i) -> (x, y)`` like Keras'
  ``PyDataset``/``Sequence``, or any re-iterable of ``(x, y)`` batches (a list of tuples, an
  object whose ``__iter__`` starts over) (:class:`BatchesSource`): taken in their own order.

Targets: the loss compares each target with the model's output (for ``CrossEntropyLoss`` the
output without its class axis). When the two differ only by axes of size 1 (a WindowDataset's
(B, 1, 1) one-step target against a (B, 1) head) the target is reshaped to the output's shape
(:func:`fit_target`, applied batch by batch where the loss meets the prediction:
:func:`pyrnn.models.training.forward_loss`); any other mismatch raises, naming the reshape or the
model change needed (``fit`` checks the first sample before training).
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import check_finite

__all__ = ["ArraySource", "IndexedSource", "BatchesSource", "is_data_source", "as_source", "fit_target", "target_shapes"]


def is_data_source(x):
    """Whether ``x`` is a dataset or an iterable of batches rather than arrays."""
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return False
    if isinstance(x, (list, tuple)):
        return len(x) > 0 and all(isinstance(b, tuple) for b in x)  # a list of (x, y) batches
    return callable(getattr(x, "batch", None)) or hasattr(x, "__getitem__") or hasattr(x, "__iter__")


def _split_batch(batch, where):
    """``(x, y)`` or ``(x, y, mask)`` from one batch of a source."""
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        got = f"a {type(batch).__name__}" + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        raise TypeError(f"{where}: expected a batch (x, y) or (x, y, mask), got {got}")
    xb, yb = batch[0], batch[1]
    mb = batch[2] if len(batch) == 3 else None
    xs = [np.asarray(a) for a in xb] if isinstance(xb, (list, tuple)) else [np.asarray(xb)]
    ys = [np.asarray(a) for a in yb] if isinstance(yb, (list, tuple)) else [np.asarray(yb)]
    n = len(xs[0])
    for name, a in [("x", a) for a in xs] + [("y", a) for a in ys] + ([("mask", np.asarray(mb))] if mb is not None else []):
        if a.ndim == 0 or len(a) != n:
            raise ValueError(f"{where}: expected {name} with {n} samples (as many as x), got shape {np.shape(a)}")
        check_finite(f"{where} {name}", a)
    if n == 0:
        raise ValueError(f"{where}: expected at least one sample, got 0")
    return xs, ys, mb


class ArraySource:
    """Arrays already in memory; batches are index arrays (see the module docstring)."""

    shuffles = True

    def __init__(self, xs, ys, mask, lengths, n):
        self.xs, self.ys, self.mask, self.lengths, self.n = xs, ys, mask, lengths, n

    def __len__(self):
        return self.n

    def first(self):
        """The first sample, for the dry run and the target check: (xs, lengths, ys)."""
        return [a[:1] for a in self.xs], None if self.lengths is None else np.asarray(self.lengths)[:1], [a[:1] for a in self.ys]

    def epoch(self, batch_size, order):
        """``(n_steps, iterator of (xs, ys, mask, lengths, selection))``; ``order`` the sample order
        (None: in order, the selections slices: views, no copies)."""
        if order is None:
            batches = [slice(i, min(i + batch_size, self.n)) for i in range(0, self.n, batch_size)]
        else:
            batches = [order[i : i + batch_size] for i in range(0, self.n, batch_size)]
        return len(batches), ((self.xs, self.ys, self.mask, self.lengths, sel) for sel in batches)



class IndexedSource:
    """``dataset.batch(indices)`` per batch, the samples shuffled as arrays are."""

    shuffles = True

    def __init__(self, dataset):
        self.dataset, self.n = dataset, len(dataset)
        if self.n == 0:
            raise ValueError(f"x: expected a dataset with at least one sample, got an empty {type(dataset).__name__}")

    def __len__(self):
        return self.n

    def _batch(self, idx):
        xs, ys, mb = _split_batch(self.dataset.batch(idx), f"{type(self.dataset).__name__}.batch")
        return xs, ys, mb, None, slice(None)

    def first(self):
        xs, ys, _ = _split_batch(self.dataset.batch(np.arange(1)), f"{type(self.dataset).__name__}.batch")
        return xs, None, ys

    def epoch(self, batch_size, order):
        order = np.arange(self.n) if order is None else order
        batches = [order[i : i + batch_size] for i in range(0, self.n, batch_size)]
        return len(batches), (self._batch(idx) for idx in batches)



class BatchesSource:
    """Ready-made batches: ``source[i]`` for i < ``len(source)`` (Keras' ``PyDataset``), else
    ``iter(source)`` each epoch; ``source.on_epoch_end()`` is called after each epoch if it exists."""

    shuffles = False
    n = None  # samples: unknown

    def __init__(self, source):
        self.source = source
        self.indexed = hasattr(source, "__getitem__") and hasattr(source, "__len__")
        self._epochs = 0

    def _iterate(self):
        if self.indexed:
            return (self.source[i] for i in range(len(self.source)))
        it = iter(self.source)
        if it is self.source and self._epochs > 0:
            raise TypeError(f"x: a {type(self.source).__name__} is an iterator, used up after one epoch; pass a "
                            "re-iterable (a list of batches, or an object whose __iter__ starts over each time)")
        return it

    def _batch(self, batch, k):
        xs, ys, mb = _split_batch(batch, f"batch {k}")
        return xs, ys, mb, None, slice(None)

    def first(self):
        for batch in self._iterate():
            xs, ys, _ = _split_batch(batch, "batch 0")
            return [a[:1] for a in xs], None, [a[:1] for a in ys]
        raise ValueError(f"x: expected at least one batch, got none from {type(self.source).__name__}")

    def epoch(self, batch_size, order):
        del batch_size, order  # the batches are the source's
        n_steps = len(self.source) if hasattr(self.source, "__len__") else None

        def steps():
            for k, batch in enumerate(self._iterate()):
                yield self._batch(batch, k)
            self._epochs += 1
            end = getattr(self.source, "on_epoch_end", None)
            if callable(end):
                end()

        return n_steps, steps()



def as_source(x):
    """An :class:`IndexedSource` or :class:`BatchesSource` for a dataset ``x`` (see :func:`is_data_source`)."""
    if callable(getattr(x, "batch", None)) and hasattr(x, "__len__"):
        return IndexedSource(x)
    if hasattr(x, "__getitem__") and hasattr(x, "__len__") or hasattr(x, "__iter__"):
        return BatchesSource(x)
    raise TypeError(f"x: expected arrays, a dataset with __len__ and batch(indices), or an iterable of (x, y) batches, "
                    f"got {type(x).__name__}")


# ------------------------------------------------------------------ targets
def target_shapes(model, outputs):
    """The per-sample target shape each loss expects for the model's ``outputs`` (one batch):
    the output's, without the class axis for a cross-entropy over class indices."""
    from ..losses import CrossEntropyLoss

    outs = list(outputs) if isinstance(outputs, tuple) else [outputs]
    losses = list(model.loss) if isinstance(model.loss, (list, tuple)) else [model.loss]
    return [o.shape[1:-1] if isinstance(loss, CrossEntropyLoss) else o.shape[1:] for o, loss in zip(outs, losses)]


def fit_target(y, want, what):
    """``y`` (B, ...) as the loss wants it, per sample ``want``: unchanged if it already is, reshaped
    when only axes of size 1 differ (unambiguous), else a ValueError naming the fix."""
    tail = tuple(y.shape[1:])
    want = tuple(want)
    if tail == want:
        return y
    if tuple(s for s in tail if s != 1) == tuple(s for s in want if s != 1):
        return y.reshape((y.shape[0],) + want)
    per_y, per_out = math.prod(tail), math.prod(want)
    if per_y == per_out:
        fix = (f"the two differ in more than axes of size 1, so which values go where is ambiguous: reshape "
               f"(or transpose) them yourself, e.g. y.reshape(len(y), {', '.join(map(str, want))})")
    else:
        fix = (f"the model predicts {per_out} value(s) per sample and the data has {per_y}: give the model's last layer "
               f"{per_y} outputs (e.g. Dense(..., {per_y}) for a horizon of {per_y} steps), or make the targets "
               f"{per_out} value(s) per sample (e.g. a WindowDataset with horizon={per_out})")
    raise ValueError(f"{what}: expected targets of shape (batch, {', '.join(map(str, want))}) to match the model's output "
                     f"(per sample {want}), got shape {y.shape}; {fix}")
