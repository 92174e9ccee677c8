"""BatchNorm1D, BatchNorm2D: parity with PyTorch 2.13 on every backend (outputs, every gradient
and the running buffers over several training steps, then eval), state dicts to and from torch,
training with ``fit`` and checkpoints, inference mode, bad inputs, get_config.

Legend: B = batch, H/W = height/width, T = time, C = channels (num_features).
"""

import json
import zlib

import numpy as np
import pytest

import pyrnn
from pyrnn.layers.norm import BatchNorm1D, BatchNorm2D

from gradcheck import check_layer_grads

BACKENDS = pyrnn.available_backends()
TOL = {np.float64: 1e-10, np.float32: 2e-5}
STEPS = 3  # training steps before eval

#: max |pyrnn - torch| per (dtype, quantity), filled by the parity test (see test_report_torch_parity)
MAX_ERR: dict = {}


def _close(got, want, dtype, name):
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * scale, err_msg=name)
    if want.size:
        key = (np.dtype(dtype).name, name.split()[-1])
        MAX_ERR[key] = max(MAX_ERR.get(key, 0.0), float(np.max(np.abs(got.astype(np.float64) - want))) / scale)


# (kind, shape channels-last, momentum, affine, track_running_stats); kind "2d" images, "1d" sequences or vectors
CONFIGS = [
    ("2d", (2, 3, 4, 5), 0.1, True, True),
    ("2d", (4, 5, 6, 3), None, True, True),
    ("2d", (1, 2, 2, 1), 0.1, True, True),  # N = 4 rows, one channel
    ("2d", (3, 1, 1, 6), 0.1, True, True),  # 1x1 images: N = B
    ("2d", (2, 4, 3, 4), 0.3, False, True),
    ("2d", (2, 3, 3, 2), 0.1, True, False),
    ("2d", (3, 2, 5, 3), None, False, True),
    ("2d", (2, 2, 2, 7), 0.1, False, False),
    ("2d", (5, 6, 7, 8), 0.01, True, True),
    ("2d", (1, 1, 2, 3), 1.0, True, True),  # momentum 1: the running stats are the last batch's
    ("2d", (2, 3, 4, 5), 0.0, True, True),  # momentum 0: the running stats never move
    ("2d", (8, 8, 8, 16), 0.1, True, True),  # sizes where float32 rounding accumulates
    ("2d", (2, 5, 1, 3), None, True, False),
    ("2d", (6, 2, 3, 4), 0.5, True, True),
    ("1d", (2, 7, 3), 0.1, True, True),
    ("1d", (4, 10, 5), None, True, True),
    ("1d", (1, 2, 1), 0.1, True, True),  # B = 1: statistics over time
    ("1d", (3, 1, 4), 0.1, True, True),  # T = 1: statistics over the batch
    ("1d", (2, 6, 2), 0.2, False, True),
    ("1d", (3, 5, 3), 0.1, True, False),
    ("1d", (2, 4, 6), None, False, False),
    ("1d", (16, 50, 32), 0.1, True, True),
    ("1d", (5, 3, 2), 1.0, False, True),
    ("1d", (4, 4), 0.1, True, True),  # (B, C)
    ("1d", (2, 3), None, True, True),
    ("1d", (7, 5), 0.1, False, True),
    ("1d", (3, 2), 0.1, True, False),
    ("1d", (64, 12), 0.05, True, True),
    ("1d", (2, 1), None, False, False),
    ("1d", (3, 9), 0.0, True, True),
    ("2d", (3, 4, 4, 2), 0.1, True, True),
    ("1d", (2, 9, 7), 0.7, True, True),
]


def _ids(cfg):
    kind, shape, m, affine, track = cfg
    return f"{kind}-{'x'.join(map(str, shape))}-m{m}" + ("" if affine else "-noaffine") + ("" if track else "-notrack")


def _to_torch_layout(a):
    """channels-last -> torch's channels-first: (B, H, W, C) -> (B, C, H, W), (B, T, C) -> (B, C, T)."""
    return np.ascontiguousarray(np.moveaxis(a, -1, 1)) if a.ndim > 2 else a


