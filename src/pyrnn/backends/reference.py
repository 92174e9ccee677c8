"""The NumPy reference backend: the readable specification of every kernel.

Legend: T = time, B = batch, I = input, H = hidden, G = gates per unit.
Gate packing (PyTorch's): LSTM ``i|f|g|o``, GRU ``r|z|n``. See
:mod:`pyrnn.backends.contract` for the contract this module implements.

Each cell is a pair of pointwise steps, ``<cell>_forward_step`` and
``<cell>_backward_step``, side by side; ``forward`` and ``backward`` below are
the one time loop they all share. The fast backends are tested against this
file, and this file is tested by finite differences in float64.
"""

from __future__ import annotations

import numpy as np

from .contract import Saved, Weights, active_rows, cache_shapes, previous_states, time_steps

NAME = "numpy"


# s(z) = 1 / (1 + exp(-z));  s'(z) = s(z)(1 - s(z))
def sigmoid(z):
    return 0.5 * (np.tanh(0.5 * z) + 1.0)  # = 1/(1+exp(-z)), without overflow


# ---------------------------------------------------------------- vanilla RNN
# h = f(a),  a = W_ih x + b_ih + W_hh h_prev + b_hh,  f = tanh or relu
def rnn_forward_step(cell, a, c_prev):
    h = np.tanh(a) if cell == "rnn_tanh" else np.maximum(a, 0)
    return h, None, ()


# tanh'(a) = 1 - h^2;  relu'(a) = [h > 0]
def rnn_backward_step(cell, dh, dc, h, h_prev, c_prev, step_cache):
    da = dh * (1 - h * h) if cell == "rnn_tanh" else dh * (h > 0)
    return da, da, np.zeros_like(dh), None


# ----------------------------------------------------------------------- LSTM
# i, f, o = s(a_i), s(a_f), s(a_o);  g = tanh(a_g)
# c = f * c_prev + i * g;  h = o * tanh(c)
def lstm_forward_step(cell, a, c_prev):
    ai, af, ag, ao = np.split(a, 4, axis=-1)
    i, f, g, o = sigmoid(ai), sigmoid(af), np.tanh(ag), sigmoid(ao)
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h = o * tanh_c
    return h, c, (np.concatenate([i, f, g, o], axis=-1), c, tanh_c)


# dc_total = dc + dh * o * (1 - tanh(c)^2);  da_i = dc_total g i(1-i), da_f = dc_total c_prev f(1-f)
# da_g = dc_total i (1 - g^2);  da_o = dh tanh(c) o(1-o);  dc_prev = dc_total f
def lstm_backward_step(cell, dh, dc, h, h_prev, c_prev, step_cache):
    gates, _, tanh_c = step_cache
    i, f, g, o = np.split(gates, 4, axis=-1)
    dc = dc + dh * o * (1 - tanh_c * tanh_c)
    da = np.concatenate(
        [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g), dh * tanh_c * o * (1 - o)],
        axis=-1,
    )
    return da, da, np.zeros_like(dh), dc * f


# ------------------------------------------------------------------------ GRU
# r = s(a_r + b_r), z = s(a_z + b_z) (hh parts included);  hn = W_hn h_prev + b_hn
# n = tanh(W_in x + b_in + r * hn);  h = (1 - z) * n + z * h_prev
def gru_forward_step(cell, xp, gh, h_prev):
    xr, xz, xn = np.split(xp, 3, axis=-1)
    hr, hz, hn = np.split(gh, 3, axis=-1)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    h = (1 - z) * n + z * h_prev
    return h, (np.concatenate([r, z, n], axis=-1), hn)


# da_n = dh (1 - z)(1 - n^2);  da_z = dh (h_prev - n) z(1-z);  da_r = da_n hn r(1-r)
# input side gets [da_r, da_z, da_n]; hidden side [da_r, da_z, da_n * r]; dh_prev (direct) = dh z
def gru_backward_step(cell, dh, dc, h, h_prev, c_prev, step_cache):
    gates, hn = step_cache
    r, z, n = np.split(gates, 3, axis=-1)
    dan = dh * (1 - z) * (1 - n * n)
    daz = dh * (h_prev - n) * z * (1 - z)
    dar = dan * hn * r * (1 - r)
    return np.concatenate([dar, daz, dan], -1), np.concatenate([dar, daz, dan * r], -1), dh * z, None


