"""Conv1D, MaxPool1D, AvgPool1D: parity with PyTorch 2.13 on every backend (outputs and every
gradient), padding modes, a composite finite-difference check, bad inputs, get_config.

Legend: B = batch, T = time, C = input channels, O = output channels, K = kernel size.
"""

import json
import math
import zlib

import numpy as np
import pytest

import pyrnn
from pyrnn.layers.base import UnconsumedForwardWarning
from pyrnn.layers.conv import AvgPool1D, Conv1D, MaxPool1D

from gradcheck import assert_grad_close

BACKENDS = pyrnn.available_backends()
TOL = {np.float64: 1e-10, np.float32: 2e-5}


def _close(got, want, dtype, name):
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * scale, err_msg=name)


def _run(layer, x, dy, backend):
    """Forward + backward on ``backend``: output, dx and every parameter gradient by name."""
    layer.zero_grad()
    with pyrnn.use_backend(backend):
        y = layer.forward(x)
        dx = layer.backward(dy)
    return {"y": y, "dx": dx} | {f"grad {k}": g.copy() for k, g in layer.grads.items()}


# ------------------------------------------------------------------ PyTorch parity
# (B, T, C, O, K, stride, padding, dilation, bias)
CONV_CONFIGS = [
    (2, 10, 3, 4, 3, 1, 0, 1, True),
    (3, 9, 2, 5, 3, 2, 1, 2, True),
    (1, 7, 1, 1, 1, 1, 0, 1, False),
    (2, 6, 4, 3, 6, 1, 2, 1, True),  # T = K
    (2, 11, 3, 2, 2, 3, (2, 0), 1, False),
    (2, 8, 3, 4, 3, 1, "valid", 1, True),
    (2, 8, 3, 4, 3, 1, "same", 1, True),
    (2, 9, 2, 3, 2, 1, "same", 3, True),  # odd total padding (3): the extra step goes right
    (2, 8, 3, 4, 3, 1, "causal", 1, True),
    (1, 12, 2, 3, 3, 2, "causal", 3, False),
    (4, 50, 16, 32, 5, 1, "same", 1, True),  # sizes where float32 rounding accumulates
]


def _torch_conv(cfg, dtype, torch):
    B, T, C, O, K, s, p, d, bias = cfg
    if p == "same" or isinstance(p, int):
        pad, torch_p = (0, 0), p
    else:  # explicit pairs and causal: torch pads the input itself
        pad, torch_p = ((d * (K - 1), 0) if p == "causal" else ((0, 0) if p == "valid" else p)), 0
    mod = torch.nn.Conv1d(C, O, K, stride=s, padding=torch_p, dilation=d, bias=bias)
    return mod.to(torch.float64 if dtype == np.float64 else torch.float32), pad


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")  # torch's own copy
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cfg", CONV_CONFIGS, ids=lambda c: "B{}T{}C{}O{}K{}s{}-p{}-d{}".format(*c[:8]) + ("" if c[8] else "-nobias"))
def test_conv1d_matches_torch(backend, dtype, cfg):
    torch = pytest.importorskip("torch")
    B, T, C, O, K, s, p, d, bias = cfg
    torch.manual_seed(0)
    mod, pad = _torch_conv(cfg, dtype, torch)
    layer = Conv1D(C, O, K, stride=s, padding=p, dilation=d, bias=bias, dtype=dtype)
    sd = {k: v.detach().numpy() for k, v in mod.state_dict().items()}
    assert sorted(sd) == sorted(layer.state_dict())
    layer.load_state_dict(sd)

    rng = np.random.default_rng(zlib.crc32(str(cfg).encode()))
    x = rng.standard_normal((B, T, C)).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty = mod(torch.nn.functional.pad(tx.transpose(1, 2), pad)).transpose(1, 2)
    dy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    (ty * torch.tensor(dy)).sum().backward()
    want = {"y": ty.detach().numpy(), "dx": tx.grad.numpy()} | {f"grad {k}": v.grad.numpy() for k, v in mod.named_parameters()}

    got = _run(layer, x, dy, backend)
    assert got.keys() == want.keys()
    if p == "same":
        assert got["y"].shape[1] == T
    for name in want:
        assert got[name].dtype == dtype, name
        _close(got[name], want[name], dtype, f"{backend} {name}")


