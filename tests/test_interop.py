"""Weights from Keras (gate reordering done for the user) and to/from PyTorch."""

import numpy as np
import pytest

import pyrnn
from pyrnn import interop


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def keras_lstm(x, kernel, recurrent_kernel, bias):
    """Keras' LSTM written from its documentation: gates i, f, c, o in the kernel's columns."""
    B, T, _ = x.shape
    H = recurrent_kernel.shape[0]
    h, c, ys = np.zeros((B, H)), np.zeros((B, H)), []
    for t in range(T):
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        i, f, cc, o = (z[:, k * H : (k + 1) * H] for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(cc)
        h = _sigmoid(o) * np.tanh(c)
        ys.append(h)
    return np.stack(ys, 1), h, c


def keras_gru(x, kernel, recurrent_kernel, bias):
    """Keras' GRU with reset_after=True: gates z, r, h; bias rows = (input, recurrent)."""
    B, T, _ = x.shape
    H = recurrent_kernel.shape[0]
    h, ys = np.zeros((B, H)), []
    for t in range(T):
        xi = x[:, t] @ kernel + bias[0]
        hh = h @ recurrent_kernel + bias[1]
        z = _sigmoid(xi[:, :H] + hh[:, :H])
        r = _sigmoid(xi[:, H : 2 * H] + hh[:, H : 2 * H])
        hc = np.tanh(xi[:, 2 * H :] + r * hh[:, 2 * H :])
        h = z * h + (1 - z) * hc
        ys.append(h)
    return np.stack(ys, 1), h


def test_keras_lstm_weights_reproduce_keras():
    rng = np.random.default_rng(0)
    I, H = 3, 4
    kernel, rk, bias = rng.standard_normal((I, 4 * H)), rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H)
    x = rng.standard_normal((2, 6, I))
    layer = pyrnn.LSTM(I, H, dtype=np.float64)
    layer.load_state_dict(interop.keras_lstm_weights(kernel, rk, bias))
    y, (h, c) = layer.forward(x)
    ky, kh, kc = keras_lstm(x, kernel, rk, bias)
    np.testing.assert_allclose(y, ky, rtol=1e-12)
    np.testing.assert_allclose(h[0], kh, rtol=1e-12)
    np.testing.assert_allclose(c[0], kc, rtol=1e-12)


@pyrnn.no_grad()  # forwards to compare, no backward
def test_keras_gru_weights_reorder_z_r_h_to_r_z_n():
    rng = np.random.default_rng(1)
    I, H = 3, 5
    kernel, rk, bias = rng.standard_normal((I, 3 * H)), rng.standard_normal((H, 3 * H)), rng.standard_normal((2, 3 * H))
    x = rng.standard_normal((2, 6, I))
    layer = pyrnn.GRU(I, H, dtype=np.float64)
    layer.load_state_dict(interop.keras_gru_weights(kernel, rk, bias))
    y, h = layer.forward(x)
    ky, kh = keras_gru(x, kernel, rk, bias)
    np.testing.assert_allclose(y, ky, rtol=1e-12)
    np.testing.assert_allclose(h[0], kh, rtol=1e-12)
    # without the reordering the outputs differ: the check can fail
    naive = {"weight_ih_l0": kernel.T, "weight_hh_l0": rk.T, "bias_ih_l0": bias[0], "bias_hh_l0": bias[1]}
    layer.load_state_dict(naive)
    assert not np.allclose(layer.forward(x)[0], ky)


