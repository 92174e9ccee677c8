"""The Numba backend: the reference's structure as ``@njit`` loops.

Legend: T = time, B = batch, I = input, H = hidden, G = gates per unit.
Gate packing (PyTorch's): LSTM ``i|f|g|o``, GRU ``r|z|n``.

Three layers, as in stumpy: the public ``forward``/``backward`` check and
allocate; ``_forward_kernel``/``_backward_kernel`` run the whole time loop
(recurrent GEMM via ``np.dot`` + one pointwise step); the ``_<cell>_*_step``
helpers are that pointwise step, forward and backward side by side. GEMMs go
through ``np.dot``, i.e. SciPy's BLAS. JIT flags come from ``_numba_config``.
"""

from __future__ import annotations

import numba
import numpy as np
from numba.extending import overload

from ._numba_config import JIT
from .contract import CELL_CODES, Saved, Weights, cache_shapes, empty_backward, empty_forward, kernel_views

NAME = "numba"
RNN_TANH, RNN_RELU, LSTM, GRU = (CELL_CODES[c] for c in ("rnn_tanh", "rnn_relu", "lstm", "gru"))


# tanh(x) ~ x P(x^2) / Q(x^2) on [-7.9053, 7.9053], the same rational approximation as the
# C++ kernels (csrc/common/activations.h): branch-free, so the float32 loops vectorise.
@numba.njit(**JIT)
def _tanh_rational(x):
    c = 7.90531110763549805
    x = c if x > c else x  # comparisons are false for NaN, so NaN passes through
    x = -c if x < -c else x
    x2 = x * x
    p = -2.76076847742355e-16
    p = p * x2 + 2.00018790482477e-13
    p = p * x2 + -8.60467152213735e-11
    p = p * x2 + 5.12229709037114e-08
    p = p * x2 + 1.48572235717979e-05
    p = p * x2 + 6.37261928875436e-04
    p = p * x2 + 4.89352455891786e-03
    q = 1.19825839466702e-06
    q = q * x2 + 1.18534705686654e-04
    q = q * x2 + 2.26843463243900e-03
    q = q * x2 + 4.89352518554385e-03
    return x * p / q


def _tanh(x):
    """tanh in the precision of x: np.tanh for float64, the rational form for float32."""
    return np.tanh(x)


@overload(_tanh)
def _tanh_typed(x):
    if x == numba.types.float32:
        return lambda x: np.float32(_tanh_rational(np.float64(x)))
    return lambda x: np.tanh(x)


# s(z) = 1 / (1 + exp(-z)) = (tanh(z/2) + 1) / 2, which never overflows;  s'(z) = s(z)(1 - s(z))
def _sigmoid(z):
    return 0.5 * (np.tanh(0.5 * z) + 1.0)


@overload(_sigmoid)
def _sigmoid_typed(z):
    if z == numba.types.float32:
        return lambda z: np.float32(0.5 * (_tanh_rational(0.5 * np.float64(z)) + 1.0))
    return lambda z: 0.5 * (np.tanh(0.5 * z) + 1.0)


# ---------------------------------------------------------------- vanilla RNN
# h = f(xp + gh), f = tanh or relu (both biases are folded into xp)
@numba.njit(**JIT)
def _rnn_forward_step(relu, xp, gh, h):
    B, H = h.shape
    for b in range(B):
        for j in range(H):
            a = xp[b, j] + gh[b, j]
            h[b, j] = (0.0 if a < 0 else a) if relu else _tanh(a)  # relu(NaN) = NaN, as in PyTorch


# tanh'(a) = 1 - h^2;  relu'(a) = [h > 0];  da = (dh + dhs) f'(a)
@numba.njit(**JIT)
def _rnn_backward_step(relu, dh, dhs, h, da, dh_direct):
    B, H = h.shape
    for b in range(B):
        for j in range(H):
            g = dh[b, j] + dhs[b, j]
            hv = h[b, j]
            da[b, j] = (g if hv > 0 else 0.0) if relu else g * (1.0 - hv * hv)
            dh_direct[b, j] = 0.0


