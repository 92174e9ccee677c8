"""Dilated recurrent layers: d = 1 is the plain layer bit for bit; d > 1 equals the plain layer run
separately on every phase x[:, p::d] and interleaved; finite-difference gradients (float64);
lengths, bidirectional, stacking, models, configs and bad input."""

import json

import numpy as np
import pytest

import pyrnn
from pyrnn.layers import Dense, TimeDistributed
from pyrnn.layers.dilated import Dilated

from gradcheck import assert_grad_close
from helpers import make_layer, random_problem, state_parts


def _pack(layer, parts):
    return tuple(parts) if layer.cell == "lstm" else parts[0]


def _forward_backward(layer, x, state, dy, dstate, lengths=None):
    layer.zero_grad()
    y, sT = layer.forward(x, state, lengths=lengths)
    dx, ds0 = layer.backward(dy, dstate)
    return y, state_parts(sT), dx, state_parts(ds0), {k: g.copy() for k, g in layer.grads.items()}


def _naive(plain, x, state, dy, dstate, lengths, d):
    """The dilated layer by definition: the plain layer on each phase x[:, p::d] from the same initial
    state; the final state of a forward direction from the phase holding the last valid step, of a
    reverse direction from phase 0; gradients summed over phases."""
    B, T = x.shape[:2]
    lengths = np.full(B, T) if lengths is None else lengths
    D = plain.num_directions
    LD = plain.num_layers * D
    y = np.zeros(x.shape[:2] + (D * plain.hidden_size,))
    dx = np.zeros_like(x)
    sT = [np.zeros_like(s) for s in state_parts(state)]
    ds0 = [np.zeros_like(s) for s in state_parts(state)]
    grads = {k: np.zeros_like(g) for k, g in plain.grads.items()}
    for p in range(d):
        n_p = np.array([len(range(p, l, d)) for l in lengths])  # valid steps of phase p
        owner = np.array([[(l - 1) % d == p if (l > 0 and k % D == 0) else p == 0 for l in lengths] for k in range(LD)])
        dstate_p = [np.where(owner[:, :, None], g, 0) for g in state_parts(dstate)]
        yp, sp, dxp, ds0p, gp = _forward_backward(plain, x[:, p::d], state, dy[:, p::d], _pack(plain, dstate_p), n_p)
        y[:, p::d], dx[:, p::d] = yp, dxp
        for k in range(len(sT)):
            sT[k] = np.where(owner[:, :, None], sp[k], sT[k])
            ds0[k] += ds0p[k]
        for k in grads:
            grads[k] += gp[k]
    return y, sT, dx, ds0, grads


def _assert_same(got, want, exact):
    def check(a, b, err_msg):
        if exact:
            np.testing.assert_array_equal(a, b, err_msg=err_msg)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12, err_msg=err_msg)

    for name, a, b in zip(("y", "state", "dx", "dstate0"), got[:4], want[:4]):
        for k, (u, v) in enumerate(zip(a, b) if isinstance(a, list) else [(a, b)]):
            check(u, v, err_msg=f"{name}[{k}]")
    assert got[4].keys() == want[4].keys()
    for k in want[4]:
        check(got[4][k], want[4][k], err_msg=f"grad {k}")


# ---------------------------------------------------------------- equivalences
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_dilation_1_is_the_plain_layer_bit_for_bit(cell, bidirectional, with_lengths):
    plain = make_layer(cell, 3, 4, num_layers=2, bidirectional=bidirectional, seed=1)
    dilated = Dilated(make_layer(cell, 3, 4, num_layers=2, bidirectional=bidirectional, seed=1), 1)
    x, state, dy, dstate = random_problem(plain, B=3, T=6, rng=np.random.default_rng(2))
    lengths = np.array([6, 0, 4]) if with_lengths else None
    _assert_same(_forward_backward(dilated, x, state, dy, dstate, lengths),
                 _forward_backward(plain, x, state, dy, dstate, lengths), exact=True)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