def test_keras_weight_errors_are_named():
    with pytest.raises(ValueError, match=r"expected reset_after=True"):
        interop.keras_gru_weights(np.zeros((3, 6)), np.zeros((2, 6)), reset_after=False)
    with pytest.raises(ValueError, match=r"LSTM recurrent_kernel: expected shape \(2, 8\), got \(3, 8\)"):
        interop.keras_lstm_weights(np.zeros((3, 8)), np.zeros((3, 8)))
    with pytest.raises(ValueError, match=r"GRU bias: expected shape \(2, 6\)"):
        interop.keras_gru_weights(np.zeros((3, 6)), np.zeros((2, 6)), np.zeros(6))


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
@pyrnn.no_grad()  # forwards to compare, no backward
def test_torch_round_trip_of_a_recurrent_layer(cls):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    mod = getattr(torch.nn, cls)(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    layer = getattr(pyrnn, cls)(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=9)
    interop.load_torch(layer, mod)
    x = np.random.default_rng(2).standard_normal((2, 5, 3))
    np.testing.assert_allclose(layer.forward(x)[0], mod(torch.from_numpy(x))[0].detach().numpy(), rtol=1e-12)
    with torch.no_grad():  # change pyrnn's weights, export them back, torch follows
        for p in layer.parameters():
            p *= 0.5
    mod.load_state_dict(interop.to_torch(layer))
    np.testing.assert_allclose(layer.forward(x)[0], mod(torch.from_numpy(x))[0].detach().numpy(), rtol=1e-12)


def test_from_torch_renames_children_to_layer_indices():
    sd = {"enc.weight_ih_l0": np.zeros((3, 2)), "head.weight": np.zeros((1, 3))}
    assert set(interop.from_torch(sd, names={"enc": 0, "head": 2})) == {"0.weight_ih_l0", "2.weight"}
    with pytest.raises(ValueError, match=r"expected every key under one of \['enc'\], got 'head.weight'"):
        interop.from_torch(sd, names={"enc": 0})


def test_torch_round_trip_of_a_conv_gru_linear_model():
    """A torch Conv1d -> GRU -> Linear model and the same pyrnn Sequential, weights both ways."""
    torch = pytest.importorskip("torch")

    class ConvGRU(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(2, 6, 3)
            self.gru = torch.nn.GRU(6, 5, batch_first=True, bidirectional=True)
            self.head = torch.nn.Linear(10, 1)

        def forward(self, x):  # (B, T, C), causal padding of K - 1 on the left
            z = self.conv(torch.nn.functional.pad(x.transpose(1, 2), (2, 0))).transpose(1, 2)
            return self.head(self.gru(z)[0])

    torch.manual_seed(0)
    mod = ConvGRU().double()
    model = pyrnn.Sequential([pyrnn.Conv1D(2, 6, 3, padding="causal", dtype=np.float64), pyrnn.GRU(6, 5, bidirectional=True, dtype=np.float64),
                              pyrnn.TimeDistributed(pyrnn.Dense(10, 1, dtype=np.float64))])
    names = {"conv": 0, "gru": 1, "head": 2}
    interop.load_torch(model, mod, names=names)
    x = np.random.default_rng(3).standard_normal((3, 7, 2))
    np.testing.assert_allclose(model.predict(x), mod(torch.from_numpy(x)).detach().numpy(), rtol=1e-11, atol=1e-13)
    for p in model.parameters():
        p[...] = np.random.default_rng(4).standard_normal(p.shape)
    mod.load_state_dict(interop.to_torch(model, names=names))
    np.testing.assert_allclose(model.predict(x), mod(torch.from_numpy(x)).detach().numpy(), rtol=1e-11, atol=1e-13)


# ------------------------------------------------------------------ image layers, both ways
# Each case draws a configuration whose keyword arguments are the same for the torch module and the
# pyrnn layer (the two APIs share the names), and an NCHW input shape that leaves a non-empty output.
def _conv2d_case(rng):
    g = int(rng.choice([1, 1, 2, 3]))
    cfg = dict(in_channels=g * int(rng.integers(1, 4)), out_channels=g * int(rng.integers(1, 4)), groups=g,
               kernel_size=(int(rng.integers(1, 4)), int(rng.integers(1, 4))), stride=int(rng.integers(1, 3)),
               dilation=(int(rng.integers(1, 3)), int(rng.integers(1, 3))), bias=bool(rng.integers(2)))
    if rng.integers(4) == 0:  # depthwise
        cfg.update(groups=cfg["in_channels"], out_channels=cfg["in_channels"] * int(rng.integers(1, 3)))
    pad = rng.integers(4)
    cfg["padding"] = ["valid", int(rng.integers(0, 3)), (int(rng.integers(0, 3)), int(rng.integers(0, 3))), "same"][pad]
    if cfg["padding"] == "same":
        cfg["stride"] = 1
    span = [d * (k - 1) + 1 for d, k in zip(cfg["dilation"], cfg["kernel_size"])]
    return cfg, (int(rng.integers(1, 4)), cfg["in_channels"], span[0] + int(rng.integers(0, 5)), span[1] + int(rng.integers(0, 5)))


def _conv_transpose2d_case(rng):
    g = int(rng.choice([1, 1, 2]))
    s, d = (int(rng.integers(1, 4)), int(rng.integers(1, 3))), (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    cfg = dict(in_channels=g * int(rng.integers(1, 4)), out_channels=g * int(rng.integers(1, 4)), groups=g, kernel_size=k,
               stride=s, dilation=d, bias=bool(rng.integers(2)),
               output_padding=tuple(int(rng.integers(0, max(a, b))) for a, b in zip(s, d)),
               padding=tuple(int(rng.integers(0, 1 + dd * (kk - 1) // 2)) for dd, kk in zip(d, k)))
    return cfg, (int(rng.integers(1, 4)), cfg["in_channels"], int(rng.integers(1, 6)), int(rng.integers(1, 6)))


def _batchnorm_case(rng, rank):
    cfg = dict(num_features=int(rng.integers(1, 6)), eps=float(rng.choice([1e-5, 1e-3, 0.1])),
               momentum=[0.1, 0.5, None][int(rng.integers(3))], affine=bool(rng.integers(2)),
               track_running_stats=bool(rng.integers(4) > 0))
    B = int(rng.integers(2, 5))
    spatial = [(int(rng.integers(1, 5)), int(rng.integers(1, 5))), (int(rng.integers(1, 6)),), ()][rank]
    return cfg, (B, cfg["num_features"], *spatial)


def _pool_case(rng, max_pool):
    k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    cfg = dict(kernel_size=k if rng.integers(2) else k[0], stride=[None, int(rng.integers(1, 4)), (1, 2)][int(rng.integers(3))],
               padding=(int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1))), ceil_mode=bool(rng.integers(2)))
    if cfg["kernel_size"] == k[0]:
        cfg["padding"] = cfg["padding"][0] if cfg["padding"][0] <= k[0] // 2 else 0
    if max_pool:
        cfg["dilation"] = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    else:
        cfg["count_include_pad"] = bool(rng.integers(2))
    kk = (cfg["kernel_size"],) * 2 if isinstance(cfg["kernel_size"], int) else cfg["kernel_size"]
    d = cfg.get("dilation", (1, 1))
    return cfg, (int(rng.integers(1, 4)), int(rng.integers(1, 4)),
                 d[0] * (kk[0] - 1) + 1 + int(rng.integers(0, 5)), d[1] * (kk[1] - 1) + 1 + int(rng.integers(0, 5)))


def _upsample_case(rng):
    scale = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    cfg = dict(scale_factor=scale if rng.integers(2) else scale[0], mode=["nearest", "bilinear"][int(rng.integers(2))])
    return cfg, (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 6)))


CASES = {  # name: (torch.nn class, pyrnn class, case drawer)
    "Conv2d": ("Conv2d", "Conv2D", _conv2d_case),
    "ConvTranspose2d": ("ConvTranspose2d", "ConvTranspose2D", _conv_transpose2d_case),
    "BatchNorm2d": ("BatchNorm2d", "BatchNorm2D", lambda rng: _batchnorm_case(rng, 0)),
    "BatchNorm1d-BCT": ("BatchNorm1d", "BatchNorm1D", lambda rng: _batchnorm_case(rng, 1)),
    "BatchNorm1d-BC": ("BatchNorm1d", "BatchNorm1D", lambda rng: _batchnorm_case(rng, 2)),
    "MaxPool2d": ("MaxPool2d", "MaxPool2D", lambda rng: _pool_case(rng, True)),
    "AvgPool2d": ("AvgPool2d", "AvgPool2D", lambda rng: _pool_case(rng, False)),
    "Upsample": ("Upsample", "Upsample2D", _upsample_case),
}
WEIGHTED = ("Conv2d", "ConvTranspose2d", "BatchNorm2d", "BatchNorm1d")


def _tol(dtype):
    return 1e-5 if dtype == np.float32 else 1e-11


def _assert_close(pyrnn_channels_last, torch_out, dtype, what):
    """pyrnn's channels-last output against torch's channels-first one (moved to channels-last)."""
    t = torch_out.detach().numpy()
    t = np.moveaxis(t, 1, -1) if t.ndim > 2 else t
    scale = max(1.0, float(np.abs(t).max(initial=0)))
    np.testing.assert_allclose(pyrnn_channels_last, t, rtol=_tol(dtype), atol=_tol(dtype) * scale, err_msg=what)


def _randomize(module, torch, gen):
    """Random weights and, for batch norm, random running statistics and counter (not torch's init)."""
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(int(torch.randint(0, 50, (), generator=gen)))
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype))


def _torch_module(torch, cls_name, cfg):
    kw = dict(cfg)
    if cls_name == "Upsample" and kw["mode"] == "bilinear":
        kw["align_corners"] = False
    return getattr(torch.nn, cls_name)(**kw)


def _compare(layer, mod, x, dtype, what, torch, training):
    """One forward of each (in training or eval mode) on the same input; for batch norm in training,
    the updated running statistics and counter too."""
    layer.train(training)
    mod.train(training)
    with pyrnn.no_grad():
        y = layer.forward(x)
    xt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))
    with torch.no_grad():
        yt = mod(xt)
    _assert_close(y, yt, dtype, what)
    for name, value in mod.state_dict().items():  # batch norm in training: the running statistics moved alike
        np.testing.assert_allclose(layer.state_dict()[name], value.numpy(), rtol=_tol(dtype), atol=_tol(dtype), err_msg=f"{what}: {name}")


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")  # torch's own copy
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_image_layers_convert_both_ways_on_30_random_configurations(case, dtype):
    """torch -> pyrnn (from_torch_module) and pyrnn -> torch (to_torch_module, and to_torch into a
    module built by torch itself): the same configuration, weights and running statistics, and outputs
    equal to torch's on the NCHW transpose, in eval mode and (batch norm) in training mode."""
    torch = pytest.importorskip("torch")
    torch_name, pyrnn_name, draw = CASES[case]
    rng = np.random.default_rng(sum(map(ord, case)) + (dtype == np.float64))
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    for k in range(30):
        cfg, shape = draw(rng)
        what = f"{case} config {k}: {cfg}, input (NCHW) {shape}"
        x = np.moveaxis(rng.standard_normal(shape), 1, -1).astype(dtype)
        # torch -> pyrnn
        mod = _torch_module(torch, torch_name, cfg).to(tdtype)
        _randomize(mod, torch, gen)
        layer = interop.from_torch_module(mod, dtype=dtype)  # dtype: for a batch norm without tensors
        assert type(layer) is getattr(pyrnn, pyrnn_name), what
        assert set(layer.state_dict()) == set(mod.state_dict()), what
        if torch_name in WEIGHTED:
            assert layer.dtype == dtype, what
        for training in (False, True) if torch_name.startswith("BatchNorm") else (False,):
            _compare(layer, mod, x, dtype, what + f" (torch -> pyrnn, training={training})", torch, training)
        # pyrnn -> torch: a layer built by pyrnn from the same arguments
        extra = dict(dtype=dtype) if torch_name in WEIGHTED else {}
        if torch_name.startswith("Conv"):
            extra["seed"] = int(rng.integers(2**31))
        layer = getattr(pyrnn, pyrnn_name)(**cfg, **extra)
        for value in layer.state().values():  # running statistics and counter away from their init
            value[...] = rng.uniform(0.5, 1.5, value.shape) if value.dtype.kind == "f" else rng.integers(0, 50)
        back = interop.to_torch_module(layer)
        assert type(back) is getattr(torch.nn, torch_name), what
        for training in (False, True) if torch_name.startswith("BatchNorm") else (False,):
            _compare(layer, back, x, dtype, what + f" (pyrnn -> torch, training={training})", torch, training)
        if torch_name in WEIGHTED:  # the state dict alone, into a module torch built
            fresh = _torch_module(torch, torch_name, cfg).to(tdtype)
            fresh.load_state_dict(interop.to_torch(layer))
            _compare(layer, fresh, x, dtype, what + " (to_torch state dict)", torch, False)


