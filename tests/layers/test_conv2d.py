"""Conv2D and ConvTranspose2D: parity with PyTorch 2.13 on every backend (outputs and every gradient)
over random and hand-picked geometries, finite differences through a stack, bad inputs named,
config round trips, the default init, and a Sequential that saves and loads bit for bit.

Legend: B = batch, H/W = height/width, C = input channels, O = output channels, G = groups,
k = kernel size, s = stride, p = padding, op = output_padding, d = dilation. Our images are
(B, H, W, C); torch runs on the (B, C, H, W) transpose.
"""

import json
import math
import zlib

import numpy as np
import pytest

import pyrnn
from pyrnn.layers import Conv2D, ConvTranspose2D, ReLU

from gradcheck import assert_grad_close

BACKENDS = pyrnn.available_backends()
TOL = {np.float64: 1e-10, np.float32: 3e-5}


pytestmark = pytest.mark.usefixtures("cpp_team_on_small_shapes")  # tests/conftest.py


def _close(got, want, dtype, name):
    assert got.dtype == dtype and got.shape == want.shape, (name, got.dtype, got.shape, want.shape)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * scale, err_msg=name)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


# ------------------------------------------------------------------ configurations
# dict(B, H, W, C, O, k, s, p, d, g, bias, dtype) for Conv2D; p: int, pair, "same" or "valid"
CONV_HAND = [
    dict(B=2, H=5, W=7, C=3, O=4, k=1, s=1, p=0, d=1, g=1),                 # 1x1 stride 1: a plain GEMM
    dict(B=2, H=4, W=3, C=4, O=6, k=1, s=1, p=0, d=1, g=2),                 # pointwise, grouped
    dict(B=2, H=6, W=5, C=4, O=4, k=3, s=1, p=1, d=1, g=4),                 # depthwise
    dict(B=1, H=7, W=6, C=3, O=6, k=(3, 2), s=(2, 1), p=(1, 0), d=1, g=3),  # depthwise, multiplier 2
    dict(B=2, H=6, W=7, C=2, O=3, k=4, s=1, p="same", d=(2, 1), g=1),       # even kernel: extra pad bottom/right
    dict(B=2, H=5, W=6, C=2, O=2, k=(3, 5), s=1, p="same", d=1, g=1),
    dict(B=2, H=6, W=6, C=3, O=2, k=2, s=1, p="valid", d=1, g=1),
    dict(B=3, H=9, W=11, C=2, O=3, k=(2, 3), s=(2, 3), p=(2, 0), d=(1, 2), g=1),
    dict(B=1, H=5, W=5, C=2, O=2, k=5, s=1, p=0, d=1, g=1),                 # kernel = image: 1x1 output
    dict(B=2, H=3, W=4, C=2, O=2, k=3, s=2, p=2, d=2, g=2),                 # windows mostly in the padding
    dict(B=4, H=14, W=13, C=16, O=32, k=3, s=1, p=1, d=1, g=1, dtype=np.float32),  # float32 rounding accumulates
]


