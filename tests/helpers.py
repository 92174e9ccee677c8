"""Shared test helpers: layer construction, random inputs, loss-weighted backward, the C++ kernels'
instruction set and thread team."""

from __future__ import annotations

import contextlib

import numpy as np

import pyrnn

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")


def make_layer(cell, I, H, num_layers=1, bidirectional=False, dtype=np.float64, seed=0, bias=True):
    if cell.startswith("rnn_"):
        return pyrnn.RNN(I, H, num_layers, bidirectional, bias, dtype, seed, nonlinearity=cell[4:])
    cls = {"lstm": pyrnn.LSTM, "gru": pyrnn.GRU}[cell]
    return cls(I, H, num_layers, bidirectional, bias, dtype, seed)


def random_problem(layer, B, T, rng):
    """x, a non-zero initial state, and upstream gradients for y and the final state."""
    dt = layer.dtype
    LD = layer.num_layers * layer.num_directions
    H = layer.hidden_size
    x = rng.standard_normal((B, T, layer.input_size)).astype(dt)
    h0 = (0.5 * rng.standard_normal((LD, B, H))).astype(dt)
    dy = rng.standard_normal((B, T, layer.num_directions * H)).astype(dt)
    dh = rng.standard_normal((LD, B, H)).astype(dt)
    if layer.cell == "lstm":
        c0 = (0.5 * rng.standard_normal((LD, B, H))).astype(dt)
        dc = rng.standard_normal((LD, B, H)).astype(dt)
        return x, (h0, c0), dy, (dh, dc)
    return x, h0, dy, dh


def state_parts(state):
    return list(state) if isinstance(state, tuple) else [state]


def run(layer, x, state, dy, dstate, backend):
    """Forward + backward on ``backend``; returns every output and gradient by name."""
    layer.zero_grad()
    with pyrnn.use_backend(backend):
        y, sT = layer.forward(x, state)
        dx, ds0 = layer.backward(dy, dstate)
    out = {"y": y, "dx": dx}
    for k, a in enumerate(state_parts(sT)):
        out[f"state_T[{k}]"] = a
    for k, a in enumerate(state_parts(ds0)):
        out[f"dstate_0[{k}]"] = a
    for name, g in layer.grads.items():
        out[f"grad {name}"] = g.copy()
    return out


class LastFinite:
    """A callback keeping the weights after every batch whose loss and gradient norm were finite,
    and every batch's logs."""

    model = None

    def __init__(self):
        self.weights, self.logs = None, []

    def on_batch_end(self, batch, logs):
        self.logs.append(dict(logs))
        if all(np.isfinite(v) for v in logs.values()):
            self.weights = self.model.state_dict()


def assert_weights_are(model, weights):
    """Every weight of ``model`` finite and equal to ``weights``."""
    for name, value in model.state_dict().items():
        assert np.isfinite(value).all(), name
        np.testing.assert_array_equal(value, weights[name], err_msg=name)


def cpp_isas():
    """The instruction sets the C++ kernels have on this CPU ([] without the cpp backend)."""
    try:
        from pyrnn import _C
    except ImportError:  # pragma: no cover - a plain install builds it
        return []
    return _C.supported_isas()


@contextlib.contextmanager
def cpp_team(threads, isa=None, min_flops=0):
    """The C++ kernels on at most `threads` threads, in `isa` (None: as they are); `min_flops` is the work
    below which a kernel runs on one thread (0: the team even on tiny shapes, and on a busy machine too;
    None: the default). Everything is restored afterwards, a pending test interrupt included."""
    from pyrnn import _C

    before = _C.get_num_threads(), _C._parallel_min_flops(), _C.isa()
    _C.set_num_threads(threads)
    if min_flops is not None:
        _C._set_parallel_min_flops(min_flops)
    if min_flops == 0:
        _C._set_others_running(0)  # the team's code runs whatever else the machine runs
    if isa is not None:
        _C.set_isa(isa)
    try:
        yield
    finally:
        _C._interrupt_next_kernel(0)
        _C._set_others_running(-1)
        _C.set_num_threads(before[0])
        _C._set_parallel_min_flops(before[1])
        _C.set_isa(before[2])


# ------------------------------------------------------------ conv2d (tests/backends/test_conv2d_*.py)
#: a fast backend's conv2d against the reference
CONV2D_TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-6)}


def conv2d_step(kernels, x, w, b, dy, geom):
    """{"y", "dx", "dw"[, "db"]} of one forward and backward on ``kernels`` (a backend module); dw and
    db start at 0.5 and 0.25, not zero: the kernels must add into them."""
    from pyrnn.backends.contract import Conv2dSaved

    y, saved = kernels.conv2d_forward(x, w, b, *geom)
    assert isinstance(saved, Conv2dSaved) and saved.x is x and saved.x_shape == x.shape
    dw = np.full(w.shape, 0.5, w.dtype)
    db = None if b is None else np.full(b.shape, 0.25, b.dtype)
    dx = kernels.conv2d_backward(saved, dy, dw, db)
    return {"y": y, "dx": dx, "dw": dw} | ({} if db is None else {"db": db})


def conv2d_close(got, want, dtype, name):
    """got == want within CONV2D_TOL, atol relative to want's largest magnitude."""
    assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, got.shape, want.shape)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    tol = CONV2D_TOL[np.dtype(dtype).type]
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=name)


def in_forked_child(target, *args, timeout=120):
    """``target(*args, queue)`` in a fork()ed child (skips where there is no fork) -> ``(what it put on
    the queue, the child's exit code)``."""
    import multiprocessing as mp

    import pytest

    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork on this platform")
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    got = q.get(timeout=timeout)
    p.join(timeout=60)
    return got, p.exitcode
