"""The Numba backend: the reference's structure as ``@njit`` loops.

Legend: T = time, B = batch, I = input, H = hidden, G = gates. Names (``xproj``, ``hproj``,
``preact``, ``tanh_c``, ``hn``): see :mod:`pyrnn.backends.contract`. Gate packing (PyTorch's):
LSTM ``i|f|g|o``, GRU ``r|z|n``.

Three layers, as in stumpy: the public ``recurrent_forward``/``recurrent_backward`` check and
allocate (through :mod:`pyrnn.backends.driver`, shared with the C++ backend, whose kernel entry
points ``_forward_entry``/``_backward_entry`` here mirror ``pyrnn._C``'s); ``_forward_kernel``/
``_backward_kernel`` run the whole time loop (the GEMMs via ``np.dot``, i.e. SciPy's BLAS, and one
pointwise step per time step); the ``_<cell>_*_step`` helpers are that pointwise step, forward and
backward side by side. Nothing runs in parallel: Numba's own threads (``prange``) on top of the
BLAS's pool oversubscribe the cores (measured far slower). JIT flags come from
``_numba_config`` only.

Speed notes. The pointwise steps are written so that LLVM vectorises them: one row view per
array and sample, and one view per gate for every stream written (stores at offsets H, 2H, ...
of one row keep the loop scalar: 10x slower), inner loops over ``range(H)`` from 0
(``range(H, 2 * H)`` measured 10x slower), constants in the arrays' own dtype (a bare ``1.0``
turns float32 arithmetic into float64: 2x slower) and, for float32, the rational tanh in
float32. xproj is written where the step reads it and leaves its output, the saved gates
(training) or hs (RNN), so no (T, B, G*H) buffer is allocated beside them; at inference
(``save=False``) it is computed a few steps at a time into a small buffer, and tanh_c or hn
live in one row of scratch. Backward writes dA over the saved gates it has just read (LSTM,
GRU), as the C++ backend does: a ``Saved`` serves one backward (see the contract).
"""

from __future__ import annotations

import numba
import numpy as np
from numba.extending import overload

from .. import _buffers
from . import driver, reference
from ._numba_config import JIT
from .contract import CELL_CODES, GATES, Saved, Weights, write_out

NAME = "numba"
RNN_TANH, RNN_RELU, LSTM, GRU = (CELL_CODES[c] for c in ("rnn_tanh", "rnn_relu", "lstm", "gru"))
_CELL_NAMES = {code: name for name, code in CELL_CODES.items()}
_CHUNK_ROWS = 512  # rows (steps x batch) of one input-projection GEMM at inference


# tanh(x) ~ x P(x^2) / Q(x^2) on [-7.9053, 7.9053], the same rational approximation (and the
# same float32 arithmetic) as the C++ kernels (csrc/common/activations.inc): branch-free, so the
# float32 loops vectorise.
@numba.njit(**JIT)
def _tanh_rational(x):
    c = np.float32(7.90531110763549805)
    x = c if x > c else x  # comparisons are false for NaN, so NaN passes through
    x = -c if x < -c else x
    x2 = x * x
    p = np.float32(-2.76076847742355e-16)
    p = p * x2 + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * x2 + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    return x * p / q


def _tanh(x):
    """tanh in the precision of x: np.tanh for float64, the rational form for float32."""
    return np.tanh(x)


@overload(_tanh)
def _tanh_typed(x):
    if x == numba.types.float32:
        return lambda x: _tanh_rational(x)
    return lambda x: np.tanh(x)


# s(z) = 1 / (1 + exp(-z)) = (tanh(z/2) + 1) / 2, which never overflows;  s'(z) = s(z)(1 - s(z))
def _sigmoid(z):
    return 0.5 * (np.tanh(0.5 * z) + 1.0)


@overload(_sigmoid)
def _sigmoid_typed(z):
    if z == numba.types.float32:
        return lambda z: np.float32(0.5) * (_tanh_rational(np.float32(0.5) * z) + np.float32(1.0))
    return lambda z: 0.5 * (np.tanh(0.5 * z) + 1.0)


