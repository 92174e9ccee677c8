"""The NumPy reference backend: the readable specification of every kernel.

Legend: T = time, B = batch, I = input, H = hidden, G = gates. Names (``xproj``, ``hproj``,
``preact``, ``tanh_c``, ``hn``) and the contract this module implements: see
:mod:`pyrnn.backends.contract`. Gate packing (PyTorch's): LSTM ``i|f|g|o``, GRU ``r|z|n``.

Each cell is a pair of pointwise steps, ``<cell>_forward_step`` and ``<cell>_backward_step``,
side by side; ``recurrent_forward`` and ``recurrent_backward`` below are the one time loop they
all share. The fast backends are tested against this file, and this file is tested by finite
differences in float64.
"""

from __future__ import annotations

import numpy as np

from . import ordered
from .bfloat16 import round_bf16
from .contract import Cache, Saved, Weights, active_rows, new_cache, previous_states, time_steps, write_out

NAME = "numpy"


# s(z) = 1 / (1 + exp(-z));  s'(z) = s(z)(1 - s(z))
def sigmoid(z):
    return 0.5 * (np.tanh(0.5 * z) + 1.0)  # = 1/(1+exp(-z)), without overflow


# Every forward step takes (cell, xproj_t, hproj_t, h_prev, c_prev) and returns (h, c, saved), where
# saved holds the step's part of the Cache fields (gates, tanh_cs, hn); every backward step takes
# (cell, dh, dc, h, h_prev, c_prev, step) with dh = dL/dh_t (both paths) and step the Cache at t,
# and returns (da_ih, da_hh, dh_direct, dc_prev): dL/dpreact on the input and hidden sides (they
# differ only for GRU's n), the part of dL/dh_{t-1} that bypasses W_hh, and dL/dc_{t-1}.

# ---------------------------------------------------------------- vanilla RNN
# h = f(preact),  preact = xproj + hproj,  f = tanh or relu
def rnn_forward_step(cell, xproj, hproj, h_prev, c_prev):
    preact = xproj + hproj
    h = np.tanh(preact) if cell == "rnn_tanh" else np.maximum(preact, 0)
    return h, None, {}


# tanh'(a) = 1 - h^2;  relu'(a) = [h > 0], applied as a select (as PyTorch does): where h <= 0 the
# gradient is 0 even if dh is inf or NaN (a product dh * [h > 0] would give NaN there)
def rnn_backward_step(cell, dh, dc, h, h_prev, c_prev, step):
    da = dh * (1 - h * h) if cell == "rnn_tanh" else np.where(h > 0, dh, 0)
    return da, da, np.zeros_like(dh), None


# ----------------------------------------------------------------------- LSTM
# i, f, o = s(preact_i), s(preact_f), s(preact_o);  g = tanh(preact_g)
# c = f * c_prev + i * g;  h = o * tanh(c)
def lstm_forward_step(cell, xproj, hproj, h_prev, c_prev):
    ai, af, ag, ao = np.split(xproj + hproj, 4, axis=-1)
    i, f, g, o = sigmoid(ai), sigmoid(af), np.tanh(ag), sigmoid(ao)
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h = o * tanh_c
    return h, c, dict(gates=np.concatenate([i, f, g, o], axis=-1), tanh_cs=tanh_c)


# dc_total = dc + dh * o * (1 - tanh(c)^2);  da_i = dc_total g i(1-i), da_f = dc_total c_prev f(1-f)
# da_g = dc_total i (1 - g^2);  da_o = dh tanh(c) o(1-o);  dc_prev = dc_total f
def lstm_backward_step(cell, dh, dc, h, h_prev, c_prev, step):
    i, f, g, o = np.split(step.gates, 4, axis=-1)
    tanh_c = step.tanh_cs
    dc = dc + dh * o * (1 - tanh_c * tanh_c)
    da = np.concatenate(
        [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g), dh * tanh_c * o * (1 - o)],
        axis=-1,
    )
    return da, da, np.zeros_like(dh), dc * f


# ------------------------------------------------------------------------ GRU
# r = s(xproj_r + hproj_r), z = s(xproj_z + hproj_z);  hn = hproj_n = W_hn h_prev + b_hn
# n = tanh(xproj_n + r * hn)  (linear before reset);  h = (1 - z) * n + z * h_prev
def gru_forward_step(cell, xproj, hproj, h_prev, c_prev):
    xr, xz, xn = np.split(xproj, 3, axis=-1)
    hr, hz, hn = np.split(hproj, 3, axis=-1)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    h = (1 - z) * n + z * h_prev
    return h, None, dict(gates=np.concatenate([r, z, n], axis=-1), hn=hn)


# da_n = dh (1 - z)(1 - n^2);  da_z = dh (h_prev - n) z(1-z);  da_r = da_n hn r(1-r)
# input side gets [da_r, da_z, da_n]; hidden side [da_r, da_z, da_n * r]; dh_prev (direct) = dh z
def gru_backward_step(cell, dh, dc, h, h_prev, c_prev, step):
    r, z, n = np.split(step.gates, 3, axis=-1)
    dan = dh * (1 - z) * (1 - n * n)
    daz = dh * (h_prev - n) * z * (1 - z)
    dar = dan * step.hn * r * (1 - r)
    return np.concatenate([dar, daz, dan], -1), np.concatenate([dar, daz, dan * r], -1), dh * z, None


