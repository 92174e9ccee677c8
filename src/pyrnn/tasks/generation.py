"""One-to-many generation: a captioning-style ``SequenceDecoder`` (a vector -> a token
sequence) and a character-level language model ``CharLanguageModel``; greedy or sampled
decoding, batched over samples.

Legend: B = batch (samples decoded together), F = features of the conditioning vector,
T = time steps, V = vocabulary size, E = embedding size, H = hidden units, L = recurrent
layers, tau = sampling temperature.

Training is teacher-forced: the decoder reads the true previous token,
``tokens_in[:, t] = targets[:, t - 1]`` with ``tokens_in[:, 0] = start_token``
(:func:`shift_right`), and learns ``p(targets[:, t] | targets[:, :t], vector)`` by
per-step cross-entropy. Generation is free-running: one step at a time with the recurrent
layer's ``step()`` and its carried state, each step reading the token chosen at the previous
one — the Python loop runs over time steps, every step over the whole batch:

- greedy: ``token_t = argmax_v logits_t[v]``
- sampled: ``token_t ~ softmax(logits_t / tau)``, drawn by the inverse CDF from one uniform per
  sample of a seeded generator; as tau -> 0 the distribution becomes one-hot at the argmax,
  so sampling becomes greedy decoding.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .._checks import check_finite, check_int, check_lengths, check_ndim, float_input
from ..grad_mode import inference, no_grad
from ..layers import GRU, LSTM, Dense, Embedding, Tanh, TimeDistributed
from ..layers.plumbing import VectorToState
from ..losses import CrossEntropyLoss
from ..models import Input, Model, Sequential
from .classification import child_seed


# ---------------------------------------------------------------------- shared helpers
def check_tokens(name, tokens, vocab_size, ndim=2):
    """``tokens`` as an int64 array of ``ndim`` dimensions with values in [0, vocab_size)."""
    arr = np.asarray(tokens)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer token ids, got dtype {arr.dtype}")
    check_ndim(name, arr, ndim, "(batch, time)" if ndim == 2 else "(batch,)")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        bad = arr.min() if arr.min() < 0 else arr.max()
        raise ValueError(f"{name}: expected token ids in [0, {vocab_size}) (the vocabulary), got {bad}")
    return arr.astype(np.int64, copy=False)


def check_token_id(name, value, vocab_size):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < vocab_size:
        raise ValueError(f"{name}: expected a token id in [0, {vocab_size}), got {value!r}")
    return int(value)


def shift_right(targets, start_token):
    """Teacher-forcing inputs: ``[start, y_0, ..., y_{T-2}]`` for targets ``[y_0, ..., y_{T-1}]``.

    Parameters
    ----------
    targets : integer array (B, T)
    start_token : int

    Returns
    -------
    tokens_in : int64 array (B, T)
    """
    targets = np.asarray(targets)
    tokens_in = np.empty(targets.shape, np.int64)
    tokens_in[:, :1] = start_token
    tokens_in[:, 1:] = targets[:, :-1]
    return tokens_in


def length_mask(lengths, batch, T):
    """(B, T) bool, True at the steps t < lengths[b]; lengths (B,) integers in [1, T] (None -> None: all steps)."""
    if lengths is None:
        return None
    lengths = check_lengths(lengths, batch, T, minimum=1)
    return np.arange(T)[None, :] < lengths[:, None]


def check_temperature(greedy, temperature):
    if not greedy and not (isinstance(temperature, numbers.Real) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature: expected a finite number > 0 for sampling, got {temperature!r}")


# token = argmax(logits) | inverse CDF of softmax(logits / tau) at u ~ U[0, 1)
def sample_tokens(logits, rng=None, greedy=True, temperature=1.0):
    """One token per row of ``logits`` (B, V): the argmax, or a draw from softmax(logits / tau).

    Parameters
    ----------
    logits : float array (B, V)
    rng : numpy Generator or None (sampling only; one uniform per row; None: fresh entropy)
    greedy : bool
    temperature : float > 0, tau (sampling only); small values approach greedy decoding

    Returns
    -------
    tokens : int64 array (B,)
    """
    logits = np.asarray(logits)
    check_ndim("logits", logits, 2, "(batch, vocab)")
    if greedy:
        return np.argmax(logits, axis=-1).astype(np.int64)
    rng = np.random.default_rng() if rng is None else rng
    z = np.asarray(logits, np.float64) / temperature
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    cdf = np.cumsum(p, axis=-1)
    cdf /= cdf[:, -1:]
    u = rng.random(len(cdf))
    # the first v with cdf[v] > u: a token of zero probability (cdf[v] == cdf[v-1]) is never chosen
    return np.minimum((cdf <= u[:, None]).sum(axis=-1), cdf.shape[-1] - 1).astype(np.int64)


# ---------------------------------------------------------------------- SequenceDecoder
class SequenceDecoder(Model):
    """Captioning-style decoder: a vector (B, F) -> a token sequence, as a functional ``Model``.

    ``h0 = VectorToState(tanh(Dense(vector)))`` (L, B, H) is the initial state of a GRU that
    reads ``Embedding(tokens_in)`` (B, T, E); ``TimeDistributed(Dense)`` gives logits (B, T, V).
    Train teacher-forced (``fit_teacher_forcing`` or ``fit([vector, shift_right(targets, start)],
    targets)``), generate free-running with :meth:`generate`.

    Parameters
    ----------
    feature_size : int
        F, size of the conditioning vector.
    vocab_size : int
        V, tokens 0 .. V-1 (including the start and end tokens).
    embedding_dim : int
        E.
    hidden : int
        H, the GRU's hidden units.
    num_layers : int
        L, stacked GRU layers (each gets its own slice of the projected vector as its h0).
    start_token : int
        The first decoder input (default 0).
    end_token : int or None
        Where :meth:`generate` stops a sample (None: always ``max_len`` tokens).
    seed : int or None
        Seeds the initialisation (layer k gets ``seed + k``).
    dtype : float32 or float64

    Notes
    -----
    Model inputs ``[vector (B, F) float, tokens_in (B, T) int]``, output logits (B, T, V).
    ``save``/``pyrnn.load`` give back the plain functional ``Model``; rebuild a
    ``SequenceDecoder`` with the same arguments and ``load_state_dict`` to generate again.
    """

    def __init__(self, feature_size, vocab_size, embedding_dim=16, hidden=64, num_layers=1, start_token=0,
                 end_token=None, seed=None, dtype=np.float32):
        self.feature_size = check_int("feature_size", feature_size, 1)
        self.vocab_size = V = check_int("vocab_size", vocab_size, 1)
        L, H = check_int("num_layers", num_layers, 1), check_int("hidden", hidden, 1)
        self.start_token = check_token_id("start_token", start_token, V)
        self.end_token = None if end_token is None else check_token_id("end_token", end_token, V)
        self.init_state = Dense(feature_size, L * H, dtype=dtype, seed=child_seed(seed, 0))
        self.embedding = Embedding(V, embedding_dim, dtype=dtype, seed=child_seed(seed, 1))
        self.rnn = GRU(embedding_dim, H, num_layers=L, dtype=dtype, seed=child_seed(seed, 2))
        self.head = TimeDistributed(Dense(H, V, dtype=dtype, seed=child_seed(seed, 3)))
        self.state_activation, self.to_state = Tanh(), VectorToState(L)
        vector, tokens_in = Input(dtype=dtype, name="vector"), Input(dtype="int64", name="tokens_in")
        h0 = self.to_state(self.state_activation(self.init_state(vector)))  # (L, B, H)
        y, _ = self.rnn(self.embedding(tokens_in), initial_state=h0)       # (B, T, H)
        super().__init__([vector, tokens_in], self.head(y))

    def fit_teacher_forcing(self, vectors, targets, lengths=None, **fit_kwargs):
        """``fit`` with the true previous tokens as decoder inputs (compile first).

        Parameters
        ----------
        vectors : float array (B, F)
        targets : integer array (B, T), the sequences to emit (end token included, if any)
        lengths : None or integers (B,) in [1, T]: valid target steps (padding after them is not learned)
        **fit_kwargs : passed to :meth:`fit` (epochs, batch_size, seed, verbose, ...)

        Returns
        -------
        History
        """
        targets = check_tokens("targets", targets, self.vocab_size)
        mask = length_mask(lengths, *targets.shape)
        return self.fit([vectors, shift_right(targets, self.start_token)], targets, mask=mask, **fit_kwargs)

    def initial_state(self, vectors):
        """The GRU's initial state for ``vectors`` (B, F) -> (L, B, H), as the model computes it."""
        vectors = float_input("vectors", vectors, self.init_state.dtype)
        check_ndim("vectors", vectors, 2, "(batch, feature_size)")
        if vectors.shape[1] != self.feature_size:
            raise ValueError(f"vectors: expected {self.feature_size} features (feature_size), got shape {vectors.shape}")
        check_finite("vectors", vectors)
        return self.to_state.forward(self.state_activation.forward(self.init_state.forward(vectors)))

    def generate(self, vectors, max_len, greedy=True, temperature=1.0, seed=None, start_token=None, end_token=None):
        """Decode free-running from each vector, all samples in one batch.

        Parameters
        ----------
        vectors : float array (B, F)
        max_len : int, the most tokens emitted per sample
        greedy : bool, argmax at every step; otherwise sample from softmax(logits / temperature)
        temperature : float > 0 (sampling only)
        seed : int or None, seeds the sampling (equal seeds give equal sequences)
        start_token, end_token : override the constructor's; ``end_token=None`` uses the constructor's

        Returns
        -------
        tokens : int64 array (B, T'), T' <= max_len. A sample's end token is kept; the steps
            after it hold the end token again (decoding stops once every sample has ended).
        """
        max_len = check_int("max_len", max_len, 1)
        check_temperature(greedy, temperature)
        start = self.start_token if start_token is None else check_token_id("start_token", start_token, self.vocab_size)
        end = self.end_token if end_token is None else check_token_id("end_token", end_token, self.vocab_size)
        rng = np.random.default_rng(seed)
        with inference():
            h = self.initial_state(vectors)
            tokens = np.full(h.shape[1], start, np.int64)
            out = decode_loop(self.embedding, self.rnn, self.head.layer, tokens, h, max_len, end,
                              lambda logits: sample_tokens(logits, rng, greedy, temperature))
        return out