def _random_conv_configs(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        g = int(rng.choice([1, 1, 2, 3]))
        C, O = g * int(rng.integers(1, 4)), g * int(rng.integers(1, 4))
        if i % 6 == 5:  # depthwise
            g, C = C, C
            O = C * int(rng.integers(1, 3))
        k = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        d = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        same = i % 4 == 0
        s = (1, 1) if same else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        p = "same" if same else [int(rng.integers(0, 3)), (int(rng.integers(0, 3)), int(rng.integers(0, 3)))][i % 2]
        pad = (0, 0) if same else _pair(p)
        H = max(1, d[0] * (k[0] - 1) + 1 - 2 * pad[0]) + int(rng.integers(0, 6))
        W = max(1, d[1] * (k[1] - 1) + 1 - 2 * pad[1]) + int(rng.integers(0, 6))
        out.append(dict(B=int(rng.integers(1, 4)), H=H, W=W, C=C, O=O, k=k, s=s, p=p, d=d, g=g, bias=bool(i % 3),
                        dtype=[np.float64, np.float32][i % 2]))
    return out


CONV_CONFIGS = [dict(dict(bias=True, dtype=np.float64), **c) for c in CONV_HAND] + _random_conv_configs(24, seed=2)

# dict(B, H, W, C, O, k, s, p, op, d, g, bias, dtype) for ConvTranspose2D
TRANSPOSE_HAND = [
    dict(B=2, H=4, W=5, C=3, O=2, k=3, s=2, p=1, op=1, d=1, g=1),              # the classic 2x upsampling
    dict(B=2, H=3, W=3, C=4, O=2, k=4, s=2, p=1, op=0, d=1, g=1),              # DCGAN's
    dict(B=1, H=3, W=2, C=2, O=3, k=2, s=3, p=0, op=2, d=1, g=1),              # output_padding > padding
    dict(B=2, H=3, W=4, C=2, O=2, k=2, s=1, p=(1, 0), op=(2, 1), d=3, g=1),    # output_padding >= stride (< dilation)
    dict(B=2, H=1, W=2, C=2, O=3, k=1, s=5, p=2, op=4, d=1, g=1),              # no tap lands inside: bias only
    dict(B=2, H=4, W=3, C=4, O=6, k=3, s=2, p=1, op=1, d=1, g=2),
    dict(B=2, H=5, W=4, C=3, O=3, k=3, s=1, p=1, op=0, d=1, g=3),              # depthwise
    dict(B=2, H=4, W=5, C=3, O=5, k=1, s=1, p=0, op=0, d=1, g=1),              # 1x1 stride 1: a plain GEMM
    dict(B=2, H=3, W=4, C=2, O=3, k=(2, 5), s=(1, 2), p=(0, 2), op=(0, 1), d=(2, 1), g=1),
    dict(B=4, H=9, W=8, C=16, O=24, k=3, s=2, p=1, op=1, d=1, g=1, dtype=np.float32),
]


def _random_transpose_configs(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        g = int(rng.choice([1, 1, 2]))
        C, O = g * int(rng.integers(1, 4)), g * int(rng.integers(1, 4))
        if i % 6 == 5:
            g, O = C, C
        k = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        d = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        p = [int(rng.integers(0, 3)), (int(rng.integers(0, 3)), int(rng.integers(0, 3)))][i % 2]
        op = tuple(int(rng.integers(0, max(a, b))) for a, b in zip(s, d))
        H, W = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        while any((n - 1) * si - 2 * pi + di * (ki - 1) + oi + 1 < 1
                  for n, si, pi, di, ki, oi in zip((H, W), s, _pair(p), d, k, op)):
            H, W = H + 1, W + 1
        out.append(dict(B=int(rng.integers(1, 4)), H=H, W=W, C=C, O=O, k=k, s=s, p=p, op=op, d=d, g=g, bias=bool(i % 3),
                        dtype=[np.float64, np.float32][i % 2]))
    return out


TRANSPOSE_CONFIGS = [dict(dict(bias=True, dtype=np.float64), **c) for c in TRANSPOSE_HAND] + _random_transpose_configs(24, seed=3)


def _ids(c):
    keys = [k for k in ("B", "H", "W", "C", "O", "k", "s", "p", "op", "d", "g") if k in c]
    text = "-".join(f"{k}{c[k]}".replace(" ", "") for k in keys)
    return text + ("" if c["bias"] else "-nobias") + ("-f32" if c["dtype"] == np.float32 else "")


def test_enough_configurations_cover_the_geometries():
    for configs in (CONV_CONFIGS, TRANSPOSE_CONFIGS):
        assert len(configs) >= 30
        assert {c["dtype"] for c in configs} == {np.float32, np.float64} and {c["bias"] for c in configs} == {True, False}
        assert any(c["g"] > 1 and c["g"] == c["C"] for c in configs)  # depthwise
        assert any(_pair(c["k"])[0] != _pair(c["k"])[1] for c in configs)  # non-square kernels
        assert any(max(_pair(c["s"])) > 1 for c in configs) and any(max(_pair(c["d"])) > 1 for c in configs)
        assert {max(_pair(c["k"])) for c in configs} >= {1, 2, 3, 4, 5}
    assert {"same", "valid"} <= {c["p"] for c in CONV_CONFIGS if isinstance(c["p"], str)}
    assert any(isinstance(c["p"], tuple) for c in CONV_CONFIGS) and any(isinstance(c["p"], tuple) for c in TRANSPOSE_CONFIGS)
    assert any(max(_pair(c["op"])) > max(_pair(c["p"])) for c in TRANSPOSE_CONFIGS)


# ------------------------------------------------------------------ PyTorch parity
def _parity(layer, mod, cfg, backend, torch):
    """Load torch's weights into ``layer``, run both on the same x and dy, compare y, dx and every gradient."""
    dtype = cfg["dtype"]
    mod = mod.to(torch.float64 if dtype == np.float64 else torch.float32)
    sd = {k: v.detach().numpy() for k, v in mod.state_dict().items()}
    assert sorted(sd) == sorted(layer.state_dict())
    layer.load_state_dict(sd)
    rng = np.random.default_rng(zlib.crc32(_ids(cfg).encode()))
    x = rng.standard_normal((cfg["B"], cfg["H"], cfg["W"], cfg["C"])).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty = mod(tx.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    dy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    (ty * torch.tensor(dy)).sum().backward()
    want = {"y": ty.detach().numpy(), "dx": tx.grad.numpy()} | {f"grad {k}": v.grad.numpy() for k, v in mod.named_parameters()}

    layer.zero_grad()
    with pyrnn.use_backend(backend):
        got = {"y": layer.forward(x)}
        got["dx"] = layer.backward(dy)
    got |= {f"grad {k}": g for k, g in layer.grads.items()}
    assert got.keys() == want.keys()
    for name in want:
        _close(got[name], want[name], dtype, f"{backend} {name}")
    return got


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")  # torch's own copy
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cfg", CONV_CONFIGS, ids=_ids)
def test_conv2d_matches_torch(backend, cfg):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kw = dict(stride=cfg["s"], padding=cfg["p"], dilation=cfg["d"], groups=cfg["g"], bias=cfg["bias"])
    mod = torch.nn.Conv2d(cfg["C"], cfg["O"], cfg["k"], **kw)
    got = _parity(Conv2D(cfg["C"], cfg["O"], cfg["k"], **kw, dtype=cfg["dtype"]), mod, cfg, backend, torch)
    if cfg["p"] == "same":
        assert got["y"].shape[1:3] == (cfg["H"], cfg["W"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cfg", TRANSPOSE_CONFIGS, ids=_ids)
def test_conv_transpose2d_matches_torch(backend, cfg):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kw = dict(stride=cfg["s"], padding=cfg["p"], output_padding=cfg["op"], dilation=cfg["d"], groups=cfg["g"], bias=cfg["bias"])
    mod = torch.nn.ConvTranspose2d(cfg["C"], cfg["O"], cfg["k"], **kw)
    layer = ConvTranspose2D(cfg["C"], cfg["O"], cfg["k"], **kw, dtype=cfg["dtype"])
    got = _parity(layer, mod, cfg, backend, torch)
    assert got["y"].shape[1:3] == layer.output_size(cfg["H"], cfg["W"])


def test_conv_transpose2d_with_no_tap_inside_the_output_is_its_bias():
    """stride 5, padding 2, output_padding 4, 1x1 kernel, one row: every tap lands in the cut padding."""
    layer = ConvTranspose2D(2, 3, 1, stride=5, padding=2, output_padding=4, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 1, 3, 2))
    y = layer.forward(x)
    assert y.shape == (2, 1, 11, 3) and layer._adjoint(1, 3) is None
    np.testing.assert_array_equal(y, np.broadcast_to(layer.params["bias"], y.shape))
    dx = layer.backward(np.ones_like(y))
    assert not dx.any() and not layer.grads["weight"].any()
    np.testing.assert_array_equal(layer.grads["bias"], 22.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_transpose2d_is_the_adjoint_of_conv2d(backend):
    """<Conv2D(x), y> = <x, ConvTranspose2D(y)> with the same weight (no bias), for a stride-2 geometry."""
    conv = Conv2D(3, 4, (3, 2), stride=2, padding=(1, 0), dilation=(1, 2), groups=1, bias=False, dtype=np.float64, seed=1)
    up = ConvTranspose2D(4, 3, (3, 2), stride=2, padding=(1, 0), output_padding=(0, 1), dilation=(1, 2), bias=False,
                         dtype=np.float64)
    up.load_state_dict({"weight": conv.params["weight"]})
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 7, 8, 3))
    with pyrnn.no_grad(), pyrnn.use_backend(backend):
        cx = conv.forward(x)
        y = rng.standard_normal(cx.shape)
        ty = up.forward(y)
    assert ty.shape == x.shape
    np.testing.assert_allclose(np.vdot(cx, y), np.vdot(x, ty), rtol=1e-12)


# ------------------------------------------------------- finite differences through a stack
@pytest.mark.parametrize("backend", BACKENDS)
def test_conv2d_then_transpose_gradients_match_finite_differences(backend):
    conv = Conv2D(3, 4, (3, 2), padding="same", dilation=(1, 2), groups=1, dtype=np.float64, seed=5)
    up = ConvTranspose2D(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2, dtype=np.float64, seed=6)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 5, 3))
    dy = rng.standard_normal((2, 8, 10, 2))

    def loss():
        with pyrnn.no_grad(), pyrnn.use_backend(backend):
            return float(np.sum(up.forward(conv.forward(x)) * dy))

    with pyrnn.use_backend(backend):
        conv.zero_grad()
        up.zero_grad()
        assert up.forward(conv.forward(x)).shape == dy.shape
        dx = conv.backward(up.backward(dy))
    assert_grad_close(dx, loss, x, "dx")
    for layer in (conv, up):
        for name in ("weight", "bias"):
            assert_grad_close(layer.grads[name].copy(), loss, layer.params[name], f"{type(layer).__name__} {name}")


# ------------------------------------------------------------------ inputs and config
@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch(backend):
    with pyrnn.use_backend(backend):
        for layer, out in ((Conv2D(3, 4, 3, padding=1, seed=0), (0, 6, 5, 4)),
                           (ConvTranspose2D(3, 2, 3, stride=2, padding=1, output_padding=1, seed=0), (0, 12, 10, 2))):
            y = layer.forward(np.zeros((0, 6, 5, 3), np.float32))
            assert y.shape == out
            assert layer.backward(np.zeros(y.shape, np.float32)).shape == (0, 6, 5, 3)
            assert not any(g.any() for g in layer.grads.values())


def test_dtypes_follow_the_layer():
    for layer in (Conv2D(2, 3, 2, dtype=np.float64, seed=0), ConvTranspose2D(2, 3, 2, dtype="float64", seed=0)):
        y = layer.forward(np.ones((1, 4, 4, 2), np.float32))  # any float is cast to the layer's dtype
        assert y.dtype == np.float64 and layer.backward(np.ones(y.shape, np.float16)).dtype == np.float64


def test_no_grad_saves_nothing():
    for layer in (Conv2D(2, 2, 2, seed=0), ConvTranspose2D(2, 2, 2, seed=0)):
        with pyrnn.no_grad():
            y = layer.forward(np.ones((1, 3, 3, 2), np.float32))
        with pytest.raises(ValueError, match=rf"{type(layer).__name__}.backward: expected a forward\(\) first"):
            layer.backward(np.ones(y.shape, np.float32))


@pytest.mark.parametrize(
    "make, x, exc, pattern",
    [
        (lambda: Conv2D(3, 4, 3), np.ones((2, 3, 8, 8), np.float32), ValueError,
         r"x: expected in_channels=3 channels in the last axis \(channels-last, \(batch, height, width, channels\)\), got shape "
         r"\(2, 3, 8, 8\); it looks like NCHW \(channels first\): pass x.transpose\(0, 2, 3, 1\)"),
        (lambda: Conv2D(3, 4, 3), np.ones((2, 8, 8, 5), np.float32), ValueError,
         r"x: expected in_channels=3 channels in the last axis .*got shape \(2, 8, 8, 5\)$"),
        (lambda: Conv2D(3, 4, 3), np.ones((8, 8, 3), np.float32), ValueError,
         r"x: expected a 4-D array \(batch, height, width, in_channels\), got 3-D with shape \(8, 8, 3\)"),
        (lambda: Conv2D(3, 4, 3), np.ones((1, 8, 8, 3), np.int64), TypeError, r"x: expected a floating-point array \(float32\), got dtype int64"),
        (lambda: Conv2D(3, 2, (3, 5), dilation=2), np.ones((1, 4, 9, 3)), ValueError,
         r"x: expected H >= 5 for kernel_size=\(3, 5\), dilation=\(2, 2\), padding=\(0, 0, 0, 0\) \(top, bottom, left, right\), "
         r"got H=4 \(the output would be empty\)"),
        (lambda: Conv2D(3, 2, (1, 4), padding=(0, 1)), np.ones((1, 4, 1, 3)), ValueError, r"x: expected W >= 2 for kernel_size=\(1, 4\).*got W=1"),
        (lambda: Conv2D(3, 2, 1), np.ones((1, 0, 4, 3)), ValueError, r"x: expected a height and a width >= 1, got shape \(1, 0, 4, 3\)"),
        (lambda: ConvTranspose2D(3, 2, 3), np.ones((2, 3, 8, 8), np.float32), ValueError, r"it looks like NCHW"),
        (lambda: ConvTranspose2D(1, 1, 1, padding=1), np.ones((1, 1, 1, 1)), ValueError,
         r"x: expected an input giving an output of at least 1x1, got H=1, W=1 -> -1x-1 for kernel_size=\(1, 1\)"),
        # found by the API fuzz (cpp, Conv2D#213 of seed 5): NumPy's "array is too big" from the output's np.empty
        (lambda: Conv2D(1, 1, 3, padding=2**31 - 1, dtype=np.float64), np.ones((3, 5, 4, 1)), ValueError,
         r"x: expected sizes whose zero-padded input fits in an array, got zero-padded input shape \(3, 4294967299, 4294967298, 1\)"),
        (lambda: Conv2D(4, 1, 1, padding=(2**31 - 1, 2**30)), np.ones((1, 1, 1, 4)), ValueError,
         r"x: expected sizes whose zero-padded input fits in an array, got zero-padded input shape \(1, 4294967295, 2147483649, 4\)"),
        (lambda: Conv2D(4, 1, (1, 3), padding=2**30), np.ones((0, 4, 3, 4), np.float16), ValueError,  # Conv2D#9 of seed 101
         r"x: expected sizes whose zero-padded input fits in an array, got zero-padded input shape \(0, 2147483652, 2147483651, 4\)"),
        (lambda: ConvTranspose2D(1, 2, 3, stride=2**31 - 1), np.ones((3, 5, 4, 1)), ValueError,
         r"x: expected sizes whose output fits in an array, got output shape \(3, 8589934591, 6442450944, 2\)"),
    ],
    ids=["nchw", "channels", "3d", "int", "too-small-H", "too-small-W", "H0", "transpose-nchw", "transpose-output-empty",
         "padded-input-too-big", "padded-input-too-big-pair", "padded-input-too-big-empty-batch", "transpose-output-too-big"],
)
def test_bad_inputs(make, x, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make().forward(x)


@pytest.mark.parametrize("layer", [Conv2D(3, 2, 3, padding=1), ConvTranspose2D(3, 2, 3, stride=2)], ids=["conv", "transpose"])
def test_bad_dy_keeps_the_forward_for_a_correct_retry(layer):
    y = layer.forward(np.ones((2, 5, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, \d+, \d+, 2\) \(batch, height_out, width_out, out_channels\) "
                                         r"of the last forward, got \(2, 5, 4, 3\)"):
        layer.backward(np.ones((2, 5, 4, 3), np.float32))
    assert layer.backward(np.ones(y.shape, np.float32)).shape == (2, 5, 4, 3)


@pytest.mark.parametrize(
    "make, exc, pattern",
    [
        (lambda: Conv2D(0, 2, 2), ValueError, r"in_channels: expected an integer >= 1, got 0"),
        (lambda: Conv2D(4, 6, 3, groups=4), ValueError, r"groups: expected a divisor of in_channels=4 and out_channels=6, got 4"),
        (lambda: Conv2D(4, 6, 3, groups=0), ValueError, r"groups: expected an integer >= 1, got 0"),
        (lambda: ConvTranspose2D(3, 4, 3, groups=2), ValueError, r"groups: expected a divisor of in_channels=3 and out_channels=4, got 2"),
        (lambda: Conv2D(3, 2, 3.0), TypeError, r"kernel_size: expected an integer, got float 3.0"),
        (lambda: Conv2D(3, 2, "3"), TypeError, r"kernel_size: expected an integer or a pair \(h, w\) of integers, got str '3'"),
        (lambda: Conv2D(3, 2, (3,)), ValueError, r"kernel_size: expected an integer or a pair \(h, w\), got \(3,\)"),
        (lambda: Conv2D(3, 2, 0), ValueError, r"kernel_size: expected an integer >= 1, got 0"),
        (lambda: Conv2D(3, 2, (3, 0)), ValueError, r"kernel_size\[1\]: expected an integer >= 1, got 0"),
        (lambda: Conv2D(3, 2, 3, stride=(1, True)), TypeError, r"stride\[1\]: expected an integer, got bool True"),
        (lambda: Conv2D(3, 2, 3, stride=0), ValueError, r"stride: expected an integer >= 1, got 0"),
        (lambda: Conv2D(3, 2, 3, dilation=None), TypeError, r"dilation: expected an integer or a pair \(h, w\) of integers, got NoneType"),
        (lambda: Conv2D(3, 2, 3, padding="full"), ValueError, r"padding: expected 'valid', 'same', an integer or a pair \(h, w\), got 'full'"),
        (lambda: Conv2D(3, 2, 3, padding=(1, 2, 3)), ValueError, r"padding: expected an integer or a pair \(h, w\), got \(1, 2, 3\)"),
        (lambda: Conv2D(3, 2, 3, padding=-1), ValueError, r"padding: expected an integer >= 0, got -1"),
        (lambda: Conv2D(3, 2, 3, padding=1.5), TypeError, r"padding: expected an integer, got float 1.5"),
        (lambda: Conv2D(3, 2, 3, stride=2, padding="same"), ValueError,
         r"padding: expected stride 1 for 'same' \(strided convolutions do not support it, as torch\), got stride=\(2, 2\)"),
        (lambda: Conv2D(3, 2, 3, dtype=np.int32), TypeError, r"dtype: expected float32 or float64, got int32"),
        (lambda: ConvTranspose2D(2, 2, 3, padding="same"), TypeError, r"padding: expected an integer or a pair \(h, w\) of integers, got str"),
        (lambda: ConvTranspose2D(2, 2, 3, stride=2, output_padding=2), ValueError,
         r"output_padding: expected each value smaller than max\(stride, dilation\) on its axis \(as torch\), got output_padding=\(2, 2\) "
         r"with stride=\(2, 2\), dilation=\(1, 1\) \(h: 2 >= 2\)"),
        (lambda: ConvTranspose2D(2, 2, 3, stride=(1, 2), dilation=(3, 1), output_padding=(2, 2)), ValueError, r"\(w: 2 >= 2\)"),
    ],
)
def test_bad_constructor_arguments(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


@pytest.mark.parametrize(
    "layer",
    [Conv2D(3, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=3, bias=False, dtype=np.float64, seed=4),
     Conv2D(2, 2, 3, padding="same", seed=7), Conv2D(2, 4, 1, padding="valid", seed=8),
     ConvTranspose2D(4, 2, (4, 3), stride=2, padding=(1, 0), output_padding=(1, 0), dilation=(1, 2), groups=2, seed=9),
     ConvTranspose2D(3, 3, 2, bias=False, dtype=np.float64, seed=10)],
    ids=repr,
)
def test_get_config_round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))  # JSON-serialisable
    clone = type(layer)(**config)
    assert clone.get_config() == layer.get_config() and repr(clone) == repr(layer)
    assert clone.state_dict().keys() == layer.state_dict().keys()
    for k, v in layer.state_dict().items():  # the same seed gives the same init
        np.testing.assert_array_equal(clone.state_dict()[k], v)
    again = pyrnn.layers.registry.layer_from_config(pyrnn.layers.registry.layer_config(layer))
    assert type(again) is type(layer) and again.get_config() == layer.get_config()


def test_default_init_is_torch_bound_and_seeded():
    torch = pytest.importorskip("torch")
    for layer, mod in ((Conv2D(4, 6, (3, 2), groups=2, seed=0), torch.nn.Conv2d(4, 6, (3, 2), groups=2)),
                       (ConvTranspose2D(4, 6, (3, 2), groups=2, seed=0), torch.nn.ConvTranspose2d(4, 6, (3, 2), groups=2))):
        fan_in = torch.nn.init._calculate_fan_in_and_fan_out(mod.weight)[0]  # torch's, for either layout
        bound = 1 / math.sqrt(fan_in)
        for name, p in layer.params.items():
            assert p.shape == tuple(getattr(mod, name).shape) and p.dtype == np.float32
            assert np.all(np.abs(p) <= bound) and np.abs(p).max() > bound / 2
        same = type(layer)(**layer.get_config())
        other = type(layer)(**(layer.get_config() | {"seed": 1}))
        np.testing.assert_array_equal(same.params["weight"], layer.params["weight"])
        assert not np.array_equal(other.params["weight"], layer.params["weight"])
    assert Conv2D(4, 6, 3, groups=2).params["weight"].shape == (6, 2, 3, 3)
    assert ConvTranspose2D(4, 6, 3, groups=2).params["weight"].shape == (4, 3, 3, 3)


# ------------------------------------------------------------------ models
def test_sequential_with_conv2d_saves_and_loads_bit_for_bit(tmp_path):
    model = pyrnn.Sequential([
        Conv2D(3, 8, 3, padding="same", seed=0), ReLU(),
        Conv2D(8, 8, 3, stride=2, padding=1, groups=8, seed=1), ReLU(),
        ConvTranspose2D(8, 2, 4, stride=2, padding=1, seed=2),
    ])
    model.compile(optimizer="adam", loss="mse", lr=1e-2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 8, 10, 3)).astype(np.float32)
    target = rng.standard_normal((6, 8, 10, 2)).astype(np.float32)
    model.fit(x, target, epochs=2, batch_size=3, verbose=0)
    path = tmp_path / "conv2d.ckpt"
    model.save(path)
    again = pyrnn.load(path)
    assert again.get_config() == model.get_config()
    assert again.state_dict().keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        assert again.state_dict()[k].dtype == v.dtype
        np.testing.assert_array_equal(again.state_dict()[k], v, err_msg=k)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


@pytest.mark.parametrize("backend", ["numpy", "numba", "cpp"])
def test_fused_forward_is_the_conv_batchnorm_relu_chain_in_inference(backend):
    """Inside no_grad, fused_forward(x, bn, activation) gives Conv2D -> BatchNorm2D (eval) -> ReLU/Tanh up to
    rounding, the BatchNorm folded into the weights (no bias, and grouped too), and Conv2D -> activation without a
    BatchNorm; None with gradients on or a BatchNorm in training; the layers' parameters untouched."""
    if backend not in pyrnn.available_backends():
        pytest.skip(f"{backend} is not available")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 9, 8, 4)).astype(np.float32)
    for bias, groups, activation in ((True, 1, "relu"), (False, 2, None), (True, 1, "tanh")):
        conv = Conv2D(4, 6, 3, padding=1, groups=groups, bias=bias, seed=1)
        bn = pyrnn.BatchNorm2D(6).eval()
        bn.buffers["running_mean"][...] = rng.standard_normal(6)
        bn.buffers["running_var"][...] = rng.random(6) + 0.2
        bn.params["weight"][...] = rng.standard_normal(6)
        bn.params["bias"][...] = rng.standard_normal(6)
        before = {k: v.copy() for k, v in {**conv.state_dict(), **bn.state_dict()}.items()}
        with pyrnn.use_backend(backend), pyrnn.no_grad():
            act = {"relu": ReLU(), "tanh": pyrnn.Tanh(), None: None}[activation]
            want = bn.forward(conv.forward(x))
            want = want if act is None else act.forward(want)
            np.testing.assert_allclose(conv.fused_forward(x, bn, activation), want, rtol=1e-5, atol=1e-5)
            want = conv.forward(x)
            want = want if act is None else act.forward(want)
            np.testing.assert_allclose(conv.fused_forward(x, None, activation), want, rtol=1e-6, atol=1e-6)
            assert conv.fused_forward(x, bn.train(), activation) is None
            bn.eval()
        assert conv.fused_forward(x, bn, activation) is None  # gradients on: the layers one by one
        for k, v in {**conv.state_dict(), **bn.state_dict()}.items():
            np.testing.assert_array_equal(v, before[k], err_msg=k)