# ----------------------------------------------------------------------- LSTM
# i, f, o = s(a_i), s(a_f), s(a_o);  g = tanh(a_g);  c = f c_prev + i g;  h = o tanh(c)
@numba.njit(**JIT)
def _lstm_forward_step(xp, gh, c_prev, h, c, gates, tanh_c):
    B, H = h.shape
    for b in range(B):
        for j in range(H):
            i = _sigmoid(xp[b, j] + gh[b, j])
            f = _sigmoid(xp[b, H + j] + gh[b, H + j])
            g = _tanh(xp[b, 2 * H + j] + gh[b, 2 * H + j])
            o = _sigmoid(xp[b, 3 * H + j] + gh[b, 3 * H + j])
            cv = f * c_prev[b, j] + i * g
            tc = _tanh(cv)
            gates[b, j], gates[b, H + j], gates[b, 2 * H + j], gates[b, 3 * H + j] = i, f, g, o
            c[b, j], tanh_c[b, j], h[b, j] = cv, tc, o * tc


# dc_total = dc + dh o (1 - tanh(c)^2);  da_i = dc_total g i(1-i);  da_f = dc_total c_prev f(1-f)
# da_g = dc_total i (1 - g^2);  da_o = dh tanh(c) o(1-o);  dc_prev = dc_total f
@numba.njit(**JIT)
def _lstm_backward_step(dh, dhs, dc, c_prev, gates, tanh_c, da, dh_direct):
    B, H = dh.shape
    for b in range(B):
        for j in range(H):
            i, f, g, o = gates[b, j], gates[b, H + j], gates[b, 2 * H + j], gates[b, 3 * H + j]
            gh = dh[b, j] + dhs[b, j]
            tc = tanh_c[b, j]
            dct = dc[b, j] + gh * o * (1.0 - tc * tc)
            da[b, j] = dct * g * i * (1.0 - i)
            da[b, H + j] = dct * c_prev[b, j] * f * (1.0 - f)
            da[b, 2 * H + j] = dct * i * (1.0 - g * g)
            da[b, 3 * H + j] = gh * tc * o * (1.0 - o)
            dc[b, j] = dct * f
            dh_direct[b, j] = 0.0


# ------------------------------------------------------------------------ GRU
# r = s(xp_r + gh_r), z = s(xp_z + gh_z), hn = gh_n (b_hh included in gh)
# n = tanh(xp_n + r hn);  h = (1 - z) n + z h_prev
@numba.njit(**JIT)
def _gru_forward_step(xp, gh, h_prev, h, gates, hn):
    B, H = h.shape
    for b in range(B):
        for j in range(H):
            r = _sigmoid(xp[b, j] + gh[b, j])
            z = _sigmoid(xp[b, H + j] + gh[b, H + j])
            hnv = gh[b, 2 * H + j]
            n = _tanh(xp[b, 2 * H + j] + r * hnv)
            gates[b, j], gates[b, H + j], gates[b, 2 * H + j] = r, z, n
            hn[b, j] = hnv
            h[b, j] = (1.0 - z) * n + z * h_prev[b, j]


# da_n = dh (1 - z)(1 - n^2);  da_z = dh (h_prev - n) z(1-z);  da_r = da_n hn r(1-r)
# input side [da_r, da_z, da_n]; hidden side [da_r, da_z, da_n r]; dh_prev (direct) = dh z
@numba.njit(**JIT)
def _gru_backward_step(dh, dhs, h_prev, gates, hn, da_ih, da_hh, dh_direct):
    B, H = dh.shape
    for b in range(B):
        for j in range(H):
            r, z, n = gates[b, j], gates[b, H + j], gates[b, 2 * H + j]
            g = dh[b, j] + dhs[b, j]
            dan = g * (1.0 - z) * (1.0 - n * n)
            daz = g * (h_prev[b, j] - n) * z * (1.0 - z)
            dar = dan * hn[b, j] * r * (1.0 - r)
            da_ih[b, j], da_ih[b, H + j], da_ih[b, 2 * H + j] = dar, daz, dan
            da_hh[b, j], da_hh[b, H + j], da_hh[b, 2 * H + j] = dar, daz, dan * r
            dh_direct[b, j] = g * z