# a[r, :] += b for every row r: the bias of a projection
@numba.njit(**JIT)
def _dot_tn(a, b):
    """a^T b summed over the rows K of a (K, M) and b (K, N) in an order that does not depend on the
    BLAS's thread count: the largest multiple of 32 rows, then the rest (see backends/ordered.py)."""
    K = a.shape[0]
    r = K % 32
    if r == 0 or K < 32:
        return np.dot(a.T, b)
    out = np.dot(a[: K - r].T, b[: K - r])
    out += np.dot(a[K - r :].T, b[K - r :])
    return out


@numba.njit(**JIT)
def _add_bias(a, b):
    for r in range(a.shape[0]):
        ar = a[r]
        for j in range(a.shape[1]):
            ar[j] += b[j]


# ---------------------------------------------------------------- vanilla RNN
# h = f(preact), preact = xproj + hproj, f = tanh or relu; h holds xproj on entry
@numba.njit(**JIT)
def _rnn_forward_step(relu, hproj, h):
    B, H = h.shape
    zero = h.dtype.type(0)
    for b in range(B):
        pb, hb = hproj[b], h[b]
        if relu:
            for j in range(H):
                a = hb[j] + pb[j]
                hb[j] = zero if a < zero else a  # relu(NaN) = NaN, as in PyTorch
        else:
            for j in range(H):
                hb[j] = _tanh(hb[j] + pb[j])


# tanh'(a) = 1 - h^2;  da = (dh + dhs) f'(a);  relu: da = dh + dhs where h > 0, else 0 (a select, as in
# PyTorch: a non-finite gradient where h <= 0 gives 0, not NaN)
@numba.njit(**JIT)
def _rnn_backward_step(relu, dh, dhs, h, da):
    B, H = h.shape
    zero, one = h.dtype.type(0), h.dtype.type(1)
    for b in range(B):
        db, sb, hb, ab = dh[b], dhs[b], h[b], da[b]
        if relu:
            for j in range(H):
                ab[j] = db[j] + sb[j] if hb[j] > zero else zero
        else:
            for j in range(H):
                hv = hb[j]
                ab[j] = (db[j] + sb[j]) * (one - hv * hv)


# ----------------------------------------------------------------------- LSTM
# i, f, o = s(preact_i), s(preact_f), s(preact_o);  g = tanh(preact_g);  c = f c_prev + i g;  h = o tanh(c)
# preact = xproj + hproj; ga holds xproj on entry and the gates [i|f|g|o] on return
@numba.njit(**JIT)
def _lstm_forward_step(hproj, c_prev, h, c, ga, tanh_c):
    B, H = h.shape
    for b in range(B):
        pb, gb = hproj[b], ga[b]
        gi, gf, gg, go = gb[:H], gb[H : 2 * H], gb[2 * H : 3 * H], gb[3 * H :]  # one view per stream written
        cpb, cb, tb, hb = c_prev[b], c[b], tanh_c[b], h[b]
        for j in range(H):
            i = _sigmoid(gi[j] + pb[j])
            f = _sigmoid(gf[j] + pb[H + j])
            g = _tanh(gg[j] + pb[2 * H + j])
            o = _sigmoid(go[j] + pb[3 * H + j])
            cv = f * cpb[j] + i * g
            tc = _tanh(cv)
            gi[j], gf[j], gg[j], go[j] = i, f, g, o
            cb[j], tb[j], hb[j] = cv, tc, o * tc


# dc_total = dc + dh o (1 - tanh(c)^2);  da_i = dc_total g i(1-i);  da_f = dc_total c_prev f(1-f)
# da_g = dc_total i (1 - g^2);  da_o = dh tanh(c) o(1-o);  dc_prev = dc_total f
# ga holds the gates on entry and dA on return (dh = dh_rec + dhs; nothing bypasses W_hh)
@numba.njit(**JIT)
def _lstm_backward_step(dh, dhs, dc, c_prev, tanh_c, ga):
    B, H = dh.shape
    one = dh.dtype.type(1)
    for b in range(B):
        db, sb, dcb, cpb, tb, gb = dh[b], dhs[b], dc[b], c_prev[b], tanh_c[b], ga[b]
        gi, gf, gg, go = gb[:H], gb[H : 2 * H], gb[2 * H : 3 * H], gb[3 * H :]
        for j in range(H):
            i, f, g, o = gi[j], gf[j], gg[j], go[j]
            d = db[j] + sb[j]
            tc = tb[j]
            dct = dcb[j] + d * o * (one - tc * tc)
            gi[j] = dct * g * i * (one - i)
            gf[j] = dct * cpb[j] * f * (one - f)
            gg[j] = dct * i * (one - g * g)
            go[j] = d * tc * o * (one - o)
            dcb[j] = dct * f