@pytest.mark.parametrize("d, T", [(3, 9), (3, 10), (2, 7), (4, 3)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_dilation_d_equals_the_plain_layer_on_each_phase(cell, d, T, bidirectional):
    plain = make_layer(cell, 3, 4, num_layers=2, bidirectional=bidirectional, seed=3)
    dilated = Dilated(make_layer(cell, 3, 4, num_layers=2, bidirectional=bidirectional, seed=3), d)
    x, state, dy, dstate = random_problem(plain, B=4, T=T, rng=np.random.default_rng(d * 10 + T))
    for lengths in (None, np.array([T, 0, 1, max(T - 2, 0)])):
        got = _forward_backward(dilated, x, state, dy, dstate, lengths)
        _assert_same(got, _naive(plain, x, state, dy, dstate, lengths, d), exact=False)
        if lengths is not None:  # outputs past a sample's length are 0, as for the plain layer
            assert not got[0][2, 1:].any() and not got[0][1].any()


def test_dilated_recurrence_reads_h_t_minus_d():
    """An RNN with identity-like weights sums its inputs along its phase: h_t = x_t + h_{t-d} (relu, positive x)."""
    rnn = pyrnn.RNN(1, 1, nonlinearity="relu", bias=False, dtype=np.float64)
    rnn.load_state_dict({"weight_ih_l0": [[1.0]], "weight_hh_l0": [[1.0]]})
    x = np.arange(1.0, 8.0)[None, :, None]
    y, h = Dilated(rnn, 3).forward(x)
    np.testing.assert_array_equal(y.ravel(), [1, 2, 3, 1 + 4, 2 + 5, 3 + 6, 1 + 4 + 7])
    np.testing.assert_array_equal(h.ravel(), [12])  # the state after t = 6, the last step


# --------------------------------------------------------- finite differences
@pytest.mark.parametrize("cell, d, bidirectional", [("lstm", 2, False), ("gru", 3, False), ("lstm", 3, True), ("gru", 2, True)])
def test_gradients_match_finite_differences(cell, d, bidirectional):
    layer = Dilated(make_layer(cell, 2, 3, bidirectional=bidirectional, seed=5), d)
    x, state, dy, dstate = random_problem(layer.layer, B=3, T=7, rng=np.random.default_rng(6))  # 7 is no multiple of d
    lengths = np.array([7, 2, 5])
    _, _, dx, ds0, grads = _forward_backward(layer, x, state, dy, dstate, lengths)
    dparts = state_parts(dstate)

    def f():
        with pyrnn.no_grad():
            y, sT = layer.forward(x, state, lengths=lengths)
        return float(np.sum(y * dy) + sum(np.sum(a * b) for a, b in zip(state_parts(sT), dparts)))

    assert_grad_close(dx, f, x, "x")
    for k, (g, s) in enumerate(zip(ds0, state_parts(state))):
        assert_grad_close(g, f, s, f"state[{k}]")
    for name, p in layer.params.items():
        assert_grad_close(grads[name], f, p, name)


# ------------------------------------------------------------------- models
def test_stacked_dilations_train_in_fit():
    """Predict x[t-6]: a delay the d = 4 layer spans in two of its steps; the loss must drop 20-fold."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 24, 1)).astype(np.float32)
    y = np.zeros_like(x)
    y[:, 6:] = x[:, :-6]
    model = pyrnn.Sequential([Dilated(pyrnn.GRU(1, 16, seed=1), 1), Dilated(pyrnn.GRU(16, 16, seed=2), 4),
                              TimeDistributed(Dense(16, 1, seed=3))])
    model.compile("adam", "mse", lr=1e-2)
    loss = model.fit(x, y, epochs=30, batch_size=16, seed=0, verbose=0).history["loss"]
    assert loss[-1] < 0.05 * loss[0]


def test_dilated_in_a_functional_model_with_states_and_lengths():
    rng = np.random.default_rng(7)
    x_in, h_in, lengths = pyrnn.Input(), pyrnn.Input(), pyrnn.Input(dtype="int64")
    layer = Dilated(pyrnn.GRU(2, 3, dtype=np.float64, seed=8), 2)
    y, h = layer(x_in, initial_state=h_in, lengths=lengths)
    model = pyrnn.Model([x_in, h_in, lengths], [y, h])
    x, h0, n = rng.standard_normal((2, 5, 2)), rng.standard_normal((1, 2, 3)), np.array([5, 3])
    y_m, h_m = model.forward(x, h0, n)
    y_l, h_l = Dilated(pyrnn.GRU(2, 3, dtype=np.float64, seed=8), 2).forward(x, h0, lengths=n)
    np.testing.assert_array_equal(y_m, y_l)
    np.testing.assert_array_equal(h_m, h_l)
    dy, dh = rng.standard_normal(y_m.shape), rng.standard_normal(h_m.shape)
    dx, dh0, dn = model.backward(dy, dh)
    assert dx.shape == x.shape and dh0.shape == h0.shape and dn is None


def test_params_are_the_wrapped_layers_and_train_eval_reach_it():
    inner = pyrnn.LSTM(2, 3, num_layers=2, dropout=0.5, seed=0)
    layer = Dilated(inner, 2)
    assert layer.params is inner.params and layer.grads is inner.grads
    layer.eval()
    assert not inner.training
    layer.train()
    assert inner.training and layer.rng_state() == inner.rng_state()


def test_config_round_trips_alone_and_in_a_sequential():
    layer = Dilated(pyrnn.LSTM(2, 3, bidirectional=True, seed=4, forget_bias=1.0), 3)
    cfg = json.loads(json.dumps(layer.get_config()))
    assert cfg == {"layer": {"class": "LSTM", "config": layer.layer.get_config()}, "dilation": 3}
    again = Dilated.from_config(cfg)
    assert again.dilation == 3 and again.get_config() == cfg
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(again.params[k], v)
    assert pyrnn.layers.Dilated is Dilated  # from_config finds layer classes in pyrnn.layers
    model = pyrnn.Sequential([layer, TimeDistributed(Dense(6, 1, seed=5))])
    rebuilt = pyrnn.Sequential.from_config(json.loads(json.dumps(model.get_config())))
    rebuilt.load_state_dict(model.state_dict())
    x = np.random.default_rng(1).standard_normal((2, 8, 2)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt.predict(x), model.predict(x))


def test_empty_batch_and_empty_sequence():
    layer = Dilated(pyrnn.LSTM(2, 3, dtype=np.float64, seed=0), 3)
    h0 = (np.ones((1, 2, 3)), 2 * np.ones((1, 2, 3)))
    y, (h, c) = layer.forward(np.zeros((2, 0, 2)), h0)
    assert y.shape == (2, 0, 3)
    np.testing.assert_array_equal(h, h0[0])
    np.testing.assert_array_equal(c, h0[1])
    dx, (dh0, dc0) = layer.backward(np.zeros((2, 0, 3)), (np.ones((1, 2, 3)), np.ones((1, 2, 3))))
    assert dx.shape == (2, 0, 2)
    np.testing.assert_array_equal(dh0, 1)
    y, _ = layer.forward(np.zeros((0, 5, 2)))
    assert y.shape == (0, 5, 3)


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("d, exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)])
def test_bad_dilation_raises(d, exc):
    with pytest.raises(exc, match=r"dilation: expected an integer( >= 1)?, got"):
        Dilated(pyrnn.GRU(2, 3), d)


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="layer: expected an RNN, LSTM or GRU layer, got Dense"):
        Dilated(Dense(2, 3), 2)
    layer = Dilated(pyrnn.GRU(2, 3), 2)
    with pytest.raises(ValueError, match=r"x: expected a 3-D array \(batch, time, input_size\), got 2-D"):
        layer.forward(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"x: expected input_size=2 features in the last axis, got shape \(1, 4, 3\)"):
        layer.forward(np.zeros((1, 4, 3)))
    with pytest.raises(ValueError, match=r"state: expected shape \(1, 1, 3\)"):
        layer.forward(np.zeros((1, 4, 2)), np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match=r"lengths\[0\]: expected a value in \[0, 4\]"):
        layer.forward(np.zeros((1, 4, 2)), lengths=np.array([5]))
    with pytest.raises(ValueError, match="expected a forward"):
        layer.backward(np.zeros((1, 4, 3)))
    layer.forward(np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(1, 4, 3\)"):
        layer.backward(np.zeros((1, 5, 3)))
    with pytest.raises(ValueError, match=r"dstate: expected shape \(1, 1, 3\)"):
        layer.backward(np.zeros((1, 4, 3)), np.zeros((2, 1, 3)))
    dx, dh0 = layer.backward(np.zeros((1, 4, 3)))  # the failed calls consumed nothing
    assert dx.shape == (1, 4, 2) and dh0.shape == (1, 1, 3)
