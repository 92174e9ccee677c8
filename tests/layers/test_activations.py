"""Activations: finite-difference gradients, PyTorch parity (values and gradients), dtype
following the input, extremes and NaN, bad input, configs, ``no_grad``."""

import json

import numpy as np
import pytest

from pyrnn.grad_mode import no_grad
from pyrnn.layers.activations import GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh

from gradcheck import check_layer_grads

# (id, factory, the same function in torch: f(torch, F, t))
ACTIVATIONS = [
    ("identity", Identity, lambda torch, F, t: torch.nn.Identity()(t)),
    ("relu", ReLU, lambda torch, F, t: F.relu(t)),
    ("leaky_relu", LeakyReLU, lambda torch, F, t: F.leaky_relu(t)),
    ("leaky_relu-neg", lambda: LeakyReLU(-0.3), lambda torch, F, t: F.leaky_relu(t, -0.3)),
    ("tanh", Tanh, lambda torch, F, t: torch.tanh(t)),
    ("sigmoid", Sigmoid, lambda torch, F, t: torch.sigmoid(t)),
    ("gelu", GELU, lambda torch, F, t: F.gelu(t)),
    ("gelu-tanh", lambda: GELU("tanh"), lambda torch, F, t: F.gelu(t, approximate="tanh")),
    ("softmax", Softmax, lambda torch, F, t: F.softmax(t, dim=-1)),
    ("softmax-axis0", lambda: Softmax(axis=0), lambda torch, F, t: F.softmax(t, dim=0)),
    ("softmax-axis1", lambda: Softmax(axis=1), lambda torch, F, t: F.softmax(t, dim=1)),
]
IDS = [a[0] for a in ACTIVATIONS]
ELEMENTWISE = [a for a in ACTIVATIONS if not a[0].startswith("softmax")]  # one output per input element


def _x(shape=(3, 4, 5), dtype=np.float64, seed=0):
    """Normal values kept at least 1e-3 away from 0 (the kinks of ReLU and LeakyReLU)."""
    x = 2 * np.random.default_rng(seed).standard_normal(shape)
    x[np.abs(x) < 1e-3] = 0.5
    return x.astype(dtype)


@pytest.mark.parametrize("name, make, _", ACTIVATIONS, ids=IDS)
def test_gradients_match_finite_differences(name, make, _):
    check_layer_grads(make(), (_x(),))


@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-12, 1e-14), (np.float32, 2e-6, 1e-6)], ids=["float64", "float32"])
@pytest.mark.parametrize("name, make, torch_fn", ACTIVATIONS, ids=IDS)
def test_matches_torch(name, make, torch_fn, dtype, rtol, atol):
    torch = pytest.importorskip("torch")
    x = _x(dtype=dtype, seed=1)
    dy = np.random.default_rng(2).standard_normal(x.shape).astype(dtype)
    layer = make()
    y = layer.forward(x)
    dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch_fn(torch, torch.nn.functional, tx)
    (ty * torch.tensor(dy)).sum().backward()
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=rtol, atol=atol, err_msg="y")
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=rtol, atol=atol, err_msg="dx")


def test_softmax_with_masked_entries_matches_torch():
    """-inf entries (masks) get probability 0; a fully masked row is NaN, as in PyTorch."""
    torch = pytest.importorskip("torch")
    x = _x((3, 4), seed=3)
    x[0, 1] = x[0, 3] = -np.inf
    x[2, :] = -np.inf
    layer = Softmax()
    y = layer.forward(x)
    want = torch.softmax(torch.tensor(x), dim=-1).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-12, equal_nan=True)
    assert y[0, 1] == y[0, 3] == 0 and np.isnan(y[2]).all() and np.isfinite(y[:2]).all()
    np.testing.assert_allclose(y[:2].sum(axis=-1), 1, rtol=1e-12)


@pytest.mark.parametrize("name, make, _", ACTIVATIONS, ids=IDS)
def test_dtype_follows_the_input(name, make, _):
    layer = make()
    for dtype, out in ((np.float32, np.float32), (np.float64, np.float64), (np.float16, np.float32)):
        x = _x((2, 3), dtype=dtype)
        y = layer.forward(x)
        dx = layer.backward(np.ones(x.shape, np.float64))  # dy of another width is cast
        assert y.dtype == dx.dtype == out and y.shape == dx.shape == x.shape