# ------------------------------------------------------------------------ GRU
# r = s(xproj_r + hproj_r), z = s(xproj_z + hproj_z);  hn = hproj_n;  n = tanh(xproj_n + r hn)
# h = (1 - z) n + z h_prev;  ga holds xproj on entry and the gates [r|z|n] on return; saved: gates, hn
@numba.njit(**JIT)
def _gru_forward_step(hproj, h_prev, h, ga, hn):
    B, H = h.shape
    one = h.dtype.type(1)
    for b in range(B):
        pb, gb, nb, hpb, hb = hproj[b], ga[b], hn[b], h_prev[b], h[b]
        gr, gz, gn = gb[:H], gb[H : 2 * H], gb[2 * H :]
        for j in range(H):
            r = _sigmoid(gr[j] + pb[j])
            z = _sigmoid(gz[j] + pb[H + j])
            hnv = pb[2 * H + j]
            n = _tanh(gn[j] + r * hnv)
            gr[j], gz[j], gn[j] = r, z, n
            nb[j] = hnv
            hb[j] = (one - z) * n + z * hpb[j]


# da_n = dh (1 - z)(1 - n^2);  da_z = dh (h_prev - n) z(1-z);  da_r = da_n hn r(1-r)
# input side [da_r, da_z, da_n] (over the gates in ga); hidden side [da_r, da_z, da_n r]
# dh_prev (direct) = dh z, with dh = dh_rec + dh_direct(of the step after) + dhs
@numba.njit(**JIT)
def _gru_backward_step(dh, dhs, h_prev, hn, ga, da_hh, dh_direct):
    B, H = dh.shape
    one = dh.dtype.type(1)
    for b in range(B):
        db, sb, hpb, nb, gb, hb, eb = dh[b], dhs[b], h_prev[b], hn[b], ga[b], da_hh[b], dh_direct[b]
        gr, gz, gn = gb[:H], gb[H : 2 * H], gb[2 * H :]
        hr, hz, hnn = hb[:H], hb[H : 2 * H], hb[2 * H :]
        for j in range(H):
            r, z, n = gr[j], gz[j], gn[j]
            d = db[j] + sb[j]
            dan = d * (one - z) * (one - n * n)
            daz = d * (hpb[j] - n) * z * (one - z)
            dar = dan * nb[j] * r * (one - r)
            gr[j], gz[j], gn[j] = dar, daz, dan
            hr[j], hz[j], hnn[j] = dar, daz, dan * r
            eb[j] = d * z