def _from_torch_layout(a):
    return np.ascontiguousarray(np.moveaxis(a, 1, -1)) if a.ndim > 2 else a


def _pair(cfg, dtype, torch):
    kind, shape, m, affine, track = cfg
    C = shape[-1]
    tmod = (torch.nn.BatchNorm2d if kind == "2d" else torch.nn.BatchNorm1d)(
        C, momentum=m, affine=affine, track_running_stats=track)
    tmod = tmod.to(torch.float64 if dtype == np.float64 else torch.float32)
    if affine:  # not the trivial 1 and 0
        with torch.no_grad():
            tmod.weight.uniform_(0.5, 1.5)
            tmod.bias.uniform_(-1.0, 1.0)
    layer = (BatchNorm2D if kind == "2d" else BatchNorm1D)(C, momentum=m, affine=affine, track_running_stats=track,
                                                            dtype=dtype)
    sd = {k: v.detach().numpy() for k, v in tmod.state_dict().items()}
    assert sorted(sd) == sorted(layer.state_dict())
    layer.load_state_dict(sd)
    return tmod, layer


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_batchnorm_matches_torch_over_training_steps_and_eval(backend, dtype, cfg):
    torch = pytest.importorskip("torch")
    torch.manual_seed(zlib.crc32(str(cfg).encode()))
    tmod, layer = _pair(cfg, dtype, torch)
    rng = np.random.default_rng(zlib.crc32(str(cfg).encode()))
    shape = cfg[1]
    for step in range(STEPS + 1):
        evaluating = step == STEPS
        if evaluating:
            tmod.eval()
            layer.eval()
        x = (rng.standard_normal(shape) * rng.uniform(0.5, 3.0) + rng.uniform(-3.0, 3.0)).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        tx = torch.tensor(_to_torch_layout(x), requires_grad=True)
        ty = tmod(tx)
        (ty * torch.tensor(_to_torch_layout(dy))).sum().backward()  # grads accumulate, as pyrnn's
        with pyrnn.use_backend(backend):
            y = layer.forward(x)
            dx = layer.backward(dy)
        tag = f"{backend} step {step}"
        for name, got, want in [("y", y, _from_torch_layout(ty.detach().numpy())),
                                ("dx", dx, _from_torch_layout(tx.grad.numpy()))]:
            assert got.dtype == dtype and got.shape == shape, name
            _close(got, want, dtype, f"{tag} {name}")
        for name, param in tmod.named_parameters():
            _close(layer.grads[name], param.grad.numpy(), dtype, f"{tag} d{name}")
        for name, buf in tmod.named_buffers():
            got, want = layer.buffers[name], buf.numpy()
            assert got.dtype == want.dtype and got.shape == want.shape, name
            if name == "num_batches_tracked":
                assert int(got) == int(want) == min(step + 1, STEPS), name
            else:
                _close(got, want, dtype, f"{tag} {name}")
        assert set(dict(tmod.named_buffers())) == set(layer.buffers)


def test_report_torch_parity():
    """Runs after the parity cases (same file, later): the worst errors seen, relative to max(1, |want|)."""
    for key in sorted(MAX_ERR):
        print(f"torch parity {key[0]} {key[1]}: {MAX_ERR[key]:.3g}")
    assert all(err < TOL[np.float32] for err in MAX_ERR.values())


