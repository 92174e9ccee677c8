"""Encoder–decoder (seq2seq): the encoder's final state is the decoder's initial state;
trained with teacher forcing or free-running, decoded greedily (``examples/seq2seq.py`` trains
it to reverse digit strings).

Legend: B = batch, S = source steps, T = target steps, V_in / V_out = source / target
vocabulary sizes, E = embedding size, H = hidden units.

Model (a functional ``Model``, inputs ``[src (B, S), src_lengths (B,), tokens_in (B, T)]``)::

    _, state = Encoder(Embedding_in(src), lengths=src_lengths)     # state at each source's last valid step
    y, _     = Decoder(Embedding_out(tokens_in), initial_state=state)
    logits   = TimeDistributed(Dense(H, V_out))(y)                  # (B, T, V_out)

loss = mean over valid target steps (t < tgt_lengths[b]) of ``-log softmax(logits[b, t])[tgt[b, t]]``.
The two ways of training differ only in the decoder's inputs ``tokens_in``:

- teacher forcing: the true previous output, ``tokens_in = [start, tgt_0, ..., tgt_{T-2}]``;
- free-running: the model's own previous greedy outputs, ``tokens_in = [start, p_0, ..., p_{T-2}]``,
  ``p`` produced by a no_grad greedy decoding pass over the batch with the current weights,
  then held constant while the batch is trained on (no gradient through the choice of p).

Inference (:meth:`Seq2Seq.translate`) is always free-running: the decoder reads its own outputs.
Both fits run the same loop (same shuffling, batches and optimizer step as ``fit``), so with
the same seeds and budget they differ only in what the decoder reads.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_int, check_lengths
from ..grad_mode import inference
from ..layers import Dense, Embedding, TimeDistributed
from ..models import Input, Model
from ..models.training import run_epochs, train_step  # fit's epoch loop and batch step
from .classification import child_seed, recurrent_layer
from .generation import check_token_id, check_tokens, decode_loop, length_mask, sample_tokens, shift_right


# ---------------------------------------------------------------------- the model
class Seq2Seq(Model):
    """Encoder–decoder for token sequences; see the module docstring for the equations.

    Parameters
    ----------
    vocab_in, vocab_out : int
        V_in, V_out: source and target vocabularies (the target one holds the start and end tokens).
    emb : int
        E, embedding size on both sides.
    hidden : int
        H, hidden units of the encoder and the decoder.
    cell : {'lstm', 'gru', 'rnn'}
    num_layers : int
    start_token, end_token : int
        Target-side ids of the first decoder input and of the end of a sequence
        (default 1 and 2, with 0 for padding).
    seed : int or None
        Seeds the initialisation (layer k gets ``seed + k``).
    dtype : float32 or float64

    Notes
    -----
    Compile before training: ``s2s.compile("adam", "cross_entropy", lr=1e-2, clip_norm=1.0)``.
    ``save``/``pyrnn.load`` give back the plain functional ``Model``.
    """

    def __init__(self, vocab_in, vocab_out, emb=16, hidden=64, cell="lstm", num_layers=1, start_token=1,
                 end_token=2, seed=None, dtype=np.float32):
        self.vocab_in = check_int("vocab_in", vocab_in, 1)
        self.vocab_out = check_int("vocab_out", vocab_out, 1)
        self.start_token = check_token_id("start_token", start_token, self.vocab_out)
        self.end_token = check_token_id("end_token", end_token, self.vocab_out)
        self.src_embedding = Embedding(vocab_in, emb, dtype=dtype, seed=child_seed(seed, 0))
        self.encoder = recurrent_layer(cell, emb, hidden, num_layers=num_layers, dtype=dtype, seed=child_seed(seed, 1))
        self.tgt_embedding = Embedding(vocab_out, emb, dtype=dtype, seed=child_seed(seed, 2))
        self.decoder = recurrent_layer(cell, emb, hidden, num_layers=num_layers, dtype=dtype, seed=child_seed(seed, 3))
        self.head = TimeDistributed(Dense(hidden, vocab_out, dtype=dtype, seed=child_seed(seed, 4)))
        src, src_lengths = Input(dtype="int64", name="src"), Input(dtype="int64", name="src_lengths")
        tokens_in = Input(dtype="int64", name="tokens_in")
        _, state = self.encoder(self.src_embedding(src), lengths=src_lengths)
        y, _ = self.decoder(self.tgt_embedding(tokens_in), initial_state=state)
        super().__init__([src, src_lengths, tokens_in], self.head(y))

    # ------------------------------------------------------------- checks
    def _check_source(self, src, src_lengths):
        src = check_tokens("src", src, self.vocab_in)
        if src.shape[1] == 0:
            raise ValueError(f"src: expected at least one source step, got shape {src.shape}")
        if src_lengths is None:
            return src, np.full(len(src), src.shape[1], np.int64)
        return src, check_lengths(src_lengths, len(src), src.shape[1], minimum=1)

    def _check_pairs(self, src, src_lengths, tgt, tgt_lengths):
        src, src_lengths = self._check_source(src, src_lengths)
        tgt = check_tokens("tgt", tgt, self.vocab_out)
        if len(tgt) != len(src):
            raise ValueError(f"tgt: expected {len(src)} sequences (as many as src), got {len(tgt)}")
        if tgt_lengths is None:
            tgt_lengths = np.full(len(tgt), tgt.shape[1], np.int64)
        tgt_lengths = check_lengths(tgt_lengths, len(tgt), tgt.shape[1], minimum=1)
        return src, src_lengths, tgt, tgt_lengths

    # ------------------------------------------------------------- decoding
    def _decode(self, src, src_lengths, max_len, end_token):
        """Greedy free-running decoding of a checked batch (eval mode, no_grad)."""
        with inference():
            _, state = self.encoder.forward(self.src_embedding.forward(src), lengths=src_lengths)
            start = np.full(len(src), self.start_token, np.int64)
            return decode_loop(self.tgt_embedding, self.decoder, self.head.layer, start, state, max_len, end_token,
                               sample_tokens)

    def translate(self, src, max_len, src_lengths=None):
        """Greedy free-running inference: each decoder step reads the previous step's argmax.

        Parameters
        ----------
        src : integer array (B, S), source token ids
        max_len : int, the most target tokens per sequence
        src_lengths : None or integers (B,) in [1, S] (None: every step is valid)

        Returns
        -------
        tokens : int64 array (B, T'), T' <= max_len; each row ends with ``end_token`` (repeated
            to the right) once emitted; decoding stops when every row has ended.
        """
        src, src_lengths = self._check_source(src, src_lengths)
        return self._decode(src, src_lengths, check_int("max_len", max_len, 1), self.end_token)

    def accuracy(self, src, src_lengths, tgt, tgt_lengths=None, max_len=None):
        """Free-running (``translate``) accuracy against the targets.

        Parameters
        ----------
        src, src_lengths : as in :meth:`translate`
        tgt : integer array (B, T), targets ending with ``end_token`` at step ``tgt_lengths - 1``
        tgt_lengths : None or integers (B,) in [1, T], valid target steps (end token included)
        max_len : int or None, decoding budget (default T)

        Returns
        -------
        dict with ``exact``: share of sequences whose valid steps all match (the end token at
        the right place included), and ``token``: share of valid target steps matched.
        """
        src, src_lengths, tgt, tgt_lengths = self._check_pairs(src, src_lengths, tgt, tgt_lengths)
        T = tgt.shape[1]
        pred = self.translate(src, T if max_len is None else max_len, src_lengths)
        full = np.full(tgt.shape, self.end_token, np.int64)  # a shorter decode ended everywhere: END after it
        full[:, : min(T, pred.shape[1])] = pred[:, :T]
        valid = length_mask(tgt_lengths, *tgt.shape)
        hit = (full == tgt) | ~valid
        return {"exact": float(hit.all(axis=1).mean()), "token": float((full == tgt)[valid].mean())}

    # ------------------------------------------------------------- training
    def fit_teacher_forcing(self, src, src_lengths, tgt, tgt_lengths=None, epochs=1, batch_size=32, seed=None, verbose=0):
        """Train with the true previous target token as each decoder input (compile first).

        Parameters
        ----------
        src : integer array (N, S); src_lengths : None or integers (N,) in [1, S]
        tgt : integer array (N, T); tgt_lengths : None or integers (N,) in [1, T] (steps past them are not learned)
        epochs, batch_size : int
        seed : int or None, seeds the shuffling
        verbose : 0 silent, 1 or 2: one line per epoch

        Returns
        -------
        History (loss, compiled metrics, grad_norm, lr per epoch), also in ``self.history``
        """
        return self._fit(src, src_lengths, tgt, tgt_lengths, epochs, batch_size, seed, verbose,
                         lambda s, sl, t: shift_right(t, self.start_token))

    def fit_free_running(self, src, src_lengths, tgt, tgt_lengths=None, epochs=1, batch_size=32, seed=None, verbose=0):
        """Train with the model's own previous greedy outputs as decoder inputs (no teacher forcing).

        Per batch: a no_grad greedy decoding pass with the current weights gives ``p``; the
        decoder then reads ``[start, p_0, ..., p_{T-2}]`` as constant inputs and is trained on
        the true targets. Same parameters and return value as :meth:`fit_teacher_forcing`.
        """
        def own_outputs(s, sl, t):  # [start, p_0 .. p_{T-2}]: the last prediction is never read
            own = np.full(t.shape, self.start_token, np.int64)
            own[:, 1:] = self._decode(s, sl, t.shape[1] - 1, None)
            return own

        return self._fit(src, src_lengths, tgt, tgt_lengths, epochs, batch_size, seed, verbose, own_outputs)

    def _fit(self, src, src_lengths, tgt, tgt_lengths, epochs, batch_size, seed, verbose, decoder_inputs):
        if self.loss is None or self.optimizer is None:
            raise ValueError("fit: expected a compiled model (call compile(optimizer=..., loss='cross_entropy')), got none")
        epochs, batch_size = check_int("epochs", epochs, 1), check_int("batch_size", batch_size, 1)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose: expected 0, 1 or 2, got {verbose!r}")
        src, src_lengths, tgt, tgt_lengths = self._check_pairs(src, src_lengths, tgt, tgt_lengths)
        mask = length_mask(tgt_lengths, *tgt.shape)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        n = len(src)

        def epoch_steps(epoch):  # fit's shuffling and batches; the decoder inputs made per batch
            self.train()
            order = self._rng.permutation(n)
            batches = [order[start : start + batch_size] for start in range(0, n, batch_size)]
            return len(batches), ((len(idx), self._train_step(src, src_lengths, tgt, mask, idx, decoder_inputs))
                                  for idx in batches)

        return run_epochs(self, epochs, epoch_steps, verbose=2 if verbose else 0)

    def _train_step(self, src, src_lengths, tgt, mask, idx, decoder_inputs):
        s, sl, t = src[idx], src_lengths[idx], tgt[idx]
        return train_step(self, [s, sl, decoder_inputs(s, sl, t)], [t], mask[idx], None, slice(None))
