"""Many-to-one sequence classification: a recurrent layer read at its last valid step, then
``Dense`` to class logits (train with ``loss="cross_entropy"``).

Legend: B = batch, T = time, I = input features, H = hidden units per direction,
C = classes.

- unidirectional: ``x (B, T, I) -> RNN -> y (B, T, H) -> LastStep(lengths) -> (B, H) -> Dense -> (B, C)``
- bidirectional: ``y (B, T, 2H) = [forward | reverse]``; the forward direction has read the
  whole sequence at its last valid step, the reverse direction at t = 0, so the summary is
  ``[LastStep(y)[:, :H] | FirstStep(y)[:, H:]]`` (B, 2H) -> Dense -> (B, C).

An image read row by row is such a sequence: T = rows, I = columns.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_int
from ..layers import GRU, LSTM, RNN, Concatenate, Dense, FirstStep, LastStep
from ..layers.plumbing import FeatureSlice
from ..models import Input, Model, Sequential

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def recurrent_layer(cell, input_size, hidden, **kwargs):
    """``RNN``/``LSTM``/``GRU`` by name ('rnn', 'lstm', 'gru'); ``kwargs`` go to its constructor."""
    if cell not in CELLS:
        raise ValueError(f"cell: expected one of {sorted(CELLS)}, got {cell!r}")
    return CELLS[cell](input_size, hidden, **kwargs)


def child_seed(seed, k):
    """The k-th layer's seed derived from a model seed (None stays None: fresh entropy)."""
    return None if seed is None else int(seed) + k


def sequence_classifier(input_size, hidden, n_classes, cell="gru", bidirectional=False, num_layers=1,
                        variable_length=False, dropout=0.0, seed=None, dtype=np.float32):
    """A many-to-one classifier: recurrent layer -> last valid step -> ``Dense`` logits.

    Parameters
    ----------
    input_size : int
        I, features per time step (pixels per row for an image read row by row).
    hidden : int
        H, hidden units per direction.
    n_classes : int
        C, number of classes (the output is C logits; use ``loss="cross_entropy"``).
    cell : {'gru', 'lstm', 'rnn'}
    bidirectional : bool
        Read the sequence both ways; the classifier sees the forward direction at the last
        valid step and the reverse direction at t = 0 (where each has read everything).
    num_layers : int
        Stacked recurrent layers.
    variable_length : bool
        Bidirectional only: make ``lengths`` (B,) a second model input, ``predict([x, lengths])``.
        (The unidirectional ``Sequential`` always takes ``lengths=`` in ``fit``/``predict``.)
    dropout : float
        Dropout between stacked recurrent layers.
    seed : int or None
        Seeds the layers' initialisations (layer k gets ``seed + k``).
    dtype : float32 or float64

    Returns
    -------
    Sequential (unidirectional): x (B, T, I) -> logits (B, C); ``lengths`` (B,) in [1, T]
        are passed to the recurrent layer and ``LastStep``.
    Model (bidirectional): inputs [x] (or [x, lengths]) -> logits (B, C).

    Examples
    --------
    >>> model = sequence_classifier(8, 32, 10, seed=0)          # 8x8 images, rows as time
    >>> model.compile("adam", "cross_entropy", metrics=["accuracy"], lr=1e-2)
    """
    check_int("n_classes", n_classes, 2)
    D = 2 if bidirectional else 1
    rnn = recurrent_layer(cell, input_size, hidden, num_layers=num_layers, bidirectional=bool(bidirectional),
                          dtype=dtype, seed=child_seed(seed, 0), dropout=dropout)
    head = Dense(D * hidden, int(n_classes), dtype=dtype, seed=child_seed(seed, 1))
    if not bidirectional:
        if variable_length:
            raise ValueError("variable_length: expected False for a unidirectional classifier (a Sequential takes "
                             "lengths= in fit/predict), got True")
        return Sequential([rnn, LastStep(), head])
    x = Input(dtype=dtype, name="x")
    lengths = Input(dtype="int64", name="lengths") if variable_length else None
    y = rnn(x, lengths=lengths)[0]                               # (B, T, 2H) = [forward | reverse]
    forward_end = FeatureSlice(0, hidden)(LastStep()(y, lengths))    # forward direction at t = len - 1
    reverse_end = FeatureSlice(hidden, 2 * hidden)(FirstStep()(y))   # reverse direction at t = 0
    logits = head(Concatenate()(forward_end, reverse_end))
    return Model([x] if lengths is None else [x, lengths], logits)
