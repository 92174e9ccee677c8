"""``Dilated``: a recurrent layer whose recurrence reads h(t - d) instead of h(t - 1)
(Chang et al. 2017, "Dilated Recurrent Neural Networks"), for several time scales.

Legend: B = batch, T = time, T' = T rounded up to a multiple of d, n = T' / d steps per
phase, d = dilation, p = phase in [0, d), I = input, H = hidden, D = directions,
L = layers, F = features.

A dilated recurrence ``h_t = cell(x_t, h_{t-d})`` splits the sequence into d independent
interleaved phases: phase p reads ``x[p], x[p+d], x[p+2d], ...`` and is an ordinary
recurrence over them. So it runs with no kernel of its own and no loop over time: pad T
to T', fold the phases into the batch, ``(B, T', F) -> (B, n, d, F) -> (B*d, n, F)``
(row ``b*d + p`` is phase p of sample b), run the wrapped layer's fast forward once on
the B*d rows, and unfold its output the same way back, dropping the padding. Backward
is the same fold on dy and the inverse on dx.
"""

from __future__ import annotations

import numpy as np

from .._checks import as_float_array, check_int, check_lengths, check_ndim, check_shape
from .base import Wrapper
from .recurrent import Recurrent, RNNBase


def _fold(a, d):
    """(B, T, F) -> (B*d, n, F): pad T to n*d with zeros, phase p of sample b -> row b*d + p."""
    B, T = a.shape[:2]
    n = -(-T // d)
    if n * d != T:
        a = np.concatenate([a, np.zeros((B, n * d - T) + a.shape[2:], a.dtype)], axis=1)
    return np.ascontiguousarray(a.reshape((B, n, d) + a.shape[2:]).swapaxes(1, 2).reshape((B * d, n) + a.shape[2:]))


def _unfold(a, B, T, d):
    """(B*d, n, F) -> (B, T, F): the inverse of :func:`_fold`, padding dropped."""
    n = a.shape[1]
    a = a.reshape((B, d, n) + a.shape[2:]).swapaxes(1, 2).reshape((B, n * d) + a.shape[2:])
    return np.ascontiguousarray(a[:, :T])


class Dilated(Wrapper, Recurrent):
    """Wrap a recurrent layer so that its recurrence reads h(t - d): ``h_t = cell(x_t, h_{t-d})``.

    Parameters
    ----------
    layer : RNN, LSTM or GRU (any ``num_layers``, uni- or bidirectional)
    dilation : int >= 1
        d; ``d = 1`` is the wrapped layer itself. Stack ``Dilated`` layers with growing d
        (1, 2, 4, ...) for several time scales.

    Notes
    -----
    ``forward(x, state=None, lengths=None) -> (y, state)`` and ``backward(dy, dstate=None)
    -> (dx, dstate0)`` have the wrapped layer's contract and shapes. Every stacked layer of
    the wrapped layer is dilated by the same d; a bidirectional layer's reverse direction
    reads h(t + d).

    - **Phases.** Phase p of a sample holds its steps p, p + d, p + 2d, ... Each phase is an
      independent recurrence (the trick that makes this a reshape, not a new kernel).
    - **lengths.** A sample of length l has ``ceil((l - p) / d)`` valid steps in phase p
      (``max(0, l - p + d - 1) // d``), which are passed to the wrapped layer as the
      phases' lengths: outputs past l are 0, as for the plain layer. When T is not a
      multiple of d the padding is excluded the same way, so it never reaches a state.
    - **Initial state** ``(L*D, B, H)`` (or ``(h, c)``): every phase of sample b starts
      from it (a broadcast); its gradient is the sum over the d phases.
    - **Final state**: for each sample, the state after its last valid step: in the
      forward direction the final state of the phase holding step ``l - 1`` (phase
      ``(l - 1) % d``), in the reverse direction that of phase 0 (which holds step 0, where
      the reverse direction ends); length 0 gives the initial state. The other d - 1
      phase states are not returned, so carrying this state into the next chunk of a
      stream (as truncated BPTT does) restarts every phase from one state: exact only for
      d = 1.

    :attr:`params` and :attr:`grads` ARE the wrapped layer's dicts (PyTorch names
    ``weight_ih_l0``, ...); :meth:`train`/:meth:`eval` and the dropout generator state
    reach the wrapped layer.
    """

    def __init__(self, layer, dilation):
        if not isinstance(layer, RNNBase):
            raise TypeError(f"layer: expected an RNN, LSTM or GRU layer, got {type(layer).__name__}")
        if not layer.batch_first:
            raise ValueError("layer: expected a batch-first layer (Dilated reads (batch, time, features)), got batch_first=False")
        self.dilation = check_int("dilation", dilation, 1)
        super().__init__(layer)

    # ------------------------------------------------------ wrapper plumbing
    def rng_state(self):
        """The wrapped layer's dropout generator state (for checkpoints)."""
        return self.layer.rng_state()

    def set_rng_state(self, state):
        self.layer.set_rng_state(state)

    @property
    def has_cell_state(self):
        return self.layer.has_cell_state

    @property
    def input_size(self):
        return self.layer.input_size

    @property
    def hidden_size(self):
        return self.layer.hidden_size

    @property
    def num_layers(self):
        return self.layer.num_layers

    @property
    def num_directions(self):
        return self.layer.num_directions

    @property
    def bidirectional(self):
        return self.layer.bidirectional

    def _phases(self, T):
        """Phases to fold T steps into: d, or T when d > T (each step is then its own phase,
        and the d - T phases past the sequence would hold nothing but padding)."""
        return min(self.dilation, max(T, 1))

    def _phase_lengths(self, lengths, B, T):
        """Valid steps of every phase row (B*d,), or None when every phase is full."""
        d = self._phases(T)
        if lengths is None:
            if T % d == 0:
                return None
            lengths = np.full(B, T, np.int64)
        p = np.arange(d)
        return (np.maximum(0, lengths[:, None] - p[None, :] + d - 1) // d).reshape(B * d)

    def _final_rows(self, lengths, B, T):
        """(L*D, B) fold row whose final state is sample b's, per layer-direction."""
        d = self._phases(T)
        last = np.full(B, T, np.int64) if lengths is None else lengths
        p_last = np.where(last > 0, (last - 1) % d, 0)
        rows = np.empty((self.num_layers * self.num_directions, B), np.intp)
        for idx in range(rows.shape[0]):
            reverse = idx % self.num_directions == 1
            rows[idx] = np.arange(B) * d + (0 if reverse else p_last)
        return rows

    # -------------------------------------------------------------- forward
    # phases: xf[b*d + p, k] = x[b, k*d + p];  yf, sf = layer(xf, h0 repeated over p, phase lengths)
    # y[b, k*d + p] = yf[b*d + p, k];  h_T[:, b] = sf[:, rows[:, b]] (the phase of b's last step)
    def forward(self, x, state=None, lengths=None):
        """Run the dilated recurrence over whole sequences.

        Parameters
        ----------
        x : array (B, T, I)
        state : None, h (L*D, B, H), or for LSTM a tuple (h, c); shared by every phase
        lengths : None or ints (B,) in [0, T]

        Returns
        -------
        y : ndarray (B, T, D*H)
        state : h (L*D, B, H), or (h, c) for LSTM: each sample's state after its last valid step
        """
        inner, d = self.layer, self.dilation
        x = as_float_array("x", x, self.dtype)
        check_ndim("x", x, 3, "(batch, time, input_size)")
        if x.shape[2] != inner.input_size:
            raise ValueError(f"x: expected input_size={inner.input_size} features in the last axis, got shape {x.shape}")
        B, T = x.shape[:2]
        h0, c0 = self._state_arrays("state", state, B)
        lengths = None if lengths is None else check_lengths(lengths, B, T)
        d = self._phases(T)
        state_f = None if state is None else self._pack_state(*(np.repeat(s, d, axis=1) for s in (h0, c0) if s is not None))
        yf, sf = inner.forward(_fold(x, d), state_f, lengths=self._phase_lengths(lengths, B, T))
        rows = self._final_rows(lengths, B, T)
        pick = np.arange(rows.shape[0])[:, None]
        final = [np.ascontiguousarray(s[pick, rows]) for s in self._state_parts(sf)]
        self._save((B, T, rows))
        return _unfold(yf, B, T, d), self._pack_state(*final)

    # ------------------------------------------------------------- backward
    # dyf = fold(dy);  dsf[:, rows[:, b]] = dh_T[:, b] (0 for the other phases)
    # dxf, ds0f = layer.backward(dyf, dsf);  dx = unfold(dxf);  dh_0[:, b] = sum_p ds0f[:, b*d + p]
    def backward(self, dy, dstate=None):
        """Backpropagation through the dilated recurrence of the last ``forward``.

        Parameters
        ----------
        dy : array (B, T, D*H)
        dstate : None, dL/dh_T (L*D, B, H), or for LSTM (dL/dh_T, dL/dc_T)

        Returns
        -------
        dx : ndarray (B, T, I)
        dstate0 : dL/dh_0 (L*D, B, H), or (dL/dh_0, dL/dc_0) for LSTM

        Weight gradients are added into :attr:`grads`.
        """
        inner = self.layer
        B, T, rows = self._peek_saved()
        d = self._phases(T)
        dy = as_float_array("dy", dy, self.dtype)
        check_shape("dy", dy, (B, T, inner.num_directions * inner.hidden_size),
                    "(batch, time, num_directions*hidden_size) of the last forward")
        dhT, dcT = self._state_arrays("dstate", dstate, B)
        self._pop_saved()
        pick = np.arange(rows.shape[0])[:, None]
        dsf = []
        for g in (dhT, dcT)[: 1 + self.has_cell_state]:
            full = np.zeros((g.shape[0], B * d, g.shape[2]), self.dtype)
            full[pick, rows] = g
            dsf.append(full)
        dxf, ds0f = inner.backward(_fold(dy, d), self._pack_state(*dsf))
        ds0 = [s.reshape(s.shape[0], B, d, s.shape[2]).sum(axis=2) for s in self._state_parts(ds0f)]
        return _unfold(dxf, B, T, d), self._pack_state(*ds0)

    def get_config(self):
        return dict(super().get_config(), dilation=self.dilation)

    def __repr__(self):
        return f"Dilated({self.layer!r}, dilation={self.dilation})"