_FORWARD_STEP = {"rnn_tanh": rnn_forward_step, "rnn_relu": rnn_forward_step, "lstm": lstm_forward_step,
                 "gru": gru_forward_step}
_BACKWARD_STEP = {"rnn_tanh": rnn_backward_step, "rnn_relu": rnn_backward_step, "lstm": lstm_backward_step,
                  "gru": gru_backward_step}


# ------------------------------------------------------------ the time loop
def _same(a):
    return a


def gemm_operand(bf16):
    """What a GEMM operand becomes: rounded to bfloat16 (``bf16``, mixed precision), or itself."""
    return round_bf16 if bf16 else _same


def recurrent_forward(cell, x, h0, c0, weights: Weights, reverse=False, lengths=None, save=True, bf16=False, out=None):
    """One layer, one direction, the whole sequence. See the contract (this backend always saves).
    ``bf16``: every GEMM takes bf16-rounded operands, float32 sums (:mod:`pyrnn.backends.bfloat16`)."""
    T, B, _ = x.shape
    step_fw = _FORWARD_STEP[cell]
    op = gemm_operand(bf16)
    xproj = op(x) @ op(weights.w_ih).T + weights.b_ih  # one GEMM for the input projection of every step
    w_hh = op(weights.w_hh)
    cache = new_cache(cell, T, B, h0.shape[1], x.dtype)
    h, c = h0, c0
    for t in time_steps(T, reverse):
        hproj = op(h) @ w_hh.T + weights.b_hh  # the recurrent GEMM
        h_new, c_new, step = step_fw(cell, xproj[t], hproj, h, c)
        active = active_rows(lengths, t)
        if active is not None:  # past a sample's length its state is carried, its saved step is 0
            h_new = np.where(active, h_new, h)
            c_new = None if c is None else np.where(active, c_new, c)
            step = {name: np.where(active, value, 0) for name, value in step.items()}
        h, c = h_new, c_new
        cache.hs[t] = h
        if c is not None:
            cache.cs[t] = c
        for name, value in step.items():
            getattr(cache, name)[t] = value
    return write_out(out, cache.hs), h, c, Saved(cell, bool(reverse), x, h0, c0, cache, lengths, bool(bf16))


def recurrent_backward(saved: Saved, weights: Weights, dhs, dhT, dcT, grads: Weights, out=None):
    """BPTT through one layer-direction; adds weight gradients into ``grads``. With ``saved.bf16``
    every GEMM takes bf16-rounded operands (dA included); the bias gradients sum float32 dA."""
    cell, x, cache = saved.cell, saved.x, saved.cache
    T = x.shape[0]
    step_bw = _BACKWARD_STEP[cell]
    op = gemm_operand(saved.bf16)
    w_hh = op(weights.w_hh)
    prev_h = previous_states(saved)
    da_ih = np.zeros(cache.hs.shape[:2] + (weights.w_ih.shape[0],), x.dtype)
    da_hh = np.zeros_like(da_ih)
    dh, dc = dhT, dcT
    order = list(time_steps(T, saved.reverse))
    for k in range(T - 1, -1, -1):
        t = order[k]
        c_prev = None
        if cache.cs is not None:
            c_prev = saved.c0 if k == 0 else cache.cs[order[k - 1]]
        step = Cache(*(None if a is None else a[t] for a in cache))
        dh_t = dh + dhs[t]
        da_i, da_h, dh_direct, dc_prev = step_bw(cell, dh_t, dc, cache.hs[t], prev_h[t], c_prev, step)
        active = active_rows(saved.lengths, t)
        if active is not None:  # a carried step passes dh and dc straight through
            da_i, da_h = np.where(active, da_i, 0), np.where(active, da_h, 0)
            dh_direct = np.where(active, dh_direct, dh_t)
            dc_prev = None if dc is None else np.where(active, dc_prev, dc)
        da_ih[t], da_hh[t], dc = da_i, da_h, dc_prev
        dh = dh_direct + op(da_hh[t]) @ w_hh  # the recurrent GEMM, transposed
    # After the loop: one GEMM each for dx, dW_ih, dW_hh; one reduction per bias.
    G_H = da_ih.shape[-1]
    flat_ih, flat_hh = da_ih.reshape(-1, G_H), da_hh.reshape(-1, G_H)
    op_ih, op_hh = op(flat_ih), op(flat_hh)
    dx = (op_ih @ op(weights.w_ih)).reshape(x.shape)
    ordered.matmul(op_ih.T, op(x.reshape(-1, x.shape[-1])), out=grads.w_ih)  # sums over T*B: thread-count independent
    ordered.matmul(op_hh.T, op(prev_h.reshape(-1, prev_h.shape[-1])), out=grads.w_hh)
    grads.b_ih[...] += flat_ih.sum(axis=0)
    grads.b_hh[...] += flat_hh.sum(axis=0)
    return write_out(out, dx, "(T, B, I)"), dh, dc


from .activation_reference import activation_backward, activation_forward  # noqa: E402,F401
from .concat_reference import concat_last, split_last  # noqa: E402,F401
from .conv2d_reference import conv2d_backward, conv2d_forward  # noqa: E402,F401
from .conv_reference import conv1d_backward, conv1d_forward, pool1d_backward, pool1d_forward  # noqa: E402,F401
from .norm_reference import batchnorm_backward, batchnorm_forward  # noqa: E402,F401
from .pool2d_reference import pool2d_backward, pool2d_forward, upsample2d_backward, upsample2d_forward  # noqa: E402,F401