# ------------------------------------------------------------ the time loops
@numba.njit(**JIT)
def _forward_kernel(cell, reverse, x, lengths, state0, params, out):
    """x (T,B,I); lengths (B,) int64; state0 = (h0, c0); params = (w_ih^T (I,GH), w_hh^T (H,GH),
    b_ih, b_hh); out = (hs, cs, gates, aux), filled in place."""
    h0, c0 = state0
    w_ih_t, w_hh_t, b_ih, b_hh = params
    hs, cs, gates, aux = out
    T, B, I = x.shape
    GH = w_hh_t.shape[1]
    xp = np.dot(x.reshape(T * B, I), w_ih_t).reshape(T, B, GH)  # one GEMM for every step
    fold_hh = cell != GRU  # GRU keeps b_hn inside r * (W_hn h + b_hn)
    for t in range(T):
        for b in range(B):
            for k in range(GH):
                xp[t, b, k] += b_ih[k] + (b_hh[k] if fold_hh else 0.0)
    gh = np.empty((B, GH), x.dtype)
    h_prev, c_prev = h0, c0
    for s in range(T):
        t = T - 1 - s if reverse else s
        np.dot(h_prev, w_hh_t, gh)  # the recurrent GEMM
        if cell == LSTM:
            _lstm_forward_step(xp[t], gh, c_prev, hs[t], cs[t], gates[t], aux[t])
        elif cell == GRU:
            for b in range(B):
                for k in range(GH):
                    gh[b, k] += b_hh[k]
            _gru_forward_step(xp[t], gh, h_prev, hs[t], gates[t], aux[t])
        else:
            _rnn_forward_step(cell == RNN_RELU, xp[t], gh, hs[t])
        for b in range(B):  # past a sample's length: carry its state, zero its cache
            if t >= lengths[b]:
                hs[t, b, :] = h_prev[b, :]
                if cell == LSTM:
                    cs[t, b, :] = c_prev[b, :]
                if cell == LSTM or cell == GRU:
                    gates[t, b, :] = 0.0
                    aux[t, b, :] = 0.0
        h_prev = hs[t]
        if cell == LSTM:
            c_prev = cs[t]


@numba.njit(**JIT)
def _backward_kernel(cell, reverse, x, lengths, state0, saved, params, dout, grads, dx):
    """lengths (B,) int64; saved = (hs, cs, gates, aux); params = (w_ih, w_hh) in PyTorch layout;
    dout = (dhs, dhT, dcT); grads = (dw_ih, dw_hh, db_ih, db_hh), added into.
    Returns (dh0, dc0); dx (T,B,I) is written."""
    h0, c0 = state0
    hs, cs, gates, aux = saved
    w_ih, w_hh = params
    dhs, dhT, dcT = dout
    dw_ih, dw_hh, db_ih, db_hh = grads
    T, B, I = x.shape
    H = h0.shape[1]
    GH = w_hh.shape[0]
    da_ih = np.empty((T, B, GH), x.dtype)
    da_hh = np.empty((T, B, GH), x.dtype) if cell == GRU else da_ih
    dh, dh_next, tmp = dhT.copy(), np.empty((B, H), x.dtype), np.empty((B, H), x.dtype)
    dc, dc_kept = dcT.copy(), np.empty((B, H), x.dtype)
    for k in range(T - 1, -1, -1):
        t = T - 1 - k if reverse else k
        tp = t + 1 if reverse else t - 1  # time index of the previous step
        dc_kept[:, :] = dc
        h_prev = h0 if k == 0 else hs[tp]
        if cell == LSTM:
            c_prev = c0 if k == 0 else cs[tp]
            _lstm_backward_step(dh, dhs[t], dc, c_prev, gates[t], aux[t], da_ih[t], dh_next)
        elif cell == GRU:
            _gru_backward_step(dh, dhs[t], h_prev, gates[t], aux[t], da_ih[t], da_hh[t], dh_next)
        else:
            _rnn_backward_step(cell == RNN_RELU, dh, dhs[t], hs[t], da_ih[t], dh_next)
        for b in range(B):  # a carried step passes dh and dc straight through
            if t >= lengths[b]:
                da_ih[t, b, :] = 0.0
                da_hh[t, b, :] = 0.0
                dh_next[b, :] = dh[b, :] + dhs[t, b, :]
                dc[b, :] = dc_kept[b, :]
        np.dot(da_hh[t], w_hh, tmp)  # the recurrent GEMM, transposed
        dh_next += tmp
        dh, dh_next = dh_next, dh
    if T == 0:  # the wrapper never calls with T = 0; stay safe anyway
        return dh, dc
    # After the loop: one GEMM each for dx, dW_ih, dW_hh (in two parts: h0 and hs), one reduction per bias.
    fi, fh = da_ih.reshape(T * B, GH), da_hh.reshape(T * B, GH)
    x2, hs2 = x.reshape(T * B, I), hs.reshape(T * B, H)
    dx[:, :, :] = np.dot(fi, w_ih).reshape(T, B, I)
    dw_ih += np.dot(fi.T, x2)
    if reverse:  # h_prev(t) = hs[t+1] for t < T-1, h0 for t = T-1
        dw_hh += np.dot(fh[: (T - 1) * B].T, hs2[B:]) + np.dot(da_hh[T - 1].T, h0)
    else:  # h_prev(t) = hs[t-1] for t > 0, h0 for t = 0
        dw_hh += np.dot(fh[B:].T, hs2[: (T - 1) * B]) + np.dot(da_hh[0].T, h0)
    db_ih += fi.sum(axis=0)
    db_hh += fh.sum(axis=0)
    return dh, dc


