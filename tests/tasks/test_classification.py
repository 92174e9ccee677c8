"""Many-to-one classification: rows of the 8x8 digits read as a sequence, windows of the yearly
sunspot series, what the (bidirectional) classifier reads, gradients and bad input.

Accuracies measured when these tests were written (cpp backend): row-wise digits, GRU(64),
8 epochs: 0.98 on 497 held-out images; bidirectional GRU(32): 0.97; sunspots, GRU(16),
15 epochs: 0.93 on the last 90 years, against 0.66 for the majority class and 0.78 for
"the direction of the last change persists"."""

import numpy as np
import pytest

from pyrnn import datasets
from pyrnn.tasks import sequence_classifier

from gradcheck import check_model_grads


def _digits_split():
    x, y = datasets.load_digits(as_sequences=True)  # (1797, 8, 8): 8 rows of 8 pixels as 8 time steps
    perm = np.random.default_rng(0).permutation(len(x))
    x, y = x[perm], y[perm]
    return (x[:1300], y[:1300]), (x[1300:], y[1300:])


def _accuracy(model, x, y):
    return float((model.predict(x).argmax(axis=-1) == y).mean())


@pytest.mark.parametrize("cell, hidden, bidirectional, epochs", [("gru", 64, False, 8), ("gru", 32, True, 8)])
def test_rowwise_digits_reach_095_test_accuracy(cell, hidden, bidirectional, epochs):
    (xtr, ytr), (xte, yte) = _digits_split()
    model = sequence_classifier(8, hidden, 10, cell=cell, bidirectional=bidirectional, seed=0)
    model.compile("adam", "cross_entropy", metrics=["accuracy"], lr=1e-2)
    before = _accuracy(model, xte, yte)
    model.fit(xtr, ytr, epochs=epochs, batch_size=32, seed=0, verbose=0)
    after = _accuracy(model, xte, yte)
    assert before < 0.3  # an untrained model is near chance (0.1)
    assert after > 0.95, f"test accuracy {after:.3f}"


def _sunspot_windows(window=12):
    """x[n] = the `window` years before year i (scaled by 1/100), label: year i above year i - 1."""
    v = datasets.load_sunspots().values
    z = (v / 100.0).astype(np.float32)
    years = np.arange(window, len(v))
    x = np.stack([z[i - window : i] for i in years])[:, :, None]
    return x, (v[years] > v[years - 1]).astype(np.int64)


def test_sunspot_direction_beats_the_majority_class_and_persistence():
    x, y = _sunspot_windows()
    cut = int(0.7 * len(x))  # chronological split: train on the past, test on the last 90 years
    (xtr, ytr), (xte, yte) = (x[:cut], y[:cut]), (x[cut:], y[cut:])
    majority = float((yte == np.bincount(ytr).argmax()).mean())             # 0.66
    persistence = float(((xte[:, -1, 0] > xte[:, -2, 0]) == yte).mean())    # 0.78
    model = sequence_classifier(1, 16, 2, cell="gru", seed=0)
    model.compile("adam", "cross_entropy", lr=1e-2)
    model.fit(xtr, ytr, epochs=15, batch_size=16, seed=0, verbose=0)
    acc = _accuracy(model, xte, yte)
    assert acc > 0.85, f"test accuracy {acc:.3f}"
    assert acc > majority + 0.15 and acc > persistence + 0.05, (acc, majority, persistence)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_bidirectional_reads_forward_at_the_last_valid_step_and_reverse_at_t0(cell):
    """The summary the head reads is the bidirectional layer's own final state [h_fwd | h_rev],
    which its kernels compute independently of LastStep/FirstStep."""
    rng = np.random.default_rng(1)
    x, lengths = rng.standard_normal((4, 6, 3)), np.array([6, 2, 4, 1])
    model = sequence_classifier(3, 5, 3, cell=cell, bidirectional=True, variable_length=True, seed=0, dtype=np.float64)
    rnn, head = model.layers[0], model.layers[-1]
    _, state = rnn.forward(x, lengths=lengths)
    h = state[0] if isinstance(state, tuple) else state  # (2, B, H): forward, reverse
    expected = head.forward(np.concatenate([h[0], h[1]], axis=1))
    np.testing.assert_allclose(model.predict([x, lengths]), expected, rtol=1e-12, atol=1e-12)


def test_unidirectional_padding_does_not_change_the_logits():
    rng = np.random.default_rng(2)
    model = sequence_classifier(3, 5, 4, cell="lstm", seed=0, dtype=np.float64)
    short = rng.standard_normal((1, 3, 3))
    padded = np.concatenate([short, 100 * rng.standard_normal((1, 4, 3))], axis=1)
    np.testing.assert_allclose(model.predict(padded, lengths=np.array([3])), model.predict(short), rtol=1e-12)
    assert not np.allclose(model.predict(padded), model.predict(short))


def test_bidirectional_classifier_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    x, lengths = rng.standard_normal((3, 4, 2)), np.array([4, 2, 3])
    model = sequence_classifier(2, 3, 3, cell="gru", bidirectional=True, variable_length=True, seed=0, dtype=np.float64)
    check_model_grads(model, [x, lengths])


def test_bad_arguments_name_what_was_expected():
    with pytest.raises(ValueError, match=r"cell: expected one of \['gru', 'lstm', 'rnn'\], got 'tcn'"):
        sequence_classifier(8, 16, 10, cell="tcn")
    with pytest.raises(ValueError, match="n_classes: expected an integer >= 2, got 1"):
        sequence_classifier(8, 16, 1)
    with pytest.raises(ValueError, match="variable_length: expected False for a unidirectional classifier"):
        sequence_classifier(8, 16, 10, variable_length=True)
    with pytest.raises(ValueError, match="hidden_size: expected an integer >= 1, got 0"):
        sequence_classifier(8, 0, 10)
    model = sequence_classifier(8, 16, 10, seed=0)
    with pytest.raises(ValueError, match=r"lengths\[1\]: expected a value in \[1, 8\]"):
        model.predict(np.zeros((2, 8, 8), np.float32), lengths=np.array([8, 0]))