# ------------------------------------------------------------ the time loops
@numba.njit(**JIT)
def _forward_kernel(cell, reverse, keep, x, lengths, state0, params, cache):
    """x (T,B,I); lengths (B,) int64; state0 = (h0, c0); params = (w_ih^T (I,GH), w_hh^T (H,GH),
    b_ih, b_hh); cache = (hs, cs, gates, tanh_cs, hn), filled in place (a cell's missing arrays
    empty). With ``keep`` (training) every array has T rows; without, gates is unused and tanh_cs
    (LSTM) or hn (GRU) is one row of scratch."""
    h0, c0 = state0
    w_ih_t, w_hh_t, b_ih, b_hh = params
    hs, cs, gates, tanh_cs, hn = cache
    T, B, I = x.shape
    GH = w_hh_t.shape[1]
    # xproj, one GEMM per chunk of steps: all T at once into the gates (training) or hs (RNN),
    # where the step reads it and leaves its output; at inference (LSTM, GRU) a few steps at a
    # time into a buffer of the kernel's own that stays in cache
    rnn = cell != LSTM and cell != GRU
    chunk = T if keep or rnn else max(1, min(T, _CHUNK_ROWS // B))
    if rnn:
        xproj = hs
    elif keep:
        xproj = gates
    else:
        xproj = np.empty((chunk, B, GH), x.dtype)
    hproj = np.empty((B, GH), x.dtype)
    h_prev, c_prev = h0, c0
    lo = 0
    for s in range(T):
        t = T - 1 - s if reverse else s
        if s % chunk == 0:  # time indices [lo, lo + n) are next
            n = min(chunk, T - s)
            lo = T - s - n if reverse else s
            rows = xproj[:n].reshape(n * B, GH)
            np.dot(x[lo : lo + n].reshape(n * B, I), w_ih_t, rows)
            _add_bias(rows, b_ih)
        xt = xproj[t - lo]
        k = t if keep else 0  # the row of tanh_cs or hn for this step
        np.dot(h_prev, w_hh_t, hproj)  # the recurrent GEMM
        _add_bias(hproj, b_hh)
        if cell == LSTM:
            _lstm_forward_step(hproj, c_prev, hs[t], cs[t], xt, tanh_cs[k])
        elif cell == GRU:
            _gru_forward_step(hproj, h_prev, hs[t], xt, hn[k])
        else:
            _rnn_forward_step(cell == RNN_RELU, hproj, hs[t])
        for b in range(B):  # past a sample's length: carry its state, zero its cache
            if t >= lengths[b]:
                hs[t, b, :] = h_prev[b, :]
                if cell == LSTM:
                    cs[t, b, :] = c_prev[b, :]
                    tanh_cs[k, b, :] = 0.0
                if cell == GRU:
                    hn[k, b, :] = 0.0
                if cell == LSTM or cell == GRU:
                    xt[b, :] = 0.0
        h_prev = hs[t]
        if cell == LSTM:
            c_prev = cs[t]


@numba.njit(**JIT)
def _backward_kernel(cell, reverse, x, lengths, state0, cache, params, dout, grads, dres):
    """lengths (B,) int64; cache = (hs, cs, gates, tanh_cs, hn), gates overwritten with dA_ih;
    params = (w_ih, w_hh) in PyTorch layout; dout = (dhs, dhT, dcT); grads = (dw_ih, dw_hh, db_ih,
    db_hh), added into; dres = (dx, dh0, dc0), written (a cell's missing arrays empty)."""
    h0, c0 = state0
    hs, cs, gates, tanh_cs, hn = cache
    w_ih, w_hh = params
    dhs, dhT, dcT = dout
    dw_ih, dw_hh, db_ih, db_hh = grads
    dx, dh0, dc0 = dres
    T, B, I = x.shape
    H = h0.shape[1]
    GH = w_hh.shape[0]
    da_ih = gates if cell == LSTM or cell == GRU else np.empty((T, B, GH), x.dtype)
    da_hh = np.empty((T, B, GH), x.dtype) if cell == GRU else da_ih
    ragged = False
    for b in range(B):
        ragged = ragged or lengths[b] < T
    direct = ragged or cell == GRU  # is there a term that bypasses W_hh?
    dh, dh_next = dhT.copy(), np.empty((B, H), x.dtype)
    dh_direct = np.zeros((B, H), x.dtype)
    dc, dc_kept = dcT.copy(), np.empty((B, H), x.dtype)
    for k in range(T - 1, -1, -1):
        t = T - 1 - k if reverse else k
        tp = t + 1 if reverse else t - 1  # time index of the previous step
        if ragged and cell == LSTM:
            dc_kept[:, :] = dc
        h_prev = h0 if k == 0 else hs[tp]
        if cell == LSTM:
            c_prev = c0 if k == 0 else cs[tp]
            _lstm_backward_step(dh, dhs[t], dc, c_prev, tanh_cs[t], da_ih[t])
        elif cell == GRU:
            _gru_backward_step(dh, dhs[t], h_prev, hn[t], da_ih[t], da_hh[t], dh_direct)
        else:
            _rnn_backward_step(cell == RNN_RELU, dh, dhs[t], hs[t], da_ih[t])
        if ragged:
            for b in range(B):  # a carried step passes dh and dc straight through
                if t >= lengths[b]:
                    da_ih[t, b, :] = 0.0
                    da_hh[t, b, :] = 0.0
                    dh_direct[b, :] = dh[b, :] + dhs[t, b, :]
                    if cell == LSTM:
                        dc[b, :] = dc_kept[b, :]
                elif cell != GRU:
                    dh_direct[b, :] = 0.0
        np.dot(da_hh[t], w_hh, dh_next)  # the recurrent GEMM, transposed
        if direct:
            for b in range(B):
                nb, eb = dh_next[b], dh_direct[b]
                for j in range(H):
                    nb[j] += eb[j]
        dh, dh_next = dh_next, dh
    # After the loop: one GEMM each for dx, dW_ih, dW_hh (in two parts: h0 and hs), one reduction per bias.
    fi, fh = da_ih.reshape(T * B, GH), da_hh.reshape(T * B, GH)
    x2, hs2 = x.reshape(T * B, I), hs.reshape(T * B, H)
    np.dot(fi, w_ih, dx.reshape(T * B, I))
    dw_ih += _dot_tn(fi, x2)
    if reverse:  # h_prev(t) = hs[t+1] for t < T-1, h0 for t = T-1
        dw_hh += _dot_tn(fh[: (T - 1) * B], hs2[B:]) + _dot_tn(da_hh[T - 1], h0)
    else:  # h_prev(t) = hs[t-1] for t > 0, h0 for t = 0
        dw_hh += _dot_tn(fh[B:], hs2[: (T - 1) * B]) + _dot_tn(da_hh[0], h0)
    ones = np.ones(T * B, x.dtype)  # column sums as GEMVs
    db_ih += np.dot(ones, fi)
    db_hh += np.dot(ones, fh)
    dh0[:, :] = dh
    if cell == LSTM:
        dc0[:, :] = dc


# ------------------------------------------------ the kernel entry points
# pyrnn._C's signatures (see driver.py): check what the compiled loops would not, fill in the
# arrays a cell does not have (one array type per argument: one compiled signature per dtype)
def _check(x, arrays, lengths):
    """Every array against its expected shape (None: a cell without it) and x's dtype, as _C checks
    them: the compiled loops check no bounds."""
    for name, (a, shape) in arrays.items():
        if shape is None:
            continue
        if type(a) is not np.ndarray or a.dtype != x.dtype or a.shape != shape or not a.flags.c_contiguous:
            what = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"{name}: expected a C-contiguous {x.dtype} array of shape {shape}, got {what}")
    T, B = x.shape[:2]
    if lengths is not None and (lengths.shape != (B,) or lengths.dtype != np.int64 or np.any((lengths < 0) | (lengths > T))):
        raise ValueError(f"lengths: expected {B} int64 values in [0, {T}], got {lengths!r}")


def _shapes(cell_code, x, h0, keep):
    """name -> expected shape (None where the cell has no such array) for one call."""
    if type(x) is not np.ndarray or x.ndim != 3 or x.dtype not in (np.float32, np.float64) or not x.flags.c_contiguous:
        what = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"x: expected a C-contiguous float32 or float64 array (T, B, I), got {what}")
    T, B, I = x.shape
    H = h0.shape[-1] if h0.ndim == 2 else -1
    GH = GATES[_CELL_NAMES[cell_code]] * H
    lstm, gru = cell_code == LSTM, cell_code == GRU
    seq, bh = (T, B, H), (B, H)
    return dict(
        h0=bh, c0=bh if lstm else None, w_ih=(GH, I), w_hh=(GH, H), b_ih=(GH,), b_hh=(GH,),
        hs=seq, cs=seq if lstm else None, gates=(T, B, GH) if keep and (lstm or gru) else None,
        tanh_cs=seq if keep and lstm else None, hn=seq if keep and gru else None,
        dhs=seq, dhT=bh, dcT=bh if lstm else None, dw_ih=(GH, I), dw_hh=(GH, H), db_ih=(GH,), db_hh=(GH,),
        dx=(T, B, I), dh0=bh, dc0=bh if lstm else None,
    )


