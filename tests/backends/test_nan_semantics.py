"""Non-finite gradients: every backend (and PyTorch) computes the RNN-ReLU backward as a select,
``da = h > 0 ? dh : 0``, so an inf or NaN reaching a unit where h <= 0 gives 0 there, not NaN
(``dh * (h > 0)`` would give 0 * inf = NaN). Regression: the NumPy reference multiplied."""

import numpy as np
import pytest

import pyrnn

from helpers import make_layer, run

BACKENDS = pyrnn.available_backends()
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}
B, T, I, H = 4, 6, 3, 5


def _problem(dtype, bidirectional=False, seed=0):
    """An RNN-ReLU layer, its input, and a dy that is inf, -inf or NaN exactly where h <= 0."""
    layer = make_layer("rnn_relu", I, H, bidirectional=bidirectional, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((layer.num_directions, B, H))).astype(dtype)
    with pyrnn.use_backend("numpy"), pyrnn.no_grad():
        y, _ = layer.forward(x, h0)
    dead = y <= 0  # h <= 0 (relu's output is exactly 0 there)
    assert dead.any() and (~dead).any()
    dy = rng.standard_normal(y.shape).astype(dtype)
    dy[dead] = np.resize(np.array([np.inf, np.nan, -np.inf], dtype), int(dead.sum()))
    dh = rng.standard_normal(h0.shape).astype(dtype)  # the final state's gradient stays finite
    return layer, x, h0, dy, dh


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", BACKENDS)
def test_relu_backward_ignores_non_finite_gradients_where_h_is_not_positive(backend, dtype, bidirectional):
    layer, x, h0, dy, dh = _problem(dtype, bidirectional)
    got = run(layer, x, h0, dy, dh, backend)
    for name, g in got.items():
        if name != "y":
            assert np.isfinite(g).all(), f"{backend} {name}: non-finite gradient"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_backends_agree_on_non_finite_gradients(backend, dtype):
    layer, x, h0, dy, dh = _problem(dtype, bidirectional=True, seed=1)
    want = run(layer, x, h0, dy, dh, "numpy")
    got = run(layer, x, h0, dy, dh, backend)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], err_msg=f"{backend} {name}", **TOL[dtype])


def test_reference_matches_torch_on_non_finite_gradients():
    torch = pytest.importorskip("torch")
    layer, x, h0, dy, dh = _problem(np.float64, seed=2)
    want = run(layer, x, h0, dy, dh, "numpy")
    mod = torch.nn.RNN(I, H, nonlinearity="relu", batch_first=True).to(torch.float64)
    with torch.no_grad():
        for name, p in mod.named_parameters():
            p.copy_(torch.from_numpy(layer.params[name]))
    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    y, hT = mod(tx, th0)
    torch.autograd.backward([y, hT], [torch.tensor(dy), torch.tensor(dh)])
    np.testing.assert_allclose(want["y"], y.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(want["dx"], tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(want["dstate_0[0]"], th0.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in mod.named_parameters():
        np.testing.assert_allclose(want[f"grad {name}"], p.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
