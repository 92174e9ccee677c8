"""The kernel contract every backend implements, written once.

Legend: T = time, B = batch, I = input, H = hidden, G = gates per unit.

A backend is a module; its recurrent family is two functions over ONE layer and ONE direction:

``recurrent_forward(cell, x, h0, c0, weights, reverse, lengths=None, save=True) -> (hs, hT, cT, saved)``
    x (T, B, I), h0 (B, H), c0 (B, H) for LSTM else None, all C-contiguous and
    of one float dtype. ``hs`` (T, B, H) holds the hidden state at every time
    index (for ``reverse=True`` the loop runs from t = T-1 down to 0, and
    ``hs[t]`` is still the state after reading ``x[t]``). ``hT``/``cT`` are the
    states after the last processed step. ``saved`` is a :class:`Saved`: all
    that backward needs, so backward recomputes nothing. With ``save=False``
    (inference) a backend may keep no cache and return ``saved = None``.

    ``lengths`` (B,) int64 in [0, T], or None for all T: variable-length
    batches without sorting. Time index t is *active* for sample b iff
    t < lengths[b]. At an inactive index the state is carried unchanged
    (h_t = h_prev, c_t = c_prev; saved gates are 0), so in the forward
    direction the final state is the state at the last valid step, in the
    reverse direction the loop starts at t = lengths[b] - 1 from h0, and
    length 0 keeps the initial state. ``hs`` holds the carried state at
    inactive indices; zeroing outputs there is the layer's business.

``recurrent_backward(saved, weights, dhs, dhT, dcT, grads) -> (dx, dh0, dc0)``
    dhs (T, B, H) is dL/dhs, dhT/dcT the gradient w.r.t. the returned final
    states (dcT None unless LSTM). Weight gradients are ADDED into ``grads``
    (a :class:`Weights` of arrays); zeroing them is the caller's business.
    ``saved`` is good for ONE backward: a backend may overwrite its cache (the
    C++ one writes dA over the saved gates, which saves a (T, B, G*H) buffer),
    as the layers, like PyTorch, free what forward saved after one backward.

Gate packing is PyTorch's, so weights compare with ``torch.nn.LSTM`` directly:

- ``rnn_tanh`` / ``rnn_relu`` (G = 1): ``h = f(W_ih x + b_ih + W_hh h_prev + b_hh)``
- ``lstm`` (G = 4, rows ``i|f|g|o``)
- ``gru``  (G = 3, rows ``r|z|n``; ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``)

What ``saved.cache`` holds, per cell (all time-major, indexed by t):

- rnn: ``()``: the activation's derivative is read from ``hs`` itself;
- lstm: ``(gates, cs, tanh_cs)``: activated gates (T, B, 4H), c_t and tanh(c_t);
- gru: ``(gates, hn)``: activated gates (T, B, 3H) and ``W_hn h_prev + b_hn`` (T, B, H).

Every backend computes the input projection ``x @ W_ih^T`` for all steps as one
GEMM before the time loop, and ``dx``, ``dW_ih``, ``dW_hh`` and the biases as
one GEMM (or reduction) each after it; inside the loop there is one recurrent
GEMM and one fused elementwise step per time step.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

#: cell name -> gates per hidden unit
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}

#: stable integer code of each cell, shared by the compiled backends
CELL_CODES = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3}


class Weights(NamedTuple):
    """One layer-direction's parameters (or their gradients), PyTorch layout."""

    w_ih: np.ndarray  # (G*H, I)
    w_hh: np.ndarray  # (G*H, H)
    b_ih: np.ndarray  # (G*H,)
    b_hh: np.ndarray  # (G*H,)


class Saved(NamedTuple):
    """What forward hands to backward, explicitly."""

    cell: str
    reverse: bool
    x: np.ndarray  # (T, B, I)
    h0: np.ndarray  # (B, H)
    c0: Optional[np.ndarray]  # (B, H), LSTM only
    hs: np.ndarray  # (T, B, H)
    cache: Tuple[np.ndarray, ...]  # per cell, see the module docstring
    lengths: Optional[np.ndarray] = None  # (B,) int64, None = every step active


def active_rows(lengths, t):
    """(B, 1) bool: which samples are active at time index t (all if lengths is None)."""
    return None if lengths is None else (t < lengths)[:, None]


def time_steps(T: int, reverse: bool) -> range:
    """The order in which a direction visits the time indices."""
    return range(T - 1, -1, -1) if reverse else range(T)


def previous_states(saved: Saved) -> np.ndarray:
    """h_{prev}(t) for every time index t, (T, B, H): the operand of dW_hh.

    Forward direction: [h0, hs[0], ..., hs[T-2]]; reverse: [hs[1], ..., hs[T-1], h0].
    """
    hs, h0 = saved.hs, saved.h0
    if len(hs) == 0:
        return hs
    if saved.reverse:
        return np.concatenate([hs[1:], h0[None]], axis=0)
    return np.concatenate([h0[None], hs[:-1]], axis=0)


def cache_shapes(cell, T, B, H):
    """Shapes of ``saved.cache`` for ``cell`` (see the module docstring)."""
    if cell == "lstm":
        return ((T, B, 4 * H), (T, B, H), (T, B, H))
    if cell == "gru":
        return ((T, B, 3 * H), (T, B, H))
    return ()


def kernel_views(cell, hs, cache):
    """The cache as the compiled kernels take it: ``(hs, cs, gates, aux)``, None where a cell has none."""
    if cell == "lstm":
        gates, cs, tanh_cs = cache
        return hs, cs, gates, tanh_cs, None
    if cell == "gru":
        gates, hn = cache
        return hs, None, gates, None, hn
    return hs, None, None, None, None


def empty_forward(cell, x, h0, c0, reverse, lengths=None):
    """Forward when T = 0 or B = 0: empty outputs; the final state is the initial one."""
    T, B, _ = x.shape
    H = h0.shape[1]
    hs = np.zeros((T, B, H), x.dtype)
    cache = tuple(np.zeros(s, x.dtype) for s in cache_shapes(cell, T, B, H))
    cT = None if c0 is None else c0.copy()
    return hs, h0.copy(), cT, Saved(cell, bool(reverse), x, h0, c0, hs, cache, lengths)


def empty_backward(saved, dhT, dcT):
    """Backward when T = 0 or B = 0: the gradient passes straight to the initial state."""
    return np.zeros_like(saved.x), dhT.copy(), (None if dcT is None else dcT.copy())