def _filled(arrays, dtype, shape=(0, 0, 0)):
    """None -> an empty array: the loops take one array type for every cell."""
    return tuple(np.zeros(shape, dtype) if a is None else a for a in arrays)


def _lengths_arg(lengths, T, B):
    return np.full(B, T, np.int64) if lengths is None else lengths


_CACHE = ("hs", "cs", "gates", "tanh_cs", "hn")


def _forward_entry(cell_code, reverse, x, lengths, state0, weights, cache):
    hs, cs, gates, tanh_cs, hn = cache
    keep = gates is not None
    shapes = _shapes(cell_code, x, state0[0], keep)
    named = zip(("h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh") + _CACHE, tuple(state0) + tuple(weights) + tuple(cache))
    _check(x, {name: (a, shapes[name]) for name, a in named}, lengths)
    T, B, _ = x.shape
    dt = x.dtype
    if not keep:  # inference: tanh_c or hn lives in one row of scratch
        scratch = np.empty((1,) + hs.shape[1:], dt)
        tanh_cs = scratch if cell_code == LSTM else None
        hn = scratch if cell_code == GRU else None
    w_ih, w_hh, b_ih, b_hh = weights
    params = (np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), b_ih, b_hh)
    _forward_kernel(cell_code, bool(reverse), keep, x, _lengths_arg(lengths, T, B), _filled(state0, dt, hs.shape[1:]),
                    params, _filled((hs, cs, gates, tanh_cs, hn), dt))


