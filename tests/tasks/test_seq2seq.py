"""Encoder–decoder on reversing digit strings of length 3–6: teacher forcing against
free-running training, greedy inference against an independent decoding through the graph,
the accuracy metric, the data, gradients and bad input.

Measured when written (cpp backend, LSTM(64), 2000 training pairs, batch 32, Adam 1e-2,
exact-match accuracy of free-running greedy decoding on 500 held-out pairs, model seeds 0-4;
the test runs seeds 0 and 1):

========  ==================================  ==================================
budget    teacher forcing                     free-running
========  ==================================  ==================================
1 epoch   0.20 / 0.24 / 0.25 / 0.34 / 0.24    0.06 / 0.06 / 0.08 / 0.10 / 0.06
4 epochs  0.91 / 0.93 / 0.93 / 0.93 / 0.93    0.84 / 0.87 / 0.88 / 0.90 / 0.88
8 epochs  0.95 / 0.98 / 0.91 / 0.97 / 0.97    0.97 / 0.96 / 0.96 / 0.97 / 0.96
========  ==================================  ==================================

Teacher forcing learns faster; on this task the free-running model catches up within ~8
epochs (the decoder can find the next digit from its own state without reading its inputs).
"""

import importlib.util
import pathlib

import numpy as np
import pytest

import pyrnn
from pyrnn.tasks import Seq2Seq, shift_right

from gradcheck import assert_grad_close

# the digit-string task lives with the example that trains on it
_spec = importlib.util.spec_from_file_location(
    "seq2seq_example", pathlib.Path(__file__).resolve().parents[2] / "examples" / "seq2seq.py")
_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_example)
DIGIT_VOCAB_SIZE, END, PAD, START = _example.DIGIT_VOCAB_SIZE, _example.END, _example.PAD, _example.START
digits_to_str, reverse_digits_dataset = _example.digits_to_str, _example.reverse_digits_dataset


def _model(seed, cell="lstm", hidden=64, dtype=np.float32):
    m = Seq2Seq(DIGIT_VOCAB_SIZE, DIGIT_VOCAB_SIZE, emb=12, hidden=hidden, cell=cell, start_token=START, end_token=END,
                seed=seed, dtype=dtype)
    return m.compile("adam", "cross_entropy", lr=1e-2, clip_norm=1.0)


def _graph_greedy(model, src, src_lengths, T):
    """Greedy decoding through the whole-sequence graph: T passes, each appending the argmax."""
    tokens_in = np.full((len(src), T), START, np.int64)
    for t in range(T):
        pred = model.predict([src, src_lengths, tokens_in]).argmax(axis=-1)
        if t + 1 < T:
            tokens_in[:, t + 1] = pred[:, t]
    return pred


def test_teacher_forcing_beats_free_running_training_at_the_same_budget():
    train, test = reverse_digits_dataset(2000, 3, 6, seed=0), reverse_digits_dataset(500, 3, 6, seed=1)
    results = {"teacher forcing": [], "free-running": []}
    for seed in (0, 1):
        for mode, accs in results.items():
            model = _model(seed)
            fit = model.fit_teacher_forcing if mode == "teacher forcing" else model.fit_free_running
            fit(*train, epochs=1, batch_size=32, seed=seed)
            after_1 = model.accuracy(*test)["exact"]
            fit(*train, epochs=3, batch_size=32)  # the shuffling generator goes on: 4 epochs in all
            accs.append((after_1, model.accuracy(*test)["exact"]))
    tf, fr = np.array(results["teacher forcing"]), np.array(results["free-running"])
    assert (tf[:, 0] > fr[:, 0] + 0.1).all(), results          # after 1 epoch, on every seed
    assert tf[:, 1].mean() > 0.9, results                      # after 4 epochs
    assert fr[:, 1].mean() < tf[:, 1].mean() - 0.03, results


