"""The four architectures build, run forward and backward, learn, and round-trip through checkpoints."""

import numpy as np
import pytest

import pyrnn
from pyrnn import vision


def _images(B, S, C, seed=0):
    return np.random.default_rng(seed).standard_normal((B, S, S, C)).astype(np.float32)


@pytest.mark.parametrize(
    "build, size, out",
    [
        (lambda: vision.lenet5(10, 1, seed=0), 32, (10,)),
        (lambda: vision.lenet5(3, 2, activation="relu", seed=0), 32, (3,)),
        (lambda: vision.vgg(((1, 8), (2, 16)), 5, 3, seed=0), 16, (5,)),
        (lambda: vision.vgg(((1, 8), (1, 8)), 4, 1, batch_norm=True, seed=0), 12, (4,)),
        (lambda: vision.resnet((1, 1, 1), (8, 16, 32), 7, 3, seed=0), 16, (7,)),
        (lambda: vision.resnet((1, 1), (8, 16), 2, 1, stem="imagenet", seed=0), 32, (2,)),
        (lambda: vision.unet(1, 2, (4, 8, 16), seed=0), 16, (16, 16, 2)),
        (lambda: vision.unet(2, 3, (4, 8), upsample="bilinear", seed=0), 8, (8, 8, 3)),
    ],
    ids=["lenet", "lenet-relu", "vgg", "vgg-bn", "resnet-cifar", "resnet-imagenet", "unet", "unet-bilinear"],
)
def test_architectures_build_run_and_round_trip(build, size, out, tmp_path):
    model = build()
    C = model.layers[0].in_channels
    x = _images(3, size, C)
    y = model.forward(x)
    assert y.shape == (3, *out)
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape and all(np.isfinite(g).all() for _, g in model.param_grad_pairs())
    model.save(tmp_path / "m.safetensors")
    again = pyrnn.load(tmp_path / "m.safetensors")
    for name, value in model.state_dict().items():
        assert np.array_equal(again.state_dict()[name], value), name
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_a_small_resnet_learns_to_tell_bright_from_dark_quadrants():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 0.2, (256, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 4, 256)
    for i, q in enumerate(y):  # class q: quadrant q is bright
        r, c = divmod(int(q), 2)
        x[i, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 0.8
    model = vision.resnet((1, 1), (8, 16), 4, 1, seed=0).compile("adam", "cross_entropy", lr=1e-2, metrics=["accuracy"])
    history = model.fit(x[:192], y[:192], epochs=8, batch_size=32, seed=0, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert model.evaluate(x[192:], y[192:])["accuracy"] >= 0.9


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: vision.lenet5(activation="sigmoid"), ValueError, r"activation: expected one of \['tanh', 'relu'\]"),
        (lambda: vision.vgg(((2, 8, 1),)), ValueError, r"blocks: expected \(convolutions, width\) pairs"),
        (lambda: vision.resnet((2, 2), (8,)), ValueError, r"widths: expected one width per stage \(2\), got 1"),
        (lambda: vision.resnet(stem="tiny"), ValueError, r"stem: expected one of \['cifar', 'imagenet'\]"),
        (lambda: vision.unet(widths=(8,)), ValueError, r"widths: expected at least two scales"),
        (lambda: vision.unet(upsample="nearest"), ValueError, r"upsample: expected one of \['transpose', 'bilinear'\]"),
        # found by the API fuzz (vision family): NumPy's SeedSequence error, an empty tuple as a TypeError,
        # and "'int' object is not iterable" / "'NoneType' object is not iterable" for blocks
        (lambda: vision.lenet5(seed=float("nan")), TypeError, r"seed: expected an integer, got float nan"),
        (lambda: vision.unet(seed=-1), ValueError, r"seed: expected an integer >= 0, got -1"),
        (lambda: vision.resnet(()), ValueError, r"depths: expected a non-empty tuple of integers, got \(\)"),
        (lambda: vision.vgg(()), ValueError, r"blocks: expected a non-empty tuple of \(convolutions, width\) pairs, got \(\)"),
        (lambda: vision.vgg(5), TypeError, r"blocks: expected a non-empty tuple of \(convolutions, width\) pairs, got int 5"),
        (lambda: vision.vgg(None), TypeError, r"blocks: expected a non-empty tuple .*got NoneType None"),
        (lambda: vision.unet(widths="16"), TypeError, r"widths: expected a non-empty tuple of integers, got str '16'"),
    ],
)
def test_bad_arguments_are_named(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()