def _random_cnn(torch, rng, dtype):
    """A torch CNN drawn at random: conv blocks (conv, optional batch norm, activation, optional pool
    or upsample), then Flatten or a global average pool + Flatten, then Linear / BatchNorm1d / Dropout
    / Linear; nested nn.Sequential containers ("features", "head") as torch code writes them."""
    nn = torch.nn
    C, H, W = int(rng.integers(1, 4)), int(rng.integers(6, 10)), int(rng.integers(6, 10))
    shape, features = (C, H, W), []
    for _ in range(int(rng.integers(1, 4))):
        O, k = int(rng.integers(2, 6)), int(rng.integers(1, 4))
        transpose = rng.integers(5) == 0
        conv = nn.ConvTranspose2d(C, O, k, stride=2) if transpose else nn.Conv2d(C, O, k, padding=int(rng.integers(0, 2)))
        features.append(conv)
        H, W = ((H - 1) * 2 + k, (W - 1) * 2 + k) if transpose else (H + 2 * conv.padding[0] - k + 1, W + 2 * conv.padding[1] - k + 1)
        C = O
        if rng.integers(2):
            features.append(nn.BatchNorm2d(C))
        features.append([nn.ReLU(), nn.Tanh(), nn.LeakyReLU(0.2), nn.GELU(), nn.Sigmoid()][int(rng.integers(5))])
        extra = int(rng.integers(4))
        if extra == 1 and min(H, W) >= 2:
            features.append(nn.MaxPool2d(2, ceil_mode=bool(rng.integers(2))))
            H, W = -(-H // 2) if features[-1].ceil_mode else H // 2, -(-W // 2) if features[-1].ceil_mode else W // 2
        elif extra == 2 and min(H, W) >= 3:
            features.append(nn.AvgPool2d(3, stride=2, padding=1))
            H, W = (H - 1) // 2 + 1, (W - 1) // 2 + 1
        elif extra == 3:
            features.append(nn.Upsample(scale_factor=2, mode=["nearest", "bilinear"][int(rng.integers(2))]))
            H, W = 2 * H, 2 * W
    if rng.integers(2):
        flat = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        F = C
    else:
        flat = [nn.Flatten()]
        F = C * H * W
    hidden = int(rng.integers(2, 8))
    head = [nn.Linear(F, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.3), nn.Linear(hidden, 3)]
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(*features))
    for m in flat:
        model.append(m)
    model.add_module("head", nn.Sequential(*head))
    return model.to(torch.float32 if dtype == np.float32 else torch.float64), shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_random_torch_cnns_convert_both_ways(dtype):
    """Whole torch CNNs (Linear after Flatten, nested containers, batch norm with trained running
    statistics) -> pyrnn Sequential -> torch again: the same outputs in eval mode, and the
    round trip gives torch its own state dict back."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7 + (dtype == np.float64))
    torch.manual_seed(7)
    for k in range(30):
        mod, (C, H, W) = _random_cnn(torch, rng, dtype)
        what = f"model {k}: {mod}"
        mod.train()
        with torch.no_grad():  # move the running statistics away from their init
            for _ in range(2):
                mod(torch.randn(6, C, H, W, dtype=next(mod.parameters()).dtype))
        mod.eval()
        model = interop.from_torch_module(mod)
        assert isinstance(model, pyrnn.Sequential) and not any(l.training for l in model.layers), what
        x = rng.standard_normal((4, H, W, C)).astype(dtype)
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        with torch.no_grad():
            expected = mod(xt)
        _assert_close(model.predict(x), expected, dtype, what)
        back = interop.to_torch_module(model).eval()
        with torch.no_grad():
            _assert_close(model.predict(x), back(xt), dtype, what + " (back to torch)")
        for a, b in zip(back.state_dict().values(), mod.state_dict().values(), strict=True):  # in order, renamed
            assert a.dtype == b.dtype and torch.equal(a, b), what


def test_linear_after_flatten_loads_unchanged_in_nchw_order():
    """The point of Flatten's order: a torch Linear after Flatten on a C x H x W map (all three > 1,
    H != W) loads into Dense as it is; a channels-last flatten would need the columns permuted."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    mod = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 5, 2)).double()
    model = pyrnn.Sequential([pyrnn.Conv2D(2, 3, 1, dtype=np.float64), pyrnn.Flatten(), pyrnn.Dense(60, 2, dtype=np.float64)])
    interop.load_torch(model, mod)  # a one-to-one Sequential needs no names
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 2))
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    _assert_close(model.predict(x), mod(xt), np.float64, "Linear after Flatten")
    with pyrnn.no_grad():
        z = model.layers[0].forward(x)  # (B, H, W, C): flattened channels-last instead, the numbers differ
    dense = model.layers[2].params
    assert not np.allclose(z.reshape(3, -1) @ dense["weight"].T + dense["bias"], mod(xt).detach().numpy(), atol=1e-3)


