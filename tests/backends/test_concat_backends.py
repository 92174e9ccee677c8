"""Concatenation along the last axis and its split: every backend against the reference, exactly (a copy),
on the thread team, in float32 and float64, odd and empty sizes; the contract's and the bindings' checks;
the Concatenate layer through the kernels (channels of images) and through NumPy (other axes, mixed dtypes)."""

import numpy as np
import pytest

import pyrnn
from pyrnn.backends import backend_module
from pyrnn.grad_mode import no_grad

from helpers import cpp_team

BACKENDS = pyrnn.available_backends()
requires_cpp = pytest.mark.skipif("cpp" not in BACKENDS, reason="the cpp backend is not built")
# (leading shape, widths): U-Net's skip (16 + 16 channels), one part, an empty part, no rows, a long row
CASES = [((8, 9, 7), (16, 16)), ((5,), (3,)), ((4, 3), (2, 0, 5)), ((0, 3), (2, 3)), ((2,), (1, 70_001, 2)),
         ((70, 11, 13), (5, 3))]


def _parts(lead, widths, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(lead + (w,)).astype(dtype) for w in widths]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lead, widths", CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_copies_exactly(backend, lead, widths, dtype):
    xs = _parts(lead, widths, dtype)
    want = np.concatenate(xs, axis=-1)
    kernels = backend_module(backend)
    for threads in (1, 2):  # 2: the team's chunks even on small shapes (no-op off the cpp backend)
        with cpp_team(threads):
            y = kernels.concat_last(xs)
            assert y.dtype == dtype and y.flags.c_contiguous and not any(np.shares_memory(y, x) for x in xs)
            np.testing.assert_array_equal(y, want)
            parts = kernels.split_last(y, list(widths))
            for p, x in zip(parts, xs):
                assert p.dtype == dtype and p.flags.c_contiguous and not np.shares_memory(p, y)
                np.testing.assert_array_equal(p, x)


def test_nan_and_signed_zeros_copy_bit_for_bit():
    xs = [np.array([[np.nan, -0.0, np.inf]], np.float32), np.array([[-np.inf, 0.0]], np.float32)]
    for backend in BACKENDS:
        y = backend_module(backend).concat_last(xs)
        assert y.view(np.uint32).tolist() == np.concatenate(xs, axis=-1).view(np.uint32).tolist()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call, error, match", [
    (lambda k: k.concat_last([]), ValueError, r"xs: expected a non-empty list of arrays"),
    (lambda k: k.concat_last([np.zeros((2, 3), np.float32), np.zeros((3, 3), np.float32)]), ValueError,
     r"xs\[1\]: expected shape \(2, 'F'\) \(xs\[0\]'s but for the last axis\), got shape \(3, 3\)"),
    (lambda k: k.concat_last([np.zeros((2, 3), np.float32), np.zeros((2, 3))]), TypeError,
     r"xs\[1\]: expected dtype float32, got float64"),
    (lambda k: k.concat_last([np.zeros((2, 3), np.int64)]), TypeError, r"xs\[0\]: expected dtype float32 or float64"),
    (lambda k: k.concat_last([np.zeros((3, 4), np.float32)[:, ::2]]), ValueError, r"xs\[0\]: expected a C-contiguous"),
    (lambda k: k.split_last(np.zeros((2, 5), np.float32), [2, 2]), ValueError,
     r"sizes: expected sizes summing to y's last axis 5, got \[2, 2\] \(sum 4\)"),
    (lambda k: k.split_last(np.zeros((2, 5), np.float32), [6, -1]), ValueError, r"sizes: expected a non-empty list"),
])
def test_contract_checks(backend, call, error, match):
    with pytest.raises(error, match=match):
        call(backend_module(backend))


@requires_cpp
def test_bindings_check_their_arrays():
    from pyrnn import _C

    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"y: expected a last axis of 3 \(the parts' sum\), got 4"):
        _C.concat_last([x], np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"xs\[0\]: expected shape \(4, 3\), got \(5, 3\)"):
        _C.concat_last([np.zeros((5, 3), np.float32)], np.zeros((4, 3), np.float32))
    with pytest.raises(TypeError, match=r"xs\[0\]: expected dtype float64, got float32"):
        _C.concat_last([x], np.zeros((4, 3)))
    y = np.zeros((4, 6), np.float32)
    with pytest.raises(ValueError, match=r"xs\[1\]: expected an array sharing no memory with y"):
        _C.concat_last([x, y.reshape(8, 3)[:4]], y)
    with pytest.raises(ValueError, match=r"parts\[0\]: expected a writable array"):
        x.flags.writeable = False
        _C.split_last(np.zeros((4, 3), np.float32), [x])
    with pytest.raises(TypeError, match=r"parts: expected a list of arrays, got tuple"):
        _C.split_last(y, (y,))


@pytest.mark.parametrize("backend", BACKENDS)
def test_concatenate_layer_channels_and_other_axes(backend):
    a, b = _parts((2, 5, 6), (3, 4), np.float32)
    with pyrnn.use_backend(backend):
        layer = pyrnn.Concatenate()  # the channels: the kernels
        y = layer.forward(a, b)
        np.testing.assert_array_equal(y, np.concatenate([a, b], axis=-1))
        da, db = layer.backward(y * 2)
        np.testing.assert_array_equal(da, 2 * a)
        np.testing.assert_array_equal(db, 2 * b)
        mixed = pyrnn.Concatenate(axis=1)  # another axis, mixed dtypes: NumPy
        with no_grad():
            z = mixed.forward(a[..., 0], b[:, :3, :, 0].astype(np.float64))
        assert z.dtype == np.float64 and z.shape == (2, 8, 6)
        np.testing.assert_array_equal(z, np.concatenate([a[..., 0], b[:, :3, :, 0]], axis=1))