# ------------------------------------------------------------------ state dicts
@pytest.mark.parametrize("kind", ["2d", "1d"])
def test_torch_state_dict_loads_and_goes_back_bit_for_bit(kind):
    torch = pytest.importorskip("torch")
    from pyrnn.interop import load_torch, to_torch

    torch.manual_seed(0)
    tmod = (torch.nn.BatchNorm2d if kind == "2d" else torch.nn.BatchNorm1d)(4)
    shape = (3, 4, 5, 5) if kind == "2d" else (3, 4, 6)
    for _ in range(5):  # moves the running stats and the counter
        tmod(torch.randn(*shape) * 2 + 1)
    with torch.no_grad():
        tmod.weight.uniform_(0.5, 1.5)
        tmod.bias.uniform_(-1, 1)
    layer = load_torch((BatchNorm2D if kind == "2d" else BatchNorm1D)(4), tmod)
    assert int(layer.buffers["num_batches_tracked"]) == 5 and layer.buffers["num_batches_tracked"].dtype == np.int64
    for k, v in tmod.state_dict().items():
        assert layer.state_dict()[k].dtype == v.numpy().dtype and np.array_equal(layer.state_dict()[k], v.numpy()), k
    back = (torch.nn.BatchNorm2d if kind == "2d" else torch.nn.BatchNorm1d)(4)
    back.load_state_dict(to_torch(layer))  # strict
    for k, v in tmod.state_dict().items():
        assert back.state_dict()[k].dtype == v.dtype and torch.equal(back.state_dict()[k], v), k
    tmod.eval()
    x = np.random.default_rng(0).standard_normal((2,) + shape[1:]).astype(np.float32)
    x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    with pyrnn.inference():
        y = layer.forward(x)
    want = _from_torch_layout(tmod(torch.tensor(_to_torch_layout(x))).detach().numpy())
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------ training and checkpoints
def test_sequential_fit_save_load_gives_equal_buffers_and_predictions(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((32, 12, 3)) * 2 + 1).astype(np.float32)
    y = x[:, -3:, :1].mean(axis=1) + 0.1 * rng.standard_normal((32, 1)).astype(np.float32)
    model = pyrnn.Sequential([pyrnn.Conv1D(3, 8, 3, padding="same", seed=0), BatchNorm1D(8), pyrnn.ReLU(),
                              pyrnn.LastStep(), pyrnn.Dense(8, 4, seed=1), BatchNorm1D(4, momentum=None),
                              pyrnn.Dense(4, 1, seed=2)])
    model.compile("adam", "mse")
    model.fit(x, y, epochs=2, batch_size=8, seed=0, verbose=0)
    bn, bn_vec = model.layers[1], model.layers[5]
    assert int(bn.buffers["num_batches_tracked"]) == 8 == int(bn_vec.buffers["num_batches_tracked"])
    assert not np.allclose(bn.buffers["running_mean"], 0) and not np.allclose(bn.buffers["running_var"], 1)
    assert {"1.running_mean", "1.running_var", "1.num_batches_tracked", "5.running_var"} <= set(model.state_dict())
    assert len(model.param_grad_pairs()) == 5 * 2  # weight and bias of 5 layers: the buffers are not trained

    pred = model.predict(x)
    assert bn.training and bn_vec.training  # predict flips no flag
    assert int(bn.buffers["num_batches_tracked"]) == 8  # and updates nothing
    with pyrnn.no_grad():  # the same numbers as an eval-mode forward (running statistics)
        model.eval()
        want = model.forward(x)
        model.train()
    np.testing.assert_array_equal(pred, want)

    model.save(tmp_path / "m.safetensors")
    again = pyrnn.load(tmp_path / "m.safetensors")
    for name, value in model.state_dict().items():
        got = again.state_dict()[name]
        assert got.dtype == value.dtype and np.array_equal(got, value), name
    np.testing.assert_array_equal(again.predict(x), pred)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["2d", "1d-seq", "1d-vec"])
def test_layer_gradients_match_finite_differences_in_train_and_eval(kind, backend):
    """float64 central differences of sum(y * dy) for x, weight and bias; training (batch statistics,
    where x's gradient couples the rows) and eval (running statistics)."""
    shape = {"2d": (2, 3, 2, 3), "1d-seq": (2, 4, 3), "1d-vec": (5, 3)}[kind]
    layer = (BatchNorm2D if kind == "2d" else BatchNorm1D)(3, dtype=np.float64)
    layer.params["weight"][...] = [0.5, 1.5, -1.0]
    layer.params["bias"][...] = [0.1, -0.2, 0.3]
    layer.buffers["running_mean"][...] = [0.3, -0.1, 2.0]
    layer.buffers["running_var"][...] = [0.5, 2.0, 1.5]
    x = np.random.default_rng(3).standard_normal(shape) * 2 + 1
    with pyrnn.use_backend(backend):
        check_layer_grads(layer, [x])
        layer.eval()
        check_layer_grads(layer, [x])