@pytest.mark.parametrize(
    "build, pattern",
    [
        (lambda nn: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(2, 2)),
         r"1 \(Linear\): expected features \(a Flatten or a global average pool before it\), got an image"),
        (lambda nn: nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.BatchNorm1d(2)),
         r"2 \(BatchNorm1d\): expected features"),
        (lambda nn: nn.Sequential(nn.Conv1d(1, 2, 3)), r"expected one of the torch.nn modules .*got torch.nn.modules.conv.Conv1d at '0'"),
        (lambda nn: nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), r"Conv2d: expected padding_mode='zeros'.*got 'reflect'"),
        (lambda nn: nn.AdaptiveAvgPool2d(2), r"AdaptiveAvgPool2d: expected output_size=1 \(a global average pool\).*got 2"),
        (lambda nn: nn.Upsample(scale_factor=1.5), r"Upsample: expected integer scale factors >= 1 for \(H, W\).*got 1.5"),
        (lambda nn: nn.Upsample(size=(4, 4)), r"Upsample: expected scale_factor \(not size\)"),
        (lambda nn: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), r"expected align_corners=False.*got True"),
        (lambda nn: nn.MaxPool2d(2, return_indices=True), r"MaxPool2d: expected return_indices=False"),
        (lambda nn: nn.AvgPool2d(2, divisor_override=3), r"AvgPool2d: expected divisor_override=None.*got 3"),
        (lambda nn: nn.Flatten(0), r"Flatten: expected start_dim=1, end_dim=-1.*got start_dim=0, end_dim=-1"),
        (lambda nn: nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(3, padding=2)),
         r"from_torch_module: 1: padding: expected at most kernel_size // 2"),
    ],
)
def test_torch_modules_pyrnn_cannot_express_are_refused_by_name(build, pattern):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=pattern):
        interop.from_torch_module(build(torch.nn))