# (B, T, C, K, stride, padding)
POOL_CONFIGS = [(2, 10, 3, 2, None, 0), (3, 9, 2, 3, 2, 1), (1, 5, 1, 1, 1, 0), (2, 7, 4, 4, 3, 2), (2, 6, 3, 6, None, 3)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("cfg", POOL_CONFIGS, ids=lambda c: "B{}T{}C{}K{}s{}p{}".format(*c))
def test_pool1d_matches_torch(backend, dtype, kind, cfg):
    torch = pytest.importorskip("torch")
    B, T, C, K, s, p = cfg
    rng = np.random.default_rng(zlib.crc32(f"{kind}{cfg}".encode()))
    x = rng.standard_normal((B, T, C)).astype(dtype)
    mod = (torch.nn.MaxPool1d if kind == "max" else torch.nn.AvgPool1d)(K, stride=s, padding=p)
    tx = torch.tensor(x, requires_grad=True)
    ty = mod(tx.transpose(1, 2)).transpose(1, 2)
    dy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    (ty * torch.tensor(dy)).sum().backward()
    layer = (MaxPool1D if kind == "max" else AvgPool1D)(K, stride=s, padding=p)
    got = _run(layer, x, dy, backend)
    for name, want in (("y", ty.detach().numpy()), ("dx", tx.grad.numpy())):
        assert got[name].dtype == dtype, name
        _close(got[name], want, dtype, f"{backend} {kind} {name}")


@pytest.mark.parametrize("T,stride", [(9, 2), (10, 2), (7, 3), (1, 2)])
def test_same_padding_with_stride_gives_ceil_length_and_matches_torch_on_tf_split(T, stride):
    """'same' with stride > 1 (torch refuses it): U = ceil(T/s), total padding split as TensorFlow does."""
    torch = pytest.importorskip("torch")
    layer = Conv1D(2, 3, 4, stride=stride, padding="same", dilation=1, dtype=np.float64, seed=1)
    total = max((math.ceil(T / stride) - 1) * stride + 4 - T, 0)
    assert layer.padding_for(T) == (total // 2, total - total // 2)
    x = np.random.default_rng(T).standard_normal((2, T, 2))
    y = layer.forward(x)
    layer.clear_saved()
    assert y.shape == (2, math.ceil(T / stride), 3)
    tx = torch.nn.functional.pad(torch.tensor(x).transpose(1, 2), layer.padding_for(T))
    want = torch.nn.functional.conv1d(tx, torch.tensor(layer.params["weight"]), torch.tensor(layer.params["bias"]), stride=stride)
    _close(y, want.transpose(1, 2).numpy(), np.float64, "y")


def test_causal_output_does_not_see_the_future():
    layer = Conv1D(2, 3, 3, padding="causal", dilation=2, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((1, 12, 2))
    y = layer.forward(x)
    x2 = x.copy()
    x2[:, 7:] += 1.0  # change the future of t = 6
    with pytest.warns(UnconsumedForwardWarning, match="Conv1D: a training-mode forward was never followed by backward"):
        y2 = layer.forward(x2)  # the first forward's saved state is released
    assert len(layer._saved_stack) == 1
    layer.clear_saved()
    assert y.shape == (1, 12, 3)
    np.testing.assert_array_equal(y[:, :7], y2[:, :7])
    assert not np.allclose(y[:, 7:], y2[:, 7:])


# ------------------------------------------------------- finite differences through a stack
@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_then_maxpool_gradients_match_finite_differences(backend):
    conv = Conv1D(3, 4, 3, stride=1, padding="same", dilation=2, dtype=np.float64, seed=5)
    pool = MaxPool1D(3, stride=2, padding=1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 9, 3))
    dy = rng.standard_normal((2, 5, 4))

    def loss():
        with pyrnn.no_grad(), pyrnn.use_backend(backend):
            return float(np.sum(pool.forward(conv.forward(x)) * dy))

    with pyrnn.use_backend(backend):
        conv.zero_grad()
        pool.forward(conv.forward(x))
        dx = conv.backward(pool.backward(dy))
    assert_grad_close(dx, loss, x, "dx")
    for name in ("weight", "bias"):
        assert_grad_close(conv.grads[name], loss, conv.params[name], name)


# ------------------------------------------------------------------ inputs and config
def test_dtypes_follow_the_documented_rules():
    conv = Conv1D(2, 3, 2, dtype=np.float64, seed=0)
    y = conv.forward(np.ones((1, 4, 2), np.float32))  # any float is cast to the layer's dtype
    assert y.dtype == np.float64 and conv.backward(np.ones((1, 3, 3), np.float16)).dtype == np.float64
    for x, want in [(np.ones((1, 4, 2), np.float64), np.float64), (np.ones((1, 4, 2), np.float16), np.float32),
                    (np.ones((1, 4, 2), np.float32), np.float32), ([[[1.0], [2.0]]], np.float64)]:
        pool = AvgPool1D(2)
        y = pool.forward(x)
        assert y.dtype == want and pool.backward(np.ones(y.shape)).dtype == want


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch(backend):
    with pyrnn.use_backend(backend):
        for layer, C_out in ((Conv1D(3, 4, 2, seed=0), 4), (MaxPool1D(2), 3), (AvgPool1D(2), 3)):
            y = layer.forward(np.zeros((0, 6, 3), np.float32))
            assert y.shape == (0, 5 if C_out == 4 else 3, C_out)
            assert layer.backward(np.zeros(y.shape, np.float32)).shape == (0, 6, 3)


def test_no_grad_saves_nothing():
    conv = Conv1D(2, 2, 2, seed=0)
    with pyrnn.no_grad():
        conv.forward(np.ones((1, 3, 2), np.float32))
    with pytest.raises(ValueError, match=r"Conv1D.backward: expected a forward\(\) first"):
        conv.backward(np.ones((1, 2, 2), np.float32))


@pytest.mark.parametrize(
    "make, x, exc, pattern",
    [
        (lambda: Conv1D(3, 2, 2), np.ones((2, 5, 3), np.int64), TypeError, r"x: expected a floating-point array \(float32\), got dtype int64"),
        (lambda: Conv1D(3, 2, 2), np.ones((5, 3), np.float32), ValueError, r"x: expected a 3-D array \(batch, time, in_channels\), got 2-D with shape \(5, 3\)"),
        (lambda: Conv1D(3, 2, 2), np.ones((2, 5, 4), np.float32), ValueError, r"x: expected in_channels=3 channels in the last axis, got shape \(2, 5, 4\)"),
        (lambda: Conv1D(3, 2, 4, dilation=2), np.ones((2, 6, 3)), ValueError,
         r"x: expected T >= 7 time steps for kernel_size=4, dilation=2, padding=\(0, 0\), got T=6"),
        (lambda: Conv1D(3, 2, 4, padding="causal"), np.ones((2, 0, 3)), ValueError, r"x: expected T >= 1 time steps for kernel_size=4, dilation=1, padding=\(3, 0\), got T=0"),
        (lambda: MaxPool1D(4), np.ones((2, 3, 1)), ValueError, r"x: expected T >= 4 time steps for kernel_size=4, dilation=1, padding=\(0, 0\), got T=3"),
        (lambda: AvgPool1D(2), np.ones((2, 3, 1), bool), TypeError, r"x: expected a floating-point array \(float32\), got dtype bool"),
        (lambda: AvgPool1D(2), [[[1.0], [2.0, 3.0]]], TypeError, r"x: expected an array of floats, got list"),
        (lambda: MaxPool1D(2), np.ones((3, 1)), ValueError, r"x: expected a 3-D array \(batch, time, channels\), got 2-D"),
    ],
    ids=["int", "2d", "channels", "too-short", "causal-T0", "pool-too-short", "pool-bool", "pool-ragged", "pool-2d"],
)
def test_bad_inputs(make, x, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make().forward(x)


@pytest.mark.parametrize("layer", [Conv1D(3, 2, 2), MaxPool1D(2), AvgPool1D(2)], ids=["conv", "max", "avg"])
def test_bad_dy_keeps_the_forward_for_a_correct_retry(layer):
    y = layer.forward(np.ones((2, 6, 3), np.float32))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, \d, \d\) \(batch, time_out, .*\) of the last forward, got \(2, 6, 9\)"):
        layer.backward(np.ones((2, 6, 9), np.float32))
    assert layer.backward(np.ones(y.shape, np.float32)).shape == (2, 6, 3)


@pytest.mark.parametrize(
    "make, exc, pattern",
    [
        (lambda: Conv1D(0, 2, 2), ValueError, r"in_channels: expected an integer >= 1, got 0"),
        (lambda: Conv1D(3, 2, 2.0), TypeError, r"kernel_size: expected an integer, got float 2.0"),
        (lambda: Conv1D(3, 2, 2, stride=True), TypeError, r"stride: expected an integer, got bool True"),
        (lambda: Conv1D(3, 2, 2, padding="full"), ValueError, r"padding: expected one of \['valid', 'same', 'causal'\], .*got 'full'"),
        (lambda: Conv1D(3, 2, 2, padding=(1, 2, 3)), ValueError, r"padding: expected a pair \(left, right\), got \(1, 2, 3\)"),
        (lambda: Conv1D(3, 2, 2, padding=(1, -1)), ValueError, r"padding\[1\]: expected an integer >= 0, got -1"),
        (lambda: Conv1D(3, 2, 2, dtype=np.int32), TypeError, r"dtype: expected float32, float64 or 'bfloat16', got int32"),
        (lambda: MaxPool1D(3, padding=2), ValueError, r"padding: expected at most kernel_size / 2 = 1.5, got 2"),
        (lambda: AvgPool1D(2, stride=0), ValueError, r"stride: expected an integer >= 1, got 0"),
    ],
)
def test_bad_constructor_arguments(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


@pytest.mark.parametrize(
    "layer",
    [Conv1D(3, 5, 4, stride=2, padding=(1, 2), dilation=3, bias=False, dtype=np.float64, seed=4),
     Conv1D(2, 2, 3, padding="causal", seed=7), MaxPool1D(3, padding=1), AvgPool1D(4, stride=2)],
    ids=repr,
)
def test_get_config_round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))  # JSON-serialisable
    clone = type(layer)(**config)
    assert clone.get_config() == layer.get_config()
    assert clone.state_dict().keys() == layer.state_dict().keys()
    for k, v in layer.state_dict().items():  # the same seed gives the same init
        np.testing.assert_array_equal(clone.state_dict()[k], v)


def test_default_init_is_torch_bound_and_seeded():
    layer = Conv1D(4, 6, 3, seed=0)
    bound = 1 / math.sqrt(4 * 3)
    for name, shape in (("weight", (6, 4, 3)), ("bias", (6,))):
        p = layer.params[name]
        assert p.shape == shape and p.dtype == np.float32 and np.all(np.abs(p) <= bound) and np.abs(p).max() > bound / 2
    assert not np.array_equal(Conv1D(4, 6, 3, seed=1).params["weight"], layer.params["weight"])


# ------------------------------------------------------------------- dtype="bfloat16" (mixed precision)
@pytest.mark.parametrize("backend", ["cpp", "numba", "numpy"])
def test_conv1d_bfloat16_is_the_float32_conv_of_rounded_operands(backend):
    """Conv1D(dtype="bfloat16") = the float32 convolution of bf(x), bf(W) (forward) and bf(dy) (backward),
    float32 sums, the bias gradient summed from dy unrounded (an emulation: no bf16 conv kernel)."""
    if backend not in pyrnn.available_backends():
        pytest.skip(f"backend {backend!r} unavailable")
    from pyrnn.backends.bfloat16 import round_bf16

    rng = np.random.default_rng(0)
    layer = Conv1D(5, 7, 3, padding="causal", dilation=2, dtype="bfloat16", seed=0)
    ref = Conv1D(5, 7, 3, padding="causal", dilation=2, seed=0)
    assert layer.get_config()["dtype"] == "bfloat16" and "dtype=bfloat16" in repr(layer)
    x, dy = rng.standard_normal((2, 11, 5)).astype(np.float32), rng.standard_normal((2, 11, 7)).astype(np.float32)
    ref.params["weight"][...] = round_bf16(ref.params["weight"])
    with pyrnn.use_backend(backend):
        y = layer.forward(x)
        dx = layer.backward(dy)
        y_ref = ref.forward(round_bf16(x))
        dx_ref = ref.backward(round_bf16(dy))
    tol = dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, y_ref, **tol)
    np.testing.assert_allclose(dx, dx_ref, **tol)
    np.testing.assert_allclose(layer.grads["weight"], ref.grads["weight"], **tol)
    np.testing.assert_allclose(layer.grads["bias"], dy.sum((0, 1)), **tol)
    with pyrnn.no_grad():
        y32 = Conv1D(5, 7, 3, padding="causal", dilation=2, seed=0).forward(x)
    assert np.abs(y - y32).max() > 1e-4  # rounded
