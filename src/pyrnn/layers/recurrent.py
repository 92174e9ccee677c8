"""Recurrent layers with PyTorch's contract: ``RNN``, ``LSTM``, ``GRU``.

Legend: B = batch, T = time, I = input, H = hidden, G = gates, L = layers,
D = directions (2 if bidirectional). Arrays are batch-first at the API by default
(``batch_first=True``: x (B, T, I)); ``batch_first=False`` takes and returns time-major
(T, B, I) as PyTorch's default does. Time-major inside: with batch_first the kernels write y
and read dL/dy at its strides, a training forward copies x time-major (what its backward reads)
and the backward copies dx back; at inference the C++ kernels read x where it lies. States are
(L*D, B, H) either way, as in PyTorch.

Cells (PyTorch's formulas and gate packing, so ``state_dict`` compares with torch):

- RNN:  ``h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, f = tanh or relu
- LSTM: ``i, f, g, o = s(.), s(.), tanh(.), s(.)`` of ``W_ih x_t + b_ih + W_hh h_{t-1} + b_hh``
  (rows ``i|f|g|o``); ``c_t = f c_{t-1} + i g``; ``h_t = o tanh(c_t)``
- GRU:  ``r, z = s(.)`` (rows ``r|z|n``); ``n = tanh(W_in x_t + b_in + r (W_hn h_{t-1} + b_hn))``;
  ``h_t = (1 - z) n + z h_{t-1}``
"""

from __future__ import annotations

import numpy as np

from .. import _buffers
from .._checks import (
    MAX_LAYERS,
    as_float_array,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_lengths,
    check_ndim,
    check_seed,
    check_shape,
)
from ..backends import backend_module, get_backend
from ..backends.contract import GATES, Weights
from ..distributed.rows import uniform
from ..grad_mode import is_grad_enabled
from ..workspace import Workspace
from .base import Layer


def _time_major(x, batch_first):
    """x as (T, B, I), a view: the C++ kernels read it in place (LSTM T=100 B=64 I=128 H=256 inference on 2 threads
    of an AMD EPYC: a copy of a batch-first x was ~0.5 ms of 28), and in training write a C-order copy as they go,
    which the backward reads (the other backends copy it first; see the backends' contract). Two directions: the
    second reads the first's saved C-order x (:meth:`RNNBase._forward_layers`)."""
    return x.transpose(1, 0, 2) if batch_first else x


class Recurrent(Layer):
    """What every recurrent layer shares (``RNN``/``LSTM``/``GRU`` and ``Dilated``): the state
    layout ``(L*D, B, H)`` (a tuple ``(h, c)`` when :attr:`has_cell_state`) and the graph
    protocol ``(x, initial_state, lengths) -> (y, final_state)``.

    Subclasses provide ``hidden_size``, ``num_layers``, ``num_directions``,
    ``has_cell_state``, and ``forward(x, state=None, lengths=None)`` /
    ``backward(dy, dstate=None)``.
    """

    has_cell_state = False

    def _state_shape(self, batch):
        return (self.num_layers * self.num_directions, batch, self.hidden_size)

    def _state_arrays(self, name, state, batch):
        """(h, c) from a user state (None = zeros); c is None unless the cell has one."""
        shape = self._state_shape(batch)
        labels = "(num_layers*num_directions, batch, hidden_size)"
        if state is None:
            return np.zeros(shape, self.dtype), (np.zeros(shape, self.dtype) if self.has_cell_state else None)
        if self.has_cell_state:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError(f"{name}: expected a tuple (h, c) for {type(self).__name__}, got {type(state).__name__}")
            parts = [(f"{name}[0] (h)", state[0]), (f"{name}[1] (c)", state[1])]
        else:
            if isinstance(state, (tuple, list)):
                raise TypeError(f"{name}: expected one array h for {type(self).__name__}, got a {type(state).__name__}")
            parts = [(name, state)]
        arrays = []
        for label, value in parts:
            arr = np.zeros(shape, self.dtype) if value is None else as_float_array(label, value, self.dtype)
            check_shape(label, arr, shape, labels)
            arrays.append(arr)
        return arrays[0], (arrays[1] if self.has_cell_state else None)

    def _pack_state(self, h, c=None):
        return (h, c) if self.has_cell_state else h

    def _state_parts(self, state):
        """A packed state as a tuple of arrays: (h,) or (h, c)."""
        return tuple(state) if self.has_cell_state else (state,)

    # ------------------------------------------------------ the graph protocol
    # slots: x, h0, (c0 when the cell has one), lengths  ->  outputs: y, h_T, (c_T)
    @property
    def graph_n_outputs(self):
        return 3 if self.has_cell_state else 2

    def graph_inputs(self, x, initial_state=None, lengths=None):
        if self.has_cell_state:
            h, c = (None, None) if initial_state is None else initial_state
            return [x, h, c, lengths]
        if isinstance(initial_state, (tuple, list)):
            raise TypeError(f"initial_state: expected one tensor h for {type(self).__name__}, got a {type(initial_state).__name__}")
        return [x, initial_state, lengths]

    def graph_forward(self, x, *rest):
        *state, lengths = rest
        if self.has_cell_state:
            h, c = state
            st = None if h is None and c is None else (h, c)
        else:
            st = state[0]
        y, sT = self.forward(x, st, lengths=lengths)
        return (y,) + self._state_parts(sT)

    def graph_backward(self, dy, *dstate, need_input_grad=True):  # dx is the loop's by-product: always made
        dx, ds0 = self.backward(dy, tuple(dstate) if self.has_cell_state else dstate[0])
        return (dx,) + self._state_parts(ds0) + (None,)

    def graph_outputs(self, outputs):
        """``y, h = gru(x)`` / ``y, (h, c) = lstm(x)``, as ``forward`` returns them."""
        return (outputs[0], tuple(outputs[1:])) if self.has_cell_state else tuple(outputs)


