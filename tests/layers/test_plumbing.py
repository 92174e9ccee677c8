"""The plumbing layers of the task models, FeatureSlice and VectorToState: finite-difference
gradients, what they compute, configs and bad input."""

import json

import numpy as np
import pytest

from pyrnn.layers import FeatureSlice, VectorToState

from gradcheck import check_layer_grads


def _normal(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("shape", [(3, 7), (2, 4, 7)])
def test_feature_slice_cuts_the_last_axis_and_checks_its_gradient(shape):
    x = _normal(shape)
    layer = FeatureSlice(2, 5)
    np.testing.assert_array_equal(layer.forward(x), x[..., 2:5])
    layer.clear_saved()
    check_layer_grads(FeatureSlice(2, 5), (x,))


def test_vector_to_state_splits_the_vector_into_one_state_per_layer():
    x = _normal((3, 2 * 4))
    h = VectorToState(2).forward(x)
    assert h.shape == (2, 3, 4) and h.flags.c_contiguous
    for b in range(3):
        np.testing.assert_array_equal(h[0, b], x[b, :4])
        np.testing.assert_array_equal(h[1, b], x[b, 4:])
    check_layer_grads(VectorToState(2), (x,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_follows_the_input(dtype):
    assert FeatureSlice(0, 1).forward(_normal((2, 3), dtype=dtype)).dtype == dtype
    assert VectorToState().forward(_normal((2, 3), dtype=dtype)).dtype == dtype


@pytest.mark.parametrize("layer", [FeatureSlice(1, 3), VectorToState(3)])
def test_config_round_trip(layer):
    again = type(layer)(**json.loads(json.dumps(layer.get_config())))
    x = _normal((2, 6))
    np.testing.assert_array_equal(again.forward(x), layer.forward(x))


def test_bad_arguments_and_inputs_name_what_was_expected():
    with pytest.raises(ValueError, match=r"stop: expected an integer >= 3, got 2"):
        FeatureSlice(2, 2)
    with pytest.raises(ValueError, match=r"start: expected an integer >= 0, got -1"):
        FeatureSlice(-1, 2)
    with pytest.raises(ValueError, match=r"num_states: expected an integer >= 1, got 0"):
        VectorToState(0)
    with pytest.raises(ValueError, match=r"expected at least 5 features .* got shape \(2, 4\)"):
        FeatureSlice(1, 5).forward(np.zeros((2, 4)))
    with pytest.raises(TypeError, match="expected a float32 or float64 array, got dtype int64"):
        FeatureSlice(0, 1).forward(np.zeros((2, 4), np.int64))
    with pytest.raises(ValueError, match=r"divisible by num_states=3, got shape \(2, 4\)"):
        VectorToState(3).forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"expected a 2-D array .* got 3-D"):
        VectorToState().forward(np.zeros((2, 4, 1)))
    layer = VectorToState(2)
    layer.forward(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 3, 2\)"):
        layer.backward(np.zeros((3, 2, 2)))