def test_pyrnn_layers_torch_cannot_take_are_refused_by_name():
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"layer 1 \(Dense\): expected features \(a Flatten or a global average pool before it\), got an image"):
        interop.to_torch_module(pyrnn.Sequential([pyrnn.Conv2D(1, 2, 3), pyrnn.Dense(2, 2)]))
    with pytest.raises(ValueError, match=r"expected one of the pyrnn layers .*got LSTM at 0"):
        interop.to_torch_module(pyrnn.Sequential([pyrnn.LSTM(2, 3)]))
    with pytest.raises(ValueError, match=r"expected a pyrnn layer or Sequential, got Model \(a functional graph"):
        interop.to_torch_module(pyrnn.vision.lenet5())
    model = pyrnn.Sequential([pyrnn.Dense(2, 3), pyrnn.ReLU(), pyrnn.Dense(3, 1)])
    with pytest.raises(ValueError, match=r"to_torch: expected a torch path for every layer with weights, got none for layer 2"):
        interop.to_torch(model, names={"fc1": 0})


def test_names_map_nested_torch_paths_by_the_longest_prefix():
    sd = {"layer1.0.conv1.weight": np.zeros(1), "layer1.0.downsample.0.weight": np.zeros(2), "fc.bias": np.zeros(3)}
    names = {"layer1.0.conv1": 3, "layer1.0.downsample.0": 7, "layer1.0": 99, "fc": 9}
    assert interop.from_torch(sd, names) == {"3.weight": sd["layer1.0.conv1.weight"], "7.weight": sd["layer1.0.downsample.0.weight"],
                                             "9.bias": sd["fc.bias"]}