class RNNBase(Recurrent):
    """Multi-layer, optionally bidirectional recurrent layer over whole sequences.

    Parameters
    ----------
    input_size : int
        I, features per time step.
    hidden_size : int
        H, hidden units per direction.
    num_layers : int
        L, stacked layers; layer k > 0 reads the (D*H)-wide output of layer k-1.
    bidirectional : bool
        Run a second, reversed direction per layer; outputs are concatenated [forward | reverse].
    bias : bool
        Whether ``bias_ih``/``bias_hh`` exist.
    dtype : float32, float64 or "bfloat16"
        "bfloat16": mixed precision (float32 parameters, inputs, outputs and cell state; the
        matrix products in bfloat16 with float32 sums, forward and backward, as
        ``torch.autocast``: :mod:`pyrnn.backends.bfloat16`).
    seed : int or None
        Seed of the default init, ``U(-1/sqrt(H), 1/sqrt(H))`` for every parameter,
        and of the dropout masks.
    dropout : float in [0, 1), keyword-only
        Dropout on each layer's output except the last, in training mode (as PyTorch).
    skip : bool, keyword-only
        Residual skip connections between stacked layers: layer k >= 1 outputs its
        states plus its input (both D*H wide), so the input reaches deeper layers directly.
    batch_first : bool, keyword-only, default True
        PyTorch's name: True takes x (B, T, I) and returns y (B, T, D*H); False takes
        (T, B, I) and returns (T, B, D*H) (PyTorch's default layout). Shape errors name
        the layout in use.

    Notes
    -----
    ``forward(x, state)``: x (B, T, I) -> y (B, T, D*H) (with ``batch_first=False``: (T, B, I) ->
    (T, B, D*H)) and the final state
    (h (L*D, B, H), for LSTM a tuple (h, c)). ``backward(dy, dstate)`` returns
    dx and the gradient w.r.t. the initial state, and adds weight gradients into
    :attr:`grads`. Empty batches or sequences (B = 0 or T = 0) return correctly
    shaped empty results; with T = 0 the final state is the initial state.
    """

    cell = None  # set by the subclasses
    supports_bfloat16 = True

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True, dtype=np.float32, seed=None,
                 *, dropout=0.0, skip=False, batch_first=True):
        super().__init__(dtype)
        self.batch_first = check_bool("batch_first", batch_first)
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = H = check_int("hidden_size", hidden_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1, MAX_LAYERS)
        self.bidirectional = check_bool("bidirectional", bidirectional)
        self.bias = check_bool("bias", bias)
        self.dropout = check_float("dropout", dropout, 0.0, below=1.0)
        self.skip = check_bool("skip", skip)
        self.seed = check_seed("seed", seed)
        self.num_directions = D = 2 if self.bidirectional else 1
        G = GATES[self.cell]
        rng = np.random.default_rng(self.seed)
        bound = 1.0 / np.sqrt(H)
        init = lambda shape: rng.uniform(-bound, bound, shape)  # noqa: E731
        for layer in range(self.num_layers):
            in_k = self.input_size if layer == 0 else D * H
            for d in range(D):
                sfx = self._suffix(layer, d)
                self.add_param(f"weight_ih{sfx}", (G * H, in_k), init)
                self.add_param(f"weight_hh{sfx}", (G * H, H), init)
                if self.bias:
                    self.add_param(f"bias_ih{sfx}", (G * H,), init)
                    self.add_param(f"bias_hh{sfx}", (G * H,), init)
        if not self.bias:  # the kernels always take biases: zeros in, gradients discarded
            self._zero_bias = np.zeros(G * H, self.dtype)
            self._bias_grad_sink = np.zeros(G * H, self.dtype)
        self._rng = rng  # continues after the init: draws the dropout masks

    def get_config(self):
        cfg = dict(input_size=self.input_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
                   bidirectional=self.bidirectional, bias=self.bias, dtype=self.dtype_name, seed=self.seed,
                   dropout=self.dropout, skip=self.skip)
        if not self.batch_first:  # only when set: configs saved before the option still compare equal
            cfg["batch_first"] = False
        if hasattr(self, "nonlinearity"):
            cfg["nonlinearity"] = self.nonlinearity
        return cfg

    def rng_state(self):
        """The dropout generator's state (JSON-serialisable), for bit-for-bit resumption."""
        return self._rng.bit_generator.state

    def set_rng_state(self, state):
        self._rng.bit_generator.state = state

    # ------------------------------------------------------------- plumbing
    @staticmethod
    def _suffix(layer, direction):
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _weights(self, layer, d, source):
        sfx = self._suffix(layer, d)
        if self.bias:
            b_ih, b_hh = source[f"bias_ih{sfx}"], source[f"bias_hh{sfx}"]
        elif source is self.params:
            b_ih = b_hh = self._zero_bias
        else:
            self._bias_grad_sink.fill(0)
            b_ih = b_hh = self._bias_grad_sink
        return Weights(source[f"weight_ih{sfx}"], source[f"weight_hh{sfx}"], b_ih, b_hh)

    @property
    def has_cell_state(self):
        return self.cell == "lstm"

    @property
    def layout(self):
        """The axes of x as this layer reads them: "(batch, time, ...)" or "(time, batch, ...)"."""
        return "(batch, time, {})" if self.batch_first else "(time, batch, {})"

    # -------------------------------------------------------------- forward
    def forward(self, x, state=None, lengths=None):
        """Run the whole sequence.

        Parameters
        ----------
        x : array (B, T, I) (``batch_first=False``: (T, B, I)), any float dtype (cast to the
            layer's dtype), any memory order
        state : None, h (L*D, B, H), or for LSTM a tuple (h, c); None means zeros
        lengths : None or ints (B,) in [0, T]
            Valid steps per sample (no sorting needed). Outputs past a sample's length
            are 0; its final state is the state at its last valid step (the reverse
            direction starts there); length 0 keeps the initial state.

        Returns
        -------
        y : ndarray (B, T, D*H) (``batch_first=False``: (T, B, D*H)), the last layer's hidden states
            (with ``skip=True`` layer k >= 1 outputs its states plus its input)
        state : h_T (L*D, B, H), or (h_T, c_T) for LSTM
        """
        x = as_float_array("x", x, self.dtype)
        layout = self.layout.format("input_size")
        check_ndim("x", x, 3, f"{layout} (batch_first={self.batch_first})")
        if x.shape[2] != self.input_size:
            raise ValueError(f"x: expected input_size={self.input_size} features in the last axis of {layout} "
                             f"(batch_first={self.batch_first}), got shape {x.shape}")
        B, T = x.shape[:2] if self.batch_first else x.shape[1::-1]
        h0, c0 = self._state_arrays("state", state, B)
        lengths = None if lengths is None else check_lengths(lengths, B, T)
        mask = None if lengths is None else (np.arange(T)[:, None] < lengths[None, :])[:, :, None]  # (T, B, 1)
        backend = get_backend()
        kernels = backend_module(backend)
        hT, cT = np.empty_like(h0), (np.empty_like(c0) if c0 is not None else None)
        keep = is_grad_enabled()  # under no_grad the kernels may keep no cache
        seq = _time_major(x, self.batch_first)
        # batch_first: the last layer's kernels write y as they go (a copy of hs after the loop was ~0.5 ms of
        # the adding problem's 12 ms fit step)
        y = _buffers.empty((B, T, self.num_directions * self.hidden_size), self.dtype) if self.batch_first else None
        with self._workspace().active():  # the caches come from the layer's workspace (fast backends)
            seq, saved, drop_masks = self._forward_layers(kernels, seq, h0, c0, hT, cT, lengths, mask, keep, y)
        self._save((backend, B, T, saved, mask, drop_masks))
        return (seq if y is None else y), self._pack_state(hT, cT)

    def _forward_layers(self, kernels, seq, h0, c0, hT, cT, lengths, mask, keep, y=None):
        """The stacked layers and directions of :meth:`forward` over ``seq`` (T, B, I); fills hT, cT. Returns
        the last layer's output: time-major, or ``y`` (B, T, D*H) when given, which its kernels fill."""
        saved, drop_masks = [], []
        H = self.hidden_size
        for layer in range(self.num_layers):
            direct = y is not None and layer == self.num_layers - 1  # into y's columns of each direction
            outs = []
            inp = seq
            for d in range(self.num_directions):
                idx = layer * self.num_directions + d
                hs, h, c, sv = kernels.recurrent_forward(
                    self.cell, inp, h0[idx], None if c0 is None else c0[idx], self._weights(layer, d, self.params),
                    reverse=d == 1, lengths=lengths, save=keep, bf16=self.bfloat16,
                    out=y.transpose(1, 0, 2)[:, :, d * H : (d + 1) * H] if direct else None,
                )
                hT[idx] = h
                if cT is not None:
                    cT[idx] = c
                outs.append(hs)
                saved.append(sv)
                # the next direction reads the C-order x this one saved (the C++ kernels' copy of a view): none of its own
                if sv is not None and sv.x.flags.c_contiguous:
                    inp = sv.x
            if direct:  # y holds every direction: the mask and the residual in place
                out = y.transpose(1, 0, 2)
                if mask is not None:
                    np.copyto(out, 0, where=~mask)
                if self.skip and layer > 0:
                    out += seq
                drop_masks.append(None)  # no dropout after the last layer
                return y, saved, drop_masks
            out = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=-1)
            if mask is not None:
                out = np.where(mask, out, 0).astype(self.dtype, copy=False)
            if self.skip and layer > 0:
                out = out + seq  # residual: the layer's input joins its output
            drop = None
            if self.dropout and self.is_training and layer < self.num_layers - 1:
                drop = (uniform(self._rng, out.shape, axis=1) >= self.dropout).astype(self.dtype) / self.dtype.type(1 - self.dropout)
                out = out * drop
            drop_masks.append(drop)
            seq = np.ascontiguousarray(out)
        return seq, saved, drop_masks

    def step(self, x, state=None):
        """One time step for streaming inference, with the state carried by the caller.

        x (B, I) -> y (B, H) and the new state; equal to ``forward`` on the whole
        sequence when the state is passed along. Unidirectional layers only.
        """
        if self.bidirectional:
            raise ValueError("step: expected a unidirectional layer (the reverse direction needs the future), got bidirectional=True")
        x = as_float_array("x", x, self.dtype)
        check_ndim("x", x, 2, "(batch, input_size)")
        y, state = self.forward(x[:, None, :] if self.batch_first else x[None], state)
        return (y[:, 0] if self.batch_first else y[0]), state

    # ------------------------------------------------------------- backward
    def backward(self, dy, dstate=None):
        """Backpropagation through time over the last ``forward``.

        Parameters
        ----------
        dy : array (B, T, D*H) (``batch_first=False``: (T, B, D*H)), dL/dy
        dstate : None, dL/dh_T (L*D, B, H), or for LSTM (dL/dh_T, dL/dc_T); None means zeros

        Returns
        -------
        dx : ndarray (B, T, I) (``batch_first=False``: (T, B, I))
        dstate0 : dL/dh_0, or (dL/dh_0, dL/dc_0) for LSTM

        Weight gradients are added into :attr:`grads`.
        """
        backend, B, T, saved, mask, drop_masks = self._peek_saved()
        H, D = self.hidden_size, self.num_directions
        dy = as_float_array("dy", dy, self.dtype)
        check_shape("dy", dy, (B, T, D * H) if self.batch_first else (T, B, D * H),
                    f"{self.layout.format('num_directions*hidden_size')} of the last forward (batch_first={self.batch_first})")
        dhT, dcT = self._state_arrays("dstate", dstate, B)
        self._pop_saved()  # inputs are valid: this backward consumes the forward
        kernels = backend_module(backend)
        ws = self._workspace()
        dh0, dc0 = np.empty_like(dhT), (np.empty_like(dcT) if dcT is not None else None)
        dseq = dy.transpose(1, 0, 2) if self.batch_first else dy  # (T, B, D*H), a view
        # batch_first: the first layer's kernels write dx in place, as a time-major view (the first direction; the
        # second's is added into it)
        dx_out = _buffers.empty((B, T, self.input_size), self.dtype) if self.batch_first else None
        for layer in reversed(range(self.num_layers)):
            if drop_masks[layer] is not None:
                dseq = dseq * drop_masks[layer]
            dresidual = dseq if self.skip and layer > 0 else None
            if mask is not None:
                dseq = np.where(mask, dseq, 0).astype(self.dtype, copy=False)
            dinp = None
            into = dx_out.transpose(1, 0, 2) if dx_out is not None and layer == 0 else None  # dx's time-major view
            for d in range(D):
                idx = layer * D + d
                with ws.active():  # the spent cache goes back to the workspace
                    dx, dh, dc = kernels.recurrent_backward(  # dhs: a view (the contract takes any strides)
                        saved[idx], self._weights(layer, d, self.params), dseq[:, :, d * H : (d + 1) * H], dhT[idx],
                        None if dcT is None else dcT[idx], self._weights(layer, d, self.grads),
                        out=into if d == 0 else None,
                    )
                dh0[idx] = dh
                if dc0 is not None:
                    dc0[idx] = dc
                if d == 0:
                    dinp = dx if into is None else into  # with `into`, the kernel wrote dx there
                elif into is not None:  # the sum in place: dx_0 + dx_1 as before, without a third array
                    np.add(into, dx, out=into)
                else:
                    dinp = dinp + dx
            dseq = dinp if dresidual is None else dinp + dresidual
        if dx_out is not None:
            return dx_out, self._pack_state(dh0, dc0)
        return np.ascontiguousarray(dseq), self._pack_state(dh0, dc0)

    # ------------------------------------------------------------ workspace
    def _workspace(self):
        """The layer's :class:`~pyrnn.workspace.Workspace`, made at first use (one per layer, every
        direction and stacked layer sharing it: each call takes buffers of its own)."""
        ws = self.__dict__.get("_ws")
        return ws if ws is not None else self.__dict__.setdefault("_ws", Workspace())

    def release_workspace(self):
        """Free the buffers the layer keeps between calls (gate caches, scratch; see
        :mod:`pyrnn.workspace`). The next call allocates afresh; a forward whose backward has not run
        yet stays valid. Deleting the layer frees them too."""
        self._workspace().release()

    def __repr__(self):
        extra = f", nonlinearity={self.nonlinearity!r}" if hasattr(self, "nonlinearity") else ""
        extra += "" if self.batch_first else ", batch_first=False"
        return (
            f"{type(self).__name__}({self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}, bias={self.bias}{extra}, dtype={self.dtype_name})"
        )