def decode_loop(embedding, rnn, head, tokens, state, max_len, end_token, choose):
    """The autoregressive loop shared by the decoders: per step (over the whole batch)
    ``y, state = rnn.step(embedding(token), state)``, ``token = choose(head(y))``.

    Returns (B, T') int64 tokens, T' <= max_len; once a sample emits ``end_token`` its later
    steps hold ``end_token`` and the loop stops when every sample has ended.
    """
    B = len(tokens)
    out = np.empty((B, max_len), np.int64)
    done = np.zeros(B, bool)
    for t in range(max_len):
        y, state = rnn.step(embedding.forward(tokens), state)
        tokens = choose(head.forward(y))
        if end_token is not None:
            tokens[done] = end_token
            done |= tokens == end_token
        out[:, t] = tokens
        if done.all():
            return out[:, : t + 1]
    return out


# ---------------------------------------------------------------------- CharLanguageModel
class CharLanguageModel(Sequential):
    """Character-level language model: ``Embedding -> LSTM -> TimeDistributed(Dense)``, a ``Sequential``.

    It predicts every next character of windows of a text, ``p(c_{t+1} | c_0 .. c_t)``, by
    per-step cross-entropy, then generates text one character at a time.

    Parameters
    ----------
    text : str
        Defines the vocabulary: its distinct characters, sorted (``self.vocab``).
    embedding_dim : int
    hidden : int
    num_layers : int
    seed : int or None
    dtype : float32 or float64

    Examples
    --------
    >>> lm = CharLanguageModel(text, hidden=128, seed=0).compile("adam", "cross_entropy", lr=1e-2)
    >>> lm.fit_text(text, seq_len=50, epochs=20, seed=0, verbose=0)
    >>> lm.generate("Four score", 100, temperature=0.5, seed=0)
    """

    def __init__(self, text, embedding_dim=16, hidden=128, num_layers=1, seed=None, dtype=np.float32):
        if not isinstance(text, str) or len(text) < 2:
            raise ValueError(f"text: expected a str of at least 2 characters, got {text!r:.40}")
        self.vocab = "".join(sorted(set(text)))
        self._index = {ch: i for i, ch in enumerate(self.vocab)}
        V = len(self.vocab)
        super().__init__([
            Embedding(V, embedding_dim, dtype=dtype, seed=child_seed(seed, 0)),
            LSTM(embedding_dim, hidden, num_layers=num_layers, dtype=dtype, seed=child_seed(seed, 1), forget_bias=1.0),
            TimeDistributed(Dense(hidden, V, dtype=dtype, seed=child_seed(seed, 2))),
        ])

    @property
    def vocab_size(self):
        return len(self.vocab)

    def encode(self, text):
        """str -> int64 ids (len(text),); characters outside the vocabulary raise ValueError."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        unknown = sorted(set(text) - set(self._index))
        if unknown:
            raise ValueError(f"text: expected characters of the vocabulary {self.vocab!r}, got {''.join(unknown)!r}")
        return np.array([self._index[ch] for ch in text], np.int64)

    def decode(self, ids):
        """int ids (...,) -> str."""
        return "".join(self.vocab[i] for i in check_tokens("ids", np.ravel(ids), self.vocab_size, ndim=1))

    def windows(self, text, seq_len, stride=None):
        """Training pairs from a text: inputs ``x[n] = ids[s : s + T]``, targets ``y[n] = ids[s + 1 : s + T + 1]``.

        Parameters
        ----------
        text : str
        seq_len : int, T
        stride : int or None, s advances by it (default T // 2)

        Returns
        -------
        x, y : int64 arrays (N, T)
        """
        T = check_int("seq_len", seq_len, 1)
        stride = check_int("stride", stride if stride is not None else max(1, T // 2), 1)
        ids = self.encode(text)
        if len(ids) < T + 1:
            raise ValueError(f"text: expected at least seq_len + 1 = {T + 1} characters, got {len(ids)}")
        starts = np.arange(0, len(ids) - T, stride)
        idx = starts[:, None] + np.arange(T)[None, :]
        return ids[idx], ids[idx + 1]

    def fit_text(self, text, seq_len=32, stride=None, **fit_kwargs):
        """``fit`` on :meth:`windows` of ``text`` (compile first); ``fit_kwargs`` go to ``fit``."""
        x, y = self.windows(text, seq_len, stride)
        return self.fit(x, y, **fit_kwargs)

    def loss_on(self, text, seq_len=64):
        """Mean cross-entropy (nats per character) of predicting every next character of ``text``."""
        x, y = self.windows(text, seq_len, stride=seq_len)
        logits = self.predict(x)
        with no_grad():
            return CrossEntropyLoss().forward(logits, y)

    def generate(self, prompt, n, temperature=1.0, seed=None, greedy=False):
        """Continue ``prompt`` by ``n`` characters.

        Parameters
        ----------
        prompt : str, non-empty, characters of the vocabulary (read first, to set the state)
        n : int, characters to generate
        temperature : float > 0, tau of softmax(logits / tau) (lower: more conservative)
        seed : int or None, seeds the sampling
        greedy : bool, argmax instead of sampling

        Returns
        -------
        str of ``n`` new characters (the prompt not included)
        """
        ids = self.encode(prompt)
        if len(ids) == 0:
            raise ValueError("prompt: expected at least one character, got ''")
        n = check_int("n", n, 1)
        check_temperature(greedy, temperature)
        rng = np.random.default_rng(seed)
        embedding, lstm, head = self.layers
        choose = lambda logits: sample_tokens(logits, rng, greedy, temperature)  # noqa: E731
        with inference():
            _, state = lstm.forward(embedding.forward(ids[None, :-1]))  # the prompt but its last character
            out = decode_loop(embedding, lstm, head.layer, ids[-1:], state, n, None, choose)
        return self.decode(out)
