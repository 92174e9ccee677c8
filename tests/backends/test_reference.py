"""The NumPy reference is the specification: check it by finite differences in float64."""

import zlib

import numpy as np
import pytest

import pyrnn

from gradcheck import numeric_grad
from helpers import CELLS, make_layer, random_problem, state_parts


def _loss(layer, x, state, dy, dstate):
    with pyrnn.use_backend("numpy"):
        y, sT = layer.forward(x, state)
    layer.clear_saved()
    return float(np.sum(y * dy) + sum(np.sum(a * b) for a, b in zip(state_parts(sT), state_parts(dstate))))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, False), (1, True), (2, True)])
def test_reference_gradients_match_finite_differences(cell, num_layers, bidirectional):
    rng = np.random.default_rng(zlib.crc32(f"{cell}{num_layers}{bidirectional}".encode()))
    layer = make_layer(cell, I=3, H=2, num_layers=num_layers, bidirectional=bidirectional, seed=1)
    x, state, dy, dstate = random_problem(layer, B=2, T=4, rng=rng)
    if cell == "rnn_relu":  # keep pre-activations away from the kink at 0
        x *= 3
    with pyrnn.use_backend("numpy"):
        layer.zero_grad()
        layer.forward(x, state)
        dx, ds0 = layer.backward(dy, dstate)

    f = lambda: _loss(layer, x, state, dy, dstate)  # noqa: E731
    checks = [("x", dx, x)] + [(f"state[{k}]", g, s) for k, (g, s) in enumerate(zip(state_parts(ds0), state_parts(state)))]
    checks += [(name, layer.grads[name], layer.params[name]) for name in layer.params]
    for name, analytic, arr in checks:
        numeric = numeric_grad(f, arr)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_gradient_checker_can_fail():
    """The check above must catch a wrong gradient: perturb one weight gradient and see it differ."""
    rng = np.random.default_rng(0)
    layer = make_layer("gru", I=2, H=2, seed=3)
    x, state, dy, dstate = random_problem(layer, B=1, T=3, rng=rng)
    with pyrnn.use_backend("numpy"):
        layer.forward(x, state)
        layer.backward(dy, dstate)
    numeric = numeric_grad(lambda: _loss(layer, x, state, dy, dstate), layer.params["weight_hh_l0"])
    wrong = layer.grads["weight_hh_l0"].copy()
    wrong[0, 0] += 1e-3
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(wrong, numeric, rtol=1e-6, atol=1e-8)