# ------------------------------------------------------------------ pyrnn.vision and torch twins
def _torch_resnet(torch, depths, widths, num_classes, in_channels, stem):
    """A torch ResNet written the usual way (torchvision's module names and structure), built as
    pyrnn.vision.resnet builds its model: basic blocks, identity skips, a 1x1 projection + BN where
    a block changes the shape, batch norm after every convolution, the "cifar" or "imagenet" stem."""
    nn = torch.nn

    class BasicBlock(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.downsample = None
            if stride != 1 or c_in != c_out:
                self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

        def forward(self, x):
            y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(y + (x if self.downsample is None else self.downsample(x)))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            if stem == "cifar":
                self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
                self.maxpool = nn.Identity()
            else:
                self.conv1 = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
                self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            self.bn1 = nn.BatchNorm2d(widths[0])
            c = widths[0]
            for i, (depth, width) in enumerate(zip(depths, widths)):
                blocks = []
                for j in range(depth):
                    blocks.append(BasicBlock(c, width, 2 if (i > 0 and j == 0) else 1))
                    c = width
                self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(c, num_classes)
            self.stages = len(depths)

        def forward(self, x):
            x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
            for i in range(self.stages):
                x = getattr(self, f"layer{i + 1}")(x)
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet()


def _nchw(torch, x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


@pytest.mark.parametrize(
    "depths, widths, stem, size",
    [((1, 1), (4, 8), "cifar", 8), ((2, 1, 2), (4, 4, 8), "cifar", 12), ((2, 2, 2, 2), (4, 6, 8, 8), "cifar", 16),
     ((1, 2), (8, 12), "imagenet", 32), ((2, 2, 2, 2), (4, 8, 8, 16), "imagenet", 33)],
)
def test_resnet_loads_its_torch_twin_by_the_torchvision_name_map(depths, widths, stem, size):
    """A torch ResNet built like pyrnn.vision.resnet, with running statistics from a few training
    batches: loaded through resnet_names, the same outputs in eval mode; the same output and running
    statistics after one training-mode forward; and pyrnn's (changed) weights back into torch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(len(depths) + size)
    torch.manual_seed(size)
    mod = _torch_resnet(torch, depths, widths, 5, 3, stem)
    mod.train()
    with torch.no_grad():
        for _ in range(3):
            mod(torch.randn(8, 3, size, size))
    model = pyrnn.vision.resnet(depths, widths, 5, 3, stem=stem, seed=0)
    names = interop.resnet_names(model)
    assert set(names) == {key.rpartition(".")[0] for key in mod.state_dict()}
    interop.load_torch(model, mod, names=names)
    x = rng.standard_normal((4, size, size, 3)).astype(np.float32)
    mod.eval()
    with torch.no_grad():
        expected = mod(_nchw(torch, x))
    _assert_close(model.predict(x), expected, np.float32, "eval")
    mod.train()  # training mode: batch statistics, and both move their running statistics alike
    with torch.no_grad():
        expected = mod(_nchw(torch, x))
    with pyrnn.no_grad():
        got = model.forward(x)
    _assert_close(got, expected, np.float32, "train")
    for key, value in interop.from_torch(mod, names).items():
        np.testing.assert_allclose(model.state_dict()[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    # pyrnn -> torch: new weights and statistics in pyrnn, exported, torch follows
    for value in model.named_state().values():
        value[...] = rng.uniform(0.5, 1.5, value.shape) if value.dtype.kind == "f" else rng.integers(0, 9)
    mod.load_state_dict(interop.to_torch(model, names=names))
    mod.eval()
    with torch.no_grad():
        _assert_close(model.predict(x), mod(_nchw(torch, x)), np.float32, "pyrnn -> torch")


def test_resnet_names_refuses_a_model_that_is_not_a_resnet():
    with pytest.raises(ValueError, match=r"resnet_names: expected a model built by pyrnn.vision.resnet, with a BatchNorm2D for "
                                         r"'bn1'; got layer 3 Conv2D"):
        interop.resnet_names(pyrnn.vision.lenet5())
    with pytest.raises(ValueError, match=r"with a Conv2D 3x3 for 'layer1.0.conv2'; got layer 9 Dense"):
        interop.resnet_names(pyrnn.vision.vgg(((1, 16), (1, 32)), batch_norm=True))


def _torch_lenet5(nn):
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
                         nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))


def _torch_vgg(nn, blocks, num_classes, in_channels):
    features, c = [], in_channels
    for n, width in blocks:
        for _ in range(n):
            features += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        features.append(nn.MaxPool2d(2))
    return nn.Sequential(nn.Sequential(*features), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))


def _torch_unet(torch, in_channels, num_classes, widths, upsample):
    nn = torch.nn

    def double_conv(c_in, c_out):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                             nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = nn.ModuleList()
            c = in_channels
            for w in widths[:-1]:
                self.down.append(double_conv(c, w))
                c = w
            self.bottleneck = double_conv(c, widths[-1])
            c = widths[-1]
            self.decoder = nn.ModuleList()  # a stage's upsampling, then its convolutions (pyrnn's layer order)
            for w in reversed(widths[:-1]):
                up = nn.ConvTranspose2d(c, w, 2, stride=2) if upsample == "transpose" else \
                    nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.Conv2d(c, w, 1))
                self.decoder.append(nn.ModuleDict({"up": up, "conv": double_conv(2 * w, w)}))
                c = w
            self.head = nn.Conv2d(c, num_classes, 1)

        def forward(self, x):
            skips = []
            for block in self.down:
                x = block(x)
                skips.append(x)
                x = torch.max_pool2d(x, 2)
            x = self.bottleneck(x)
            for stage, skip in zip(self.decoder, reversed(skips)):
                x = stage["conv"](torch.cat([skip, stage["up"](x)], dim=1))
            return self.head(x)

    return UNet()


@pytest.mark.parametrize("arch", ["lenet5", "vgg", "unet-transpose", "unet-bilinear"])
def test_lenet_vgg_unet_load_torch_twins_that_declare_modules_in_the_same_order(arch):
    """LeNet-5 is one to one with an nn.Sequential (no map); VGG and U-Net go through names_in_order.
    Eval-mode outputs equal both ways."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if arch == "lenet5":
        mod, model, size, names = _torch_lenet5(torch.nn), pyrnn.vision.lenet5(seed=0), 32, None
    elif arch == "vgg":
        mod, model, size = _torch_vgg(torch.nn, ((1, 4), (2, 8)), 3, 2), pyrnn.vision.vgg(((1, 4), (2, 8)), 3, 2, batch_norm=True), 12
        names = interop.names_in_order(model, mod)
    else:
        up = arch.split("-")[1]
        mod = _torch_unet(torch, 2, 3, (4, 8, 16), up)
        model, size = pyrnn.vision.unet(2, 3, (4, 8, 16), upsample=up, seed=0), 8
        names = interop.names_in_order(model, mod)
    C = model.layers[0].in_channels
    mod.train()
    with torch.no_grad():
        mod(torch.randn(4, C, size, size))
    mod.eval()
    interop.load_torch(model, mod, names=names)
    x = rng.standard_normal((3, size, size, C)).astype(np.float32)
    with torch.no_grad():
        _assert_close(model.predict(x), mod(_nchw(torch, x)), np.float32, f"{arch}: torch -> pyrnn")
    for value in model.named_state().values():
        if value.dtype.kind == "f":
            value[...] = rng.uniform(-1, 1, value.shape) if value.ndim > 1 else rng.uniform(0.5, 1.5, value.shape)
    mod.load_state_dict(interop.to_torch(model, names=names))
    with torch.no_grad():
        _assert_close(model.predict(x), mod(_nchw(torch, x)), np.float32, f"{arch}: pyrnn -> torch")


def test_names_in_order_refuses_modules_that_do_not_pair_up():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    model = pyrnn.vision.vgg(((1, 4),), 3, 2, batch_norm=True)
    with pytest.raises(ValueError, match=r"names_in_order: expected 3 torch modules with weights .*got 2"):
        interop.names_in_order(model, nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), nn.Linear(4, 3)))
    swapped = nn.Sequential(nn.BatchNorm2d(4), nn.Conv2d(2, 4, 3, bias=False), nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"expected torch module '0' to hold \['weight'\] like pyrnn layer 0 \(Conv2D\), got "
                                         r"\['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight'\]"):
        interop.names_in_order(model, swapped)