class RNN(RNNBase):
    """Elman RNN: ``h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, f = tanh or relu.

    See :class:`RNNBase` for the parameters; ``nonlinearity`` is ``"tanh"`` or ``"relu"``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                 dtype=np.float32, seed=None, nonlinearity="tanh", *, dropout=0.0, skip=False, batch_first=True):
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        self.cell = f"rnn_{nonlinearity}"
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, dtype, seed, dropout=dropout, skip=skip,
                         batch_first=batch_first)


class LSTM(RNNBase):
    """Long short-term memory, gate rows ``i|f|g|o``; state is a tuple (h, c).

    ``c_t = s(a_f) c_{t-1} + s(a_i) tanh(a_g)``, ``h_t = s(a_o) tanh(c_t)``.
    See :class:`RNNBase` for the parameters. ``forget_bias`` (keyword-only, default 0,
    PyTorch's init) is added to the forget-gate rows of every ``bias_ih`` at init: a
    positive value (Keras' ``unit_forget_bias`` uses 1; Gers et al. 2000, Jozefowicz
    et al. 2015) lets a fresh LSTM carry its cell state over long spans.
    """

    cell = "lstm"

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True, dtype=np.float32,
                 seed=None, *, dropout=0.0, skip=False, forget_bias=0.0, batch_first=True):
        forget_bias = check_float("forget_bias", forget_bias)
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, dtype, seed, dropout=dropout, skip=skip,
                         batch_first=batch_first)
        if forget_bias and not self.bias:
            raise ValueError(f"forget_bias: expected 0 for a layer without biases (bias=False), got {forget_bias!r}")
        self.forget_bias = forget_bias
        H = self.hidden_size
        for name, value in self.params.items():
            if name.startswith("bias_ih") and value.flags.writeable:  # not under shapes_only()
                value[H : 2 * H] += self.dtype.type(self.forget_bias)

    def get_config(self):
        return dict(super().get_config(), forget_bias=self.forget_bias)


class GRU(RNNBase):
    """Gated recurrent unit, gate rows ``r|z|n``.

    ``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``, ``h_t = (1 - z) n + z h_{t-1}``.
    See :class:`RNNBase` for the parameters.
    """

    cell = "gru"