def test_translate_is_greedy_decoding_and_stops_at_the_end_token():
    train, test = reverse_digits_dataset(2000, 3, 6, seed=0), reverse_digits_dataset(200, 3, 6, seed=2)
    model = _model(0)
    model.fit_teacher_forcing(*train, epochs=4, batch_size=32, seed=0)
    T = test.tgt.shape[1]
    out = model.translate(test.src, max_len=T, src_lengths=test.src_lengths)
    reference = _graph_greedy(model, test.src, test.src_lengths, T)
    ends = [int(np.argmax(row == END)) if (row == END).any() else T for row in reference]
    for i, e in enumerate(ends):  # the same tokens up to the end token, then END repeated
        np.testing.assert_array_equal(out[i, : e + 1], reference[i, : e + 1])
        assert (out[i, e + 1 :] == END).all()
    assert out.shape[1] == min(max(ends) + 1, T)
    got = digits_to_str(out)
    wanted = [s[::-1] for s in digits_to_str(test.src)]
    assert np.mean([g == w for g, w in zip(got, wanted)]) == model.accuracy(*test)["exact"] > 0.8


def test_fit_teacher_forcing_is_fit_on_the_shifted_targets():
    data = reverse_digits_dataset(100, 3, 6, seed=3)
    a, b = _model(1, cell="gru"), _model(1, cell="gru")
    a.fit_teacher_forcing(*data, epochs=2, batch_size=16, seed=5)
    mask = np.arange(data.tgt.shape[1]) < data.tgt_lengths[:, None]
    b.fit([data.src, data.src_lengths, shift_right(data.tgt, START)], data.tgt, mask=mask, epochs=2, batch_size=16,
          seed=5, verbose=0)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_array_equal(p, q, err_msg=name)
    assert a.history.history["loss"] == b.history.history["loss"] and a.epochs_done == 2


def test_fit_free_running_reads_the_models_own_greedy_outputs():
    data = reverse_digits_dataset(64, 3, 6, seed=4)
    teacher = _model(2)
    teacher.fit_teacher_forcing(*data, epochs=3, batch_size=16, seed=0)  # outputs that are partly right
    a, b = _model(3), _model(4)
    a.load_state_dict(teacher.state_dict())
    b.load_state_dict(teacher.state_dict())
    own = _graph_greedy(b, data.src, data.src_lengths, data.tgt.shape[1])
    assert 0.1 < (own == data.tgt).mean() < 0.9
    a.fit_free_running(*data, epochs=1, batch_size=64, seed=1)  # one batch: the outputs of the weights before the step
    mask = np.arange(data.tgt.shape[1]) < data.tgt_lengths[:, None]
    b.fit([data.src, data.src_lengths, shift_right(own, START)], data.tgt, mask=mask, epochs=1, batch_size=64, seed=1,
          verbose=0)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_array_equal(p, q, err_msg=name)


def test_accuracy_counts_exact_sequences_and_valid_tokens(monkeypatch):
    model = _model(0)
    d = lambda *digits: [3 + k for k in digits]  # noqa: E731
    tgt = np.array([d(1, 2) + [END, PAD], d(3) + [END, PAD, PAD], d(4, 5, 6) + [END]])
    tgt_lengths = np.array([3, 2, 4])
    pred = np.array([d(1, 2) + [END, END],   # right
                     d(4) + [END, END, END],  # one wrong digit, END right: 1 of 2 tokens
                     d(4, 5, 6) + [3]])       # digits right, END missing: 3 of 4 tokens
    monkeypatch.setattr(model, "translate", lambda src, max_len, src_lengths=None: pred[:, :max_len])
    src = np.full((3, 3), 3)
    assert model.accuracy(src, None, tgt, tgt_lengths) == {"exact": 1 / 3, "token": (3 + 1 + 3) / 9}
    # a decoding that stopped after 3 steps (every row had ended) reads as END afterwards
    stopped = np.array([d(1, 2) + [END], d(3) + [END, END], d(4, 5) + [END]])
    monkeypatch.setattr(model, "translate", lambda src, max_len, src_lengths=None: stopped)
    assert model.accuracy(src, None, tgt, tgt_lengths) == {"exact": 2 / 3, "token": (3 + 2 + 3) / 9}