# ------------------------------------------------------------------ modes
def test_inference_uses_running_stats_and_leaves_training_on():
    layer = BatchNorm1D(2, dtype=np.float64)
    layer.buffers["running_mean"][...] = [1.0, -1.0]
    layer.buffers["running_var"][...] = [4.0, 0.25]
    x = np.array([[3.0, 0.0], [5.0, -2.0]])
    want = (x - [1.0, -1.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5)
    with pyrnn.inference():
        np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12)
    assert layer.training and int(layer.buffers["num_batches_tracked"]) == 0
    with pyrnn.no_grad():  # training mode without gradients: batch statistics, buffers updated (as torch)
        y = layer.forward(x)
    np.testing.assert_allclose(y, [[-1, 1], [1, -1]], atol=1e-4)
    assert int(layer.buffers["num_batches_tracked"]) == 1
    np.testing.assert_allclose(layer.buffers["running_mean"], [0.9 + 0.4, -0.9 - 0.1])


def test_without_running_stats_eval_uses_batch_statistics():
    layer = BatchNorm2D(2, track_running_stats=False, dtype=np.float64).eval()
    assert layer.buffers == {} and sorted(layer.state_dict()) == ["bias", "weight"]
    x = np.random.default_rng(0).standard_normal((2, 2, 3, 2)) * 3 + 5
    with pyrnn.inference():
        y = layer.forward(x)
    np.testing.assert_allclose(y.reshape(-1, 2).mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y.reshape(-1, 2).var(axis=0), 1, atol=1e-4)


def test_no_affine_has_no_parameters():
    layer = BatchNorm1D(3, affine=False)
    assert layer.params == {} and layer.grads == {}
    assert sorted(layer.state_dict()) == ["num_batches_tracked", "running_mean", "running_var"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch_in_eval(backend):
    layer = BatchNorm2D(3).eval()
    with pyrnn.use_backend(backend):
        y = layer.forward(np.zeros((0, 4, 4, 3), np.float32))
        assert y.shape == (0, 4, 4, 3) and layer.backward(np.zeros(y.shape, np.float32)).shape == (0, 4, 4, 3)


# ------------------------------------------------------------------ inputs and config
@pytest.mark.parametrize(
    "make, x, exc, pattern",
    [
        (lambda: BatchNorm2D(3), np.ones((2, 3, 5, 5), np.float32), ValueError,
         r"x: expected num_features=3 channels in the last axis \(batch, height, width, channels\), got shape "
         r"\(2, 3, 5, 5\); it looks like \(B, C, H, W\): pyrnn takes channels-last"),
        (lambda: BatchNorm1D(4), np.ones((2, 4, 6), np.float32), ValueError,
         r"got shape \(2, 4, 6\); it looks like \(B, C, T\): pyrnn takes channels-last"),
        (lambda: BatchNorm2D(3), np.ones((2, 5, 3), np.float32), ValueError,
         r"x: expected a 4-D array \(batch, height, width, channels\), got 3-D with shape \(2, 5, 3\)"),
        (lambda: BatchNorm1D(3), np.ones((2, 2, 2, 3), np.float32), ValueError,
         r"x: expected a 2-D array \(batch, channels\) or a 3-D array \(batch, time, channels\), got 4-D"),
        (lambda: BatchNorm1D(3), np.ones((4, 2), np.float32), ValueError,
         r"x: expected num_features=3 channels in the last axis \(batch, channels\), got shape \(4, 2\)$"),
        (lambda: BatchNorm2D(3), np.ones((2, 2, 2, 3), np.int64), TypeError,
         r"x: expected a floating-point array \(float32\), got dtype int64"),
        (lambda: BatchNorm1D(3), np.ones((1, 3), np.float32), ValueError,
         r"x: expected more than 1 value per channel in training \(batch statistics\), got shape \(1, 3\)"),
        (lambda: BatchNorm2D(3, track_running_stats=False).eval(), np.ones((1, 1, 1, 3)), ValueError,
         r"x: expected more than 1 value per channel"),
        (lambda: BatchNorm1D(2), "abc", TypeError, r"x: expected an array of floats, got str"),
    ],
    ids=["nchw", "ncl", "2d-ndim", "1d-ndim", "1d-channels", "int", "one-row", "one-row-notrack-eval", "str"],
)
def test_bad_inputs_are_named_before_any_kernel_runs(make, x, exc, pattern):
    layer = make()
    before = layer.state_dict()
    with pytest.raises(exc, match=pattern):
        layer.forward(x)
    for k, v in layer.state_dict().items():  # nothing moved, not even the counter
        assert np.array_equal(v, before[k]), k


@pytest.mark.skipif("cpp" not in BACKENDS, reason="the cpp backend is not built")
@pytest.mark.parametrize("momentum", [0.1, None])
def test_an_interrupted_training_forward_changes_no_state(momentum):
    """Ctrl-C in the kernel (simulated at its first poll): the running buffers and the counter stay as they were,
    and the next forward counts once (momentum=None: the cumulative average's 1/n)."""
    from pyrnn import _C

    layer = BatchNorm2D(3, momentum=momentum)
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 3)).astype(np.float32)
    before = layer.state_dict()
    with pyrnn.use_backend("cpp"):
        _C._interrupt_next_kernel(1)
        with pytest.raises(KeyboardInterrupt):
            layer.forward(x)
        for k, v in layer.state_dict().items():
            assert np.array_equal(v, before[k]), k
        y = layer.forward(x)
        layer.backward(np.ones_like(y))
    assert int(layer.state_dict()["num_batches_tracked"]) == 1
    x64 = x.reshape(-1, 3).astype(np.float64)
    m = 1.0 if momentum is None else momentum
    np.testing.assert_allclose(layer.state_dict()["running_mean"], m * x64.mean(axis=0), rtol=1e-5, atol=1e-7)