_BACKWARD_STEP = {
    "rnn_tanh": rnn_backward_step,
    "rnn_relu": rnn_backward_step,
    "lstm": lstm_backward_step,
    "gru": gru_backward_step,
}


# ------------------------------------------------------------ the time loop
def recurrent_forward(cell, x, h0, c0, weights: Weights, reverse=False, lengths=None, save=True):
    """One layer, one direction, the whole sequence. See the contract."""
    T, B, _ = x.shape
    H = h0.shape[1]
    # One GEMM for the input projection of every step. For RNN/LSTM both biases
    # fold in here; GRU keeps b_hn inside r * (W_hn h + b_hn).
    xp = x @ weights.w_ih.T + weights.b_ih
    if cell != "gru":
        xp = xp + weights.b_hh
    hs = np.empty((T, B, H), x.dtype)
    cache = tuple(np.empty(shape, x.dtype) for shape in cache_shapes(cell, T, B, H))
    h, c = h0, c0
    for t in time_steps(T, reverse):
        gh = h @ weights.w_hh.T  # the recurrent GEMM
        if cell == "gru":
            h_new, step = gru_forward_step(cell, xp[t], gh + weights.b_hh, h)
            c_new = None
        elif cell == "lstm":
            h_new, c_new, step = lstm_forward_step(cell, xp[t] + gh, c)
        else:
            h_new, c_new, step = rnn_forward_step(cell, xp[t] + gh, c)
        active = active_rows(lengths, t)
        if active is not None:  # past a sample's length its state is carried, its gates are 0
            h_new = np.where(active, h_new, h)
            step = tuple(np.where(active, value, 0) for value in step)
            if cell == "lstm":  # the cache's c_t is the carried cell state
                c_new = np.where(active, c_new, c)
                step = (step[0], c_new, step[2])
        h, c = h_new, c_new
        hs[t] = h
        for array, value in zip(cache, step):
            array[t] = value
    saved = Saved(cell, bool(reverse), x, h0, c0, hs, cache, lengths)
    return hs, h, c, saved


def recurrent_backward(saved: Saved, weights: Weights, dhs, dhT, dcT, grads: Weights):
    """BPTT through one layer-direction; adds weight gradients into ``grads``."""
    cell, x, hs = saved.cell, saved.x, saved.hs
    T = x.shape[0]
    step_bw = _BACKWARD_STEP[cell]
    prev_h = previous_states(saved)
    cs = saved.cache[1] if cell == "lstm" else None
    da_ih = np.zeros(hs.shape[:2] + (weights.w_ih.shape[0],), x.dtype)
    da_hh = np.zeros_like(da_ih)
    dh, dc = dhT, dcT
    order = list(time_steps(T, saved.reverse))
    for k in range(T - 1, -1, -1):
        t = order[k]
        c_prev = None
        if cs is not None:
            c_prev = saved.c0 if k == 0 else cs[order[k - 1]]
        step_cache = tuple(a[t] for a in saved.cache)
        dh_t = dh + dhs[t]
        da_i, da_h, dh_direct, dc_prev = step_bw(cell, dh_t, dc, hs[t], prev_h[t], c_prev, step_cache)
        active = active_rows(saved.lengths, t)
        if active is not None:  # a carried step passes dh and dc straight through
            da_i, da_h = np.where(active, da_i, 0), np.where(active, da_h, 0)
            dh_direct = np.where(active, dh_direct, dh_t)
            dc_prev = None if dc is None else np.where(active, dc_prev, dc)
        da_ih[t], da_hh[t], dc = da_i, da_h, dc_prev
        dh = dh_direct + da_hh[t] @ weights.w_hh  # the recurrent GEMM, transposed
    # After the loop: one GEMM each for dx, dW_ih, dW_hh; one reduction per bias.
    G_H = da_ih.shape[-1]
    flat_ih, flat_hh = da_ih.reshape(-1, G_H), da_hh.reshape(-1, G_H)
    dx = (flat_ih @ weights.w_ih).reshape(x.shape)
    grads.w_ih[...] += flat_ih.T @ x.reshape(-1, x.shape[-1])
    grads.w_hh[...] += flat_hh.T @ prev_h.reshape(-1, prev_h.shape[-1])
    grads.b_ih[...] += flat_ih.sum(axis=0)
    grads.b_hh[...] += flat_hh.sum(axis=0)
    return dx, dh, dc

from .conv_reference import conv1d_backward, conv1d_forward, pool1d_backward, pool1d_forward  # noqa: E402,F401
