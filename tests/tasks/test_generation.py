"""One-to-many generation: a SequenceDecoder that must emit one fixed sequence per class of
vectors, greedy and sampled decoding, the sampler itself, a character-level language model on
the Gettysburg Address, gradients and bad input.

Measured when written (cpp backend): the decoder reproduces all 200 held-out sequences
exactly after 20 epochs (loss 0.0009); the char LM (LSTM 64, windows of 32, Adam 2e-2) goes
from 3.59 nats/char (log V = 3.58, V = 36) to 0.48 after 10 epochs, far below the text's unigram
entropy 2.90 (the best a model without context can do)."""

import numpy as np
import pytest

from pyrnn import datasets
from pyrnn.tasks import CharLanguageModel, SequenceDecoder, sample_tokens, shift_right

from gradcheck import check_model_grads

START, END, V, F = 0, 1, 8, 6
SEQUENCES = [[2, 3, 4, 5], [5, 4, 3], [7, 7, 2, 6, 3], [6, 2]]  # class k emits SEQUENCES[k], then END


def _class_data(n, seed):
    """Vectors near one of 4 far-apart centres; target = that class's sequence + END, padded with END."""
    centers = 3 * np.eye(len(SEQUENCES), F)
    rng = np.random.default_rng(seed)
    k = rng.integers(0, len(SEQUENCES), n)
    x = (centers[k] + 0.3 * rng.standard_normal((n, F))).astype(np.float32)
    T = max(map(len, SEQUENCES)) + 1
    tgt, lengths = np.full((n, T), END, np.int64), np.zeros(n, np.int64)
    for i, c in enumerate(k):
        tgt[i, : len(SEQUENCES[c])] = SEQUENCES[c]
        lengths[i] = len(SEQUENCES[c]) + 1
    return x, tgt, lengths


@pytest.fixture(scope="module")
def trained_decoder():
    x, tgt, lengths = _class_data(512, seed=1)
    dec = SequenceDecoder(F, V, embedding_dim=8, hidden=32, start_token=START, end_token=END, seed=0)
    dec.compile("adam", "cross_entropy", lr=1e-2)
    history = dec.fit_teacher_forcing(x, tgt, lengths, epochs=20, batch_size=32, seed=0, verbose=0)
    assert history.history["loss"][-1] < 0.01 < history.history["loss"][0]
    return dec


def _without_end_token(dec):
    """The same weights in a decoder without an end token: always max_len steps."""
    free = SequenceDecoder(F, V, embedding_dim=8, hidden=32, start_token=START, end_token=None)
    free.load_state_dict(dec.state_dict())
    return free


def test_greedy_decoding_reproduces_each_class_sequence_exactly(trained_decoder):
    x, tgt, lengths = _class_data(200, seed=2)
    out = trained_decoder.generate(x, max_len=10)
    assert out.shape == (200, tgt.shape[1])  # stops once every sample has emitted END
    for i in range(200):
        assert list(out[i, : lengths[i]]) == list(tgt[i, : lengths[i]]), i
        assert (out[i, lengths[i]:] == END).all()


def test_step_decoding_agrees_with_the_teacher_forced_graph(trained_decoder):
    """Feeding the generated tokens back through the whole-sequence model gives the same argmaxes:
    the step loop with its carried state computes what the graph computes."""
    x, _, _ = _class_data(50, seed=3)
    dec = _without_end_token(trained_decoder)
    out = dec.generate(x, max_len=6)
    assert out.shape == (50, 6)
    logits = dec.predict([x, shift_right(out, START)])
    np.testing.assert_array_equal(logits.argmax(axis=-1), out)


def test_generation_is_batched_over_samples(trained_decoder):
    x, _, _ = _class_data(7, seed=4)
    dec = _without_end_token(trained_decoder)
    together = dec.generate(x, max_len=8)
    for i in range(7):
        np.testing.assert_array_equal(dec.generate(x[i : i + 1], max_len=8)[0], together[i])


def test_sampling_is_reproducible_and_becomes_greedy_as_temperature_goes_to_zero(trained_decoder):
    x, _, _ = _class_data(100, seed=5)
    hot = dict(max_len=8, greedy=False, temperature=3.0)
    a, b = trained_decoder.generate(x, seed=7, **hot), trained_decoder.generate(x, seed=7, **hot)
    np.testing.assert_array_equal(a, b)
    c = trained_decoder.generate(x, seed=8, **hot)
    assert a.shape != c.shape or (a != c).any()
    greedy = trained_decoder.generate(x, max_len=8)
    assert a.shape != greedy.shape or (a != greedy).any()  # at temperature 3 some samples leave the argmax
    cold = trained_decoder.generate(x, max_len=8, greedy=False, temperature=1e-6, seed=7)
    np.testing.assert_array_equal(cold, greedy)