def test_bad_dy_keeps_the_forward_for_a_correct_retry():
    layer = BatchNorm2D(2)
    y = layer.forward(np.random.default_rng(0).standard_normal((2, 3, 3, 2)).astype(np.float32))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 3, 3, 2\) \(the shape of the last forward's x\), got \(2, 3, 2, 3\)"):
        layer.backward(np.ones((2, 3, 2, 3), np.float32))
    assert layer.backward(np.ones(y.shape, np.float32)).shape == y.shape


@pytest.mark.parametrize(
    "make, exc, pattern",
    [
        (lambda: BatchNorm2D(0), ValueError, r"num_features: expected an integer >= 1, got 0"),
        (lambda: BatchNorm1D(3.0), TypeError, r"num_features: expected an integer, got float 3.0"),
        (lambda: BatchNorm2D(3, eps=0.0), ValueError, r"eps: expected a finite number in \(0, inf\), got 0.0"),
        (lambda: BatchNorm2D(3, eps="1e-5"), TypeError, r"eps: expected a real number, got str '1e-5'"),
        (lambda: BatchNorm1D(3, momentum=1.5), ValueError, r"momentum: expected a finite number in \[0, 1\], got 1.5"),
        (lambda: BatchNorm1D(3, momentum="cumulative"), TypeError, r"momentum: expected a real number, got str"),
        (lambda: BatchNorm2D(3, affine=1), TypeError, r"affine: expected True or False, got int 1"),
        (lambda: BatchNorm2D(3, track_running_stats=None), TypeError, r"track_running_stats: expected True or False, got NoneType"),
        (lambda: BatchNorm2D(3, dtype=np.int32), TypeError, r"dtype: expected float32 or float64, got int32"),
    ],
)
def test_bad_constructor_arguments(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


@pytest.mark.parametrize(
    "layer",
    [BatchNorm2D(5), BatchNorm2D(3, eps=1e-3, momentum=None, affine=False, dtype=np.float64),
     BatchNorm1D(4, momentum=0.3, track_running_stats=False), BatchNorm1D(2, affine=False, track_running_stats=False)],
    ids=repr,
)
def test_get_config_round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))  # JSON-serialisable
    clone = type(layer)(**config)
    assert clone.get_config() == layer.get_config()
    assert clone.state_dict().keys() == layer.state_dict().keys()
    for k, v in layer.state_dict().items():
        assert clone.state_dict()[k].dtype == v.dtype
        np.testing.assert_array_equal(clone.state_dict()[k], v)
    assert repr(clone) == repr(layer)