def test_reverse_digits_dataset_holds_reversed_strings_with_an_end_token():
    data = reverse_digits_dataset(300, 2, 5, seed=0)
    assert data.src.shape == (300, 5) and data.tgt.shape == (300, 6)
    assert set(np.unique(data.src_lengths)) == {2, 3, 4, 5}
    np.testing.assert_array_equal(data.tgt_lengths, data.src_lengths + 1)
    for s, sl, t, tl in zip(*data):
        text = "".join(str(k - 3) for k in s[:sl])
        assert len(text) == sl and (s[sl:] == PAD).all()
        assert "".join(str(k - 3) for k in t[: tl - 1]) == text[::-1]
        assert t[tl - 1] == END and (t[tl:] == PAD).all()
    np.testing.assert_array_equal(reverse_digits_dataset(10, seed=7).src, reverse_digits_dataset(10, seed=7).src)
    assert digits_to_str(data.src[:1]) == ["".join(str(k - 3) for k in data.src[0, : data.src_lengths[0]])]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_seq2seq_gradients_match_finite_differences(cell):
    rng = np.random.default_rng(5)
    model = Seq2Seq(6, 5, emb=2, hidden=3, cell=cell, seed=0, dtype=np.float64)
    src, src_lengths, tokens_in = rng.integers(0, 6, (3, 4)), np.array([4, 1, 2]), rng.integers(0, 5, (3, 3))
    dout = rng.standard_normal((3, 3, 5))

    def f():
        with pyrnn.no_grad():
            return float(np.sum(model.forward(src, src_lengths, tokens_in) * dout))

    model.zero_grad()
    model.forward(src, src_lengths, tokens_in)
    assert model.backward(dout) == (None, None, None)  # integer inputs only
    for name, p in model.named_parameters():
        i, k = name.split(".", 1)
        assert_grad_close(model.layers[int(i)].grads[k], f, p, name)
    # the source past each length does not matter
    changed = src.copy()
    changed[1, 1:] = (changed[1, 1:] + 1) % 6
    with pyrnn.no_grad():
        np.testing.assert_array_equal(model.forward(changed, src_lengths, tokens_in), model.forward(src, src_lengths, tokens_in))


def test_bad_input_names_what_was_expected():
    data = reverse_digits_dataset(8, seed=0)
    with pytest.raises(ValueError, match=r"fit: expected a compiled model"):
        Seq2Seq(13, 13, seed=0).fit_teacher_forcing(*data)
    model = _model(0)
    with pytest.raises(ValueError, match=r"src: expected token ids in \[0, 13\) \(the vocabulary\), got 13"):
        model.translate(np.full((2, 3), 13), 4)
    with pytest.raises(TypeError, match="src: expected integer token ids, got dtype float64"):
        model.translate(np.zeros((2, 3)), 4)
    with pytest.raises(ValueError, match=r"lengths\[1\]: expected a value in \[1, 6\]"):
        model.translate(data.src[:2], 4, src_lengths=np.array([3, 7]))
    with pytest.raises(ValueError, match="max_len: expected an integer >= 1, got 0"):
        model.translate(data.src, 0)
    with pytest.raises(ValueError, match="tgt: expected 8 sequences \\(as many as src\\), got 7"):
        model.fit_free_running(data.src, data.src_lengths, data.tgt[:7], data.tgt_lengths[:7])
    with pytest.raises(ValueError, match="epochs: expected an integer >= 1, got 0"):
        model.fit_free_running(*data, epochs=0)
    with pytest.raises(ValueError, match=r"cell: expected one of"):
        Seq2Seq(13, 13, cell="transformer")
    with pytest.raises(ValueError, match=r"end_token: expected a token id in \[0, 5\), got 5"):
        Seq2Seq(13, 5, end_token=5)
    with pytest.raises(ValueError, match="max_len: expected a value >= min_len=4, got 3"):
        reverse_digits_dataset(5, 4, 3)


def test_checkpoint_round_trip_gives_the_same_function(tmp_path):
    """The functional graph holds only standard layers, so pyrnn.load rebuilds it (as a plain Model)."""
    data = reverse_digits_dataset(32, seed=6)
    model = _model(0, cell="gru")
    model.fit_free_running(*data, epochs=1, batch_size=16, seed=0)
    model.save(tmp_path / "s2s.safetensors")
    again = pyrnn.load(tmp_path / "s2s.safetensors")
    inputs = [data.src, data.src_lengths, shift_right(data.tgt, START)]
    np.testing.assert_array_equal(again.predict(inputs), model.predict(inputs))
    twin = Seq2Seq(DIGIT_VOCAB_SIZE, DIGIT_VOCAB_SIZE, emb=12, hidden=64, cell="gru")
    twin.load_state_dict(again.state_dict())
    np.testing.assert_array_equal(twin.translate(data.src, 7, data.src_lengths), model.translate(data.src, 7, data.src_lengths))