def test_sampler_frequencies_follow_softmax_over_temperature():
    rng = np.random.default_rng(0)
    logits = np.array([[np.log(0.5), np.log(0.3), np.log(0.2), -np.inf]])  # the last token has probability 0
    for tau in (1.0, 0.5):
        p = np.array([0.5, 0.3, 0.2]) ** (1 / tau)
        p /= p.sum()
        draws = sample_tokens(np.repeat(logits, 20000, axis=0), rng, greedy=False, temperature=tau)
        freq = np.bincount(draws, minlength=4) / draws.size
        assert freq[3] == 0
        np.testing.assert_allclose(freq[:3], p, atol=0.015)  # 4 standard errors at n = 20000
    np.testing.assert_array_equal(sample_tokens(np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])), [1, 0])


def test_decoder_gradients_match_finite_differences():
    rng = np.random.default_rng(6)
    dec = SequenceDecoder(3, 5, embedding_dim=2, hidden=3, num_layers=2, seed=0, dtype=np.float64)
    vec, tokens = rng.standard_normal((2, 3)), rng.integers(0, 5, (2, 4))
    check_model_grads(dec, [vec, tokens])


def test_decoder_bad_input_names_what_was_expected(trained_decoder):
    x, _, _ = _class_data(2, seed=0)
    with pytest.raises(ValueError, match=r"vectors: expected 6 features \(feature_size\), got shape \(2, 5\)"):
        trained_decoder.generate(x[:, :5], 4)
    with pytest.raises(ValueError, match="vectors: expected finite values, got nan"):
        trained_decoder.generate(np.where(np.eye(2, F) > 0, np.nan, x), 4)
    with pytest.raises(ValueError, match="max_len: expected an integer >= 1, got 0"):
        trained_decoder.generate(x, 0)
    with pytest.raises(ValueError, match="temperature: expected a finite number > 0 for sampling, got 0"):
        trained_decoder.generate(x, 4, greedy=False, temperature=0)
    with pytest.raises(ValueError, match=r"end_token: expected a token id in \[0, 8\), got 8"):
        trained_decoder.generate(x, 4, end_token=8)
    with pytest.raises(ValueError, match=r"targets: expected token ids in \[0, 8\) \(the vocabulary\), got 9"):
        trained_decoder.fit_teacher_forcing(x, np.full((2, 3), 9), epochs=1)
    with pytest.raises(ValueError, match=r"lengths\[1\]: expected a value in \[1, 3\]"):
        trained_decoder.fit_teacher_forcing(x, np.ones((2, 3), np.int64), np.array([1, 4]), epochs=1)


# ------------------------------------------------------------------ char-level language model
def test_char_lm_loss_falls_well_below_uniform_and_unigram_and_generates_vocabulary_text():
    text = datasets.load_text("gettysburg")
    lm = CharLanguageModel(text, embedding_dim=16, hidden=64, seed=0)
    lm.compile("adam", "cross_entropy", lr=2e-2, clip_norm=1.0)
    V = lm.vocab_size
    freq = np.bincount(lm.encode(text), minlength=V) / len(text)
    unigram = float(-(freq * np.log(freq)).sum())  # the best any context-free model can do: 2.90
    start = lm.loss_on(text)
    assert abs(start - np.log(V)) < 0.1  # a fresh model is near uniform
    x, y = lm.windows(text, seq_len=32, stride=4)
    lm.fit(x, y, epochs=10, batch_size=32, seed=0, verbose=0)
    loss = lm.loss_on(text)
    assert loss < 0.3 * np.log(V) and loss < unigram - 1.5, (loss, np.log(V), unigram)
    sample = lm.generate("Four score", 200, temperature=0.8, seed=0)
    assert len(sample) == 200 and set(sample) <= set(lm.vocab)
    assert lm.generate("Four score", 50, temperature=0.8, seed=0) == sample[:50]  # seeded: reproducible
    assert lm.generate("Four score", 200, temperature=0.8, seed=1) != sample


def test_char_lm_windows_shift_targets_by_one_character():
    lm = CharLanguageModel("abcdefg", seed=0)
    x, y = lm.windows("abcdefg", seq_len=3, stride=2)
    assert [lm.decode(r) for r in x] == ["abc", "cde"] and [lm.decode(r) for r in y] == ["bcd", "def"]


def test_char_lm_prompt_of_one_character_and_bad_input():
    lm = CharLanguageModel("hello world", hidden=8, seed=0)
    assert len(lm.generate("h", 5, greedy=True)) == 5
    with pytest.raises(ValueError, match=r"text: expected characters of the vocabulary ' dehlorw', got 'xz'"):
        lm.generate("zox", 5)
    with pytest.raises(ValueError, match="prompt: expected at least one character, got ''"):
        lm.generate("", 5)
    with pytest.raises(ValueError, match=r"text: expected at least seq_len \+ 1 = 12 characters, got 11"):
        lm.windows("hello world", seq_len=11)
    with pytest.raises(ValueError, match="text: expected a str of at least 2 characters"):
        CharLanguageModel("a")