def test_defaults_are_torch_defaults():
    layer = BatchNorm2D(3)
    assert layer.get_config() == dict(num_features=3, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                                      dtype="float32")
    sd = layer.state_dict()
    np.testing.assert_array_equal(sd["weight"], 1)
    np.testing.assert_array_equal(sd["bias"], 0)
    np.testing.assert_array_equal(sd["running_mean"], 0)
    np.testing.assert_array_equal(sd["running_var"], 1)
    assert sd["num_batches_tracked"].shape == () and sd["num_batches_tracked"].dtype == np.int64
    assert "BatchNorm1D" in pyrnn.layers.__all__ and pyrnn.BatchNorm2D is BatchNorm2D


def test_fused_relu_forward_is_max_of_forward_and_its_backward_the_relus_then_the_batchnorms():
    """On the cpp backend, in every mode: max(forward, 0), the same running statistics and counter, and a
    backward (taking the ReLU output's gradient) equal to the ReLU's backward then the BatchNorm's; None on a
    backend without the fused kernels."""
    if "cpp" not in pyrnn.available_backends():
        pytest.skip("the fused kernel is the cpp backend's")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    for training, track in ((True, True), (False, True), (True, False)):
        fused, plain, relu = pyrnn.BatchNorm2D(3, track_running_stats=track), pyrnn.BatchNorm2D(3, track_running_stats=track), pyrnn.ReLU()
        for bn in (fused, plain):
            bn.params["weight"][...] = [1.5, -0.5, 1.0]
            if track:
                bn.buffers["running_mean"][...] = [0.2, -0.1, 0.3]
            bn.train(training)
        with pyrnn.use_backend("cpp"):
            with pyrnn.no_grad():
                np.testing.assert_array_equal(fused.fused_relu_forward(x), relu.forward(plain.forward(x)))
            y = fused.fused_relu_forward(x)
            np.testing.assert_array_equal(y, relu.forward(plain.forward(x)))
            np.testing.assert_array_equal(fused.backward(dy), plain.backward(relu.backward(dy)))
        for k, v in plain.state_dict().items():
            np.testing.assert_array_equal(fused.state_dict()[k], v, err_msg=f"{k} training={training}")
        for k, g in plain.grads.items():
            np.testing.assert_array_equal(fused.grads[k], g, err_msg=f"grad {k} training={training}")
    with pyrnn.use_backend("numpy"):
        assert fused.fused_relu_forward(x) is None


def test_folded_weight_and_bias_give_the_layer_then_the_batchnorm_in_eval():
    """w' x + b' equals BatchNorm(w x + b) with the running statistics (float64, affine or not, with and without
    a bias before it); None where the BatchNorm normalises with batch statistics or w does not match it."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 5))
    w, b = rng.standard_normal((3, 5)), rng.standard_normal(3)
    for affine in (True, False):
        bn = BatchNorm2D(3, affine=affine, dtype=np.float64).eval()
        bn.buffers["running_mean"][...] = rng.standard_normal(3)
        bn.buffers["running_var"][...] = rng.random(3) + 0.1
        if affine:
            bn.params["weight"][...] = rng.standard_normal(3)
            bn.params["bias"][...] = rng.standard_normal(3)
        for bias in (b, None):
            wf, bf = bn.folded(w, bias)
            z = x @ w.T + (0 if bias is None else bias)
            with pyrnn.use_backend("numpy"), pyrnn.no_grad():
                want = bn.forward(z.reshape(7, 1, 1, 3)).reshape(7, 3)
            np.testing.assert_allclose(x @ wf.T + bf, want, rtol=1e-12, atol=1e-12)
            assert wf.dtype == bf.dtype == np.float64 and wf.shape == w.shape
    assert bn.folded(w.astype(np.float32), None) is None  # not the layer's dtype
    assert bn.folded(w[:2], None) is None  # not its channels
    assert bn.train().folded(w, b) is None  # training: batch statistics
    with pyrnn.inference():
        assert bn.folded(w, b) is not None  # inference: eval mode whatever the layer's
    assert BatchNorm2D(3, track_running_stats=False, dtype=np.float64).eval().folded(w, b) is None