@pytest.mark.parametrize("name, make, _", ACTIVATIONS, ids=IDS)
def test_extremes_stay_finite_without_warnings(name, make, _):
    """Warnings are errors here: overflow in exp/square would fail the test."""
    big = np.finfo(np.float32).max
    for dtype in (np.float32, np.float64):
        x = np.array([[-big, -1e4, -88.0, 0.0, 88.0, 1e4, big]], dtype)
        layer = make()
        y = layer.forward(x)
        dx = layer.backward(np.ones_like(x))
        assert np.isfinite(y).all() and np.isfinite(dx).all(), (y, dx)


@pytest.mark.parametrize("name, make, _", ELEMENTWISE, ids=[a[0] for a in ELEMENTWISE])
def test_nan_propagates_and_stays_in_its_element(name, make, _):
    x = _x((2, 3))
    x[1, 2] = np.nan
    y = make().forward(x)
    assert np.isnan(y[1, 2]) and np.isfinite(np.delete(y.ravel(), 5)).all()


def test_relu_family_values_by_hand():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_array_equal(ReLU().forward(x), [0, 0, 0, 0.5, 3])
    np.testing.assert_array_equal(LeakyReLU(0.1).forward(x), [-0.2, -0.05, 0, 0.5, 3])
    leaky = LeakyReLU(-0.5)
    np.testing.assert_array_equal(leaky.forward(x), [1, 0.25, 0, 0.5, 3])
    np.testing.assert_array_equal(leaky.backward(np.ones(5)), [-0.5, -0.5, -0.5, 1, 1])  # torch: slope at 0


@pytest.mark.parametrize("name, make, _", ELEMENTWISE, ids=[a[0] for a in ELEMENTWISE])
def test_zero_d_and_empty_inputs_keep_their_shape(name, make, _):
    layer = make()
    for x in (np.float64(0.7), np.zeros((0, 3))):
        y = layer.forward(x)
        assert y.shape == np.shape(x) and layer.backward(np.ones(np.shape(x))).shape == np.shape(x)


def test_identity_returns_its_input():
    x = _x((2, 3))
    assert Identity().forward(x) is x


@pytest.mark.parametrize("name, make, _", ACTIVATIONS, ids=IDS)
def test_config_round_trips_through_json(name, make, _):
    layer = make()
    cfg = json.loads(json.dumps(layer.get_config()))
    again = type(layer)(**cfg)
    assert again.get_config() == layer.get_config()
    x = _x()
    np.testing.assert_array_equal(again.forward(x), layer.forward(x))
    assert repr(again) == repr(layer)


@pytest.mark.parametrize("name, make, _", ACTIVATIONS, ids=IDS)
def test_no_grad_saves_nothing(name, make, _):
    layer = make()
    with no_grad():
        layer.forward(_x())
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}.backward: expected a forward\(\) first"):
        layer.backward(np.ones((3, 4, 5)))


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: ReLU().forward(np.ones((2, 3), np.int64)), TypeError, r"x: expected a float32 or float64 array, got dtype int64"),
        (lambda: Tanh().forward([True, False]), TypeError, r"x: expected a float32 or float64 array, got dtype bool"),
        (lambda: Sigmoid().forward(np.ones(2, np.complex128)), TypeError, r"got dtype complex128"),
        (lambda: Softmax(axis=2).forward(np.ones((2, 3))), ValueError, r"x: expected an array with axis 2, got 2-D with shape \(2, 3\)"),
        (lambda: Softmax(axis=1.0), TypeError, r"axis: expected an integer, got float 1.0"),
        (lambda: LeakyReLU(float("nan")), ValueError, r"negative_slope: expected a finite number, got nan"),
        (lambda: LeakyReLU("0.1"), TypeError, r"negative_slope: expected a real number, got str '0.1'"),
        (lambda: GELU("erf"), ValueError, r"approximate: expected one of \['none', 'tanh'\], got 'erf'"),
    ],
    ids=["int", "bool", "complex", "softmax-axis", "softmax-axis-type", "slope-nan", "slope-str", "gelu-approximate"],
)
def test_bad_input_is_named(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_bad_dy_is_named_and_keeps_the_forward():
    layer = GELU()
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 3\).*got \(3, 2\)"):
        layer.backward(np.ones((3, 2)))
    with pytest.raises(TypeError, match=r"dy: expected a floating-point array \(float64\), got dtype int64"):
        layer.backward(np.ones((2, 3), np.int64))
    assert layer.backward(np.ones((2, 3))).shape == (2, 3)  # the forward was not consumed by the failures
    with pytest.raises(ValueError, match=r"expected a forward\(\) first"):
        layer.backward(np.ones((2, 3)))