def _backward_entry(cell_code, reverse, x, lengths, state0, cache, weights, dout, grads, dres):
    shapes = _shapes(cell_code, x, state0[0], True)
    names = ("h0", "c0") + _CACHE + ("w_ih", "w_hh", "b_ih", "b_hh", "dhs", "dhT", "dcT") + \
        ("dw_ih", "dw_hh", "db_ih", "db_hh", "dx", "dh0", "dc0")
    arrays = tuple(state0) + tuple(cache) + tuple(weights) + tuple(dout) + tuple(grads) + tuple(dres)
    _check(x, {name: (a, shapes[name]) for name, a in zip(names, arrays)}, lengths)
    T, B, _ = x.shape
    dt = x.dtype
    bh = state0[0].shape
    _backward_kernel(cell_code, bool(reverse), x, _lengths_arg(lengths, T, B), _filled(state0, dt, bh),
                     _filled(cache, dt), (weights[0], weights[1]), _filled(dout, dt, bh), tuple(grads),
                     _filled(dres, dt, bh))


# ------------------------------------------------------- public functions
def recurrent_forward(cell, x, h0, c0, weights: Weights, reverse=False, lengths=None, save=True, bf16=False, out=None):
    """See :mod:`pyrnn.backends.contract`; ``save=False`` keeps no cache (inference). This backend
    has no bfloat16 loops: ``bf16=True`` runs the NumPy specification (slow, exact semantics)."""
    if bf16:
        return reference.recurrent_forward(cell, x, h0, c0, weights, reverse, lengths, save, bf16=True, out=out)
    hs, hT, cT, saved = driver.recurrent_forward(_forward_entry, cell, x, h0, c0, weights, reverse, lengths, save)
    return write_out(out, hs), hT, cT, saved


def recurrent_backward(saved: Saved, weights: Weights, dhs, dhT, dcT, grads: Weights, out=None):
    """See :mod:`pyrnn.backends.contract`. Overwrites ``saved``'s gates with dA (one backward per forward)."""
    if saved.bf16:  # its forward ran the NumPy specification (see recurrent_forward)
        return reference.recurrent_backward(saved, weights, dhs, dhT, dcT, grads, out)
    if isinstance(dhs, np.ndarray) and not dhs.flags.c_contiguous:  # the loops take C order (a view, say)
        contiguous = _buffers.empty(dhs.shape, dhs.dtype)
        np.copyto(contiguous, dhs)
        dhs = contiguous
    return driver.recurrent_backward(_backward_entry, saved, weights, dhs, dhT, dcT, grads, out)


# the activations: the NumPy reference (one NumPy pass each; the cpp backend has the vectorised kernels)
from .activation_reference import activation_backward, activation_forward  # noqa: E402,F401

# concatenation: the NumPy reference (a copy; the cpp backend's is the team's)
from .concat_reference import concat_last, split_last  # noqa: E402,F401
from .conv2d_numba import conv2d_backward, conv2d_forward  # noqa: E402,F401
from .conv_numba import conv1d_backward, conv1d_forward, pool1d_backward, pool1d_forward  # noqa: E402,F401
from .norm_numba import batchnorm_backward, batchnorm_forward  # noqa: E402,F401
from .pool2d_numba import pool2d_backward, pool2d_forward, upsample2d_backward, upsample2d_forward  # noqa: E402,F401