# ------------------------------------------------------- public wrappers
def _or_empty(arrays, dtype):
    """None -> an empty 3-D array: the kernels take one array type for every cell."""
    return tuple(np.zeros((0, 0, 0), dtype) if a is None else a for a in arrays)


def _lengths_arg(lengths, T, B):
    return np.full(B, T, np.int64) if lengths is None else lengths


def recurrent_forward(cell, x, h0, c0, weights: Weights, reverse=False, lengths=None, save=True):
    """See :mod:`pyrnn.backends.contract`."""
    if x.size == 0:
        return empty_forward(cell, x, h0, c0, reverse, lengths)
    T, B, _ = x.shape
    H = h0.shape[1]
    dt = x.dtype
    lstm = cell == "lstm"
    hs = np.empty((T, B, H), dt)
    cache = tuple(np.empty(s, dt) for s in cache_shapes(cell, T, B, H))
    _, cs, gates, aux = _or_empty(kernel_views(cell, hs, cache), dt)
    c0_arg = c0 if lstm else np.zeros((B, H), dt)
    params = (np.ascontiguousarray(weights.w_ih.T), np.ascontiguousarray(weights.w_hh.T), weights.b_ih, weights.b_hh)
    _forward_kernel(CELL_CODES[cell], bool(reverse), x, _lengths_arg(lengths, T, B), (h0, c0_arg), params, (hs, cs, gates, aux))
    last = 0 if reverse else T - 1
    hT = hs[last].copy()
    cT = cs[last].copy() if lstm else None
    return hs, hT, cT, Saved(cell, bool(reverse), x, h0, c0, hs, cache, lengths)


def recurrent_backward(saved: Saved, weights: Weights, dhs, dhT, dcT, grads: Weights):
    """See :mod:`pyrnn.backends.contract`."""
    if saved.x.size == 0:
        return empty_backward(saved, dhT, dcT)
    cell, x, hs = saved.cell, saved.x, saved.hs
    dt = x.dtype
    T, B, _ = x.shape
    H = hs.shape[2]
    lstm = cell == "lstm"
    _, cs, gates, aux = _or_empty(kernel_views(cell, hs, saved.cache), dt)
    zeros = np.zeros((B, H), dt)
    c0 = saved.c0 if lstm else zeros
    dx = np.empty(x.shape, dt)
    dh0, dc0 = _backward_kernel(
        CELL_CODES[cell], saved.reverse, x, _lengths_arg(saved.lengths, T, B), (saved.h0, c0), (hs, cs, gates, aux),
        (weights.w_ih, weights.w_hh), (dhs, dhT, dcT if lstm else zeros), tuple(grads), dx,
    )
    return dx, dh0, (dc0 if lstm else None)

from .conv_numba import conv1d_backward, conv1d_forward, pool1d_backward, pool1d_forward  # noqa: E402,F401
