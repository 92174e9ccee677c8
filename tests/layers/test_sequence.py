"""Sequence plumbing: TimeDistributed, LastStep/FirstStep, RepeatVector, Add, Concatenate:
finite-difference gradients, equivalences, configs, ``no_grad`` and bad input."""

import json

import numpy as np
import pytest

import pyrnn
from pyrnn.grad_mode import no_grad
from pyrnn.layers.activations import Softmax
from pyrnn.layers.dense import Dense, Dropout, Embedding
from pyrnn.layers.sequence import Add, Concatenate, FirstStep, LastStep, RepeatVector, TimeDistributed

from gradcheck import check_layer_grads


def _normal(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _config_round_trip(layer):
    return type(layer).from_config(json.loads(json.dumps(layer.get_config())))


# ------------------------------------------------------------ TimeDistributed
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_time_distributed_dense_equals_dense_on_the_3d_input(dtype):
    td, dense = TimeDistributed(Dense(4, 3, dtype=dtype, seed=0)), Dense(4, 3, dtype=dtype, seed=0)
    x, dy = _normal((2, 5, 4), dtype, 1), _normal((2, 5, 3), dtype, 2)
    y = td.forward(x)
    np.testing.assert_array_equal(y, dense.forward(x))
    np.testing.assert_array_equal(td.backward(dy), dense.backward(dy))
    for k in dense.grads:
        np.testing.assert_array_equal(td.grads[k], dense.grads[k], err_msg=k)
    assert y.shape == (2, 5, 3) and y.dtype == dtype


def test_time_distributed_gradients_match_finite_differences():
    check_layer_grads(TimeDistributed(Dense(4, 3, dtype=np.float64, seed=0)), (_normal((2, 3, 4)),))
    check_layer_grads(TimeDistributed(Softmax()), (_normal((2, 3, 4)),))  # no params, dtype from the input


def test_time_distributed_exposes_the_inner_parameters():
    inner = Dense(4, 3, seed=0)
    td = TimeDistributed(inner)
    assert td.params is inner.params and td.grads is inner.grads
    assert td.state_dict().keys() == {"weight", "bias"} and td.parameters()[0] is inner.params["weight"]
    td.load_state_dict({"weight": np.ones((3, 4)), "bias": np.zeros(3)})
    np.testing.assert_array_equal(inner.params["weight"], 1)
    td.forward(np.ones((1, 2, 4), np.float32))
    td.backward(np.ones((1, 2, 3), np.float32))
    assert inner.grads["bias"].any()
    td.zero_grad()
    assert not inner.grads["bias"].any()


@no_grad()  # training-mode masks, nothing kept for a backward
def test_time_distributed_train_and_eval_reach_the_inner_layer():
    td = TimeDistributed(Dropout(0.5, seed=0))
    x = np.ones((3, 4, 5))
    assert (td.forward(x) == 0).any()
    td.eval()
    assert not td.training and not td.layer.training
    np.testing.assert_array_equal(td.forward(x), x)
    td.train()
    assert td.layer.training


def test_time_distributed_embedding_takes_integer_steps():
    td, emb = TimeDistributed(Embedding(6, 2, dtype=np.float64, seed=0)), Embedding(6, 2, dtype=np.float64, seed=0)
    idx = np.array([[0, 5, 5], [1, 2, 0]])
    np.testing.assert_array_equal(td.forward(idx), emb.forward(idx))
    dy = _normal((2, 3, 2))
    assert td.backward(dy) is None and emb.backward(dy) is None
    np.testing.assert_array_equal(td.grads["weight"], emb.grads["weight"])


def test_time_distributed_config_round_trips_nested():
    td = TimeDistributed(TimeDistributed(Dense(3, 2, dtype=np.float64, seed=4)))
    cfg = td.get_config()
    assert cfg == {"layer": {"class": "TimeDistributed", "config": {"layer": {"class": "Dense", "config": Dense(3, 2, dtype=np.float64, seed=4).get_config()}}}}
    again = _config_round_trip(td)
    assert again.get_config() == cfg and repr(again) == repr(td)
    x = _normal((2, 3, 4, 3))
    np.testing.assert_array_equal(again.forward(x), td.forward(x))


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: TimeDistributed.from_config({"layer": {"class": "NoSuchLayer", "config": {}}}), ValueError, r"layer class: expected the name of one defined Layer subclass, got 'NoSuchLayer' \(no such class is defined\)"),
        (lambda: TimeDistributed("Dense"), TypeError, r"layer: expected a Layer, got str"),
        (lambda: TimeDistributed({"class": "Dense", "config": {}}), TypeError, r"layer: expected a Layer, got dict \(a saved config is rebuilt by TimeDistributed.from_config\)"),
        (lambda: TimeDistributed(Dense(3, 2)).forward(np.ones(3)), ValueError, r"x: expected an array \(batch, time, \.\.\.\) of at least 2 dimensions, got 1-D"),
        (lambda: TimeDistributed(Dense(3, 2)).forward(np.ones((2, 4, 5))), ValueError, r"x: expected in_features=3 .*got shape \(8, 5\)"),
        (lambda: TimeDistributed(pyrnn.GRU(3, 2)).forward(np.ones((2, 4, 5, 3))), ValueError, r"GRU: expected one array with 8 rows \(batch\*time\), got tuple"),
    ],
    ids=["unknown-class", "not-a-layer", "config-dict", "1-D", "inner-checks", "inner-returns-tuple"],
)
def test_time_distributed_bad_input_is_named(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ------------------------------------------------------- LastStep, FirstStep
def test_last_and_first_step_pick_the_right_rows():
    x = _normal((4, 5, 3))
    np.testing.assert_array_equal(LastStep().forward(x), x[:, -1])
    np.testing.assert_array_equal(FirstStep().forward(x), x[:, 0])
    lengths = np.array([5, 1, 3, 2])
    y = LastStep().forward(x, lengths)
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(y[b], x[b, n - 1])
    np.testing.assert_array_equal(LastStep().forward(x, [5, 5, 5, 5]), x[:, -1])  # lists of ints too


def test_last_step_backward_scatters_into_zeros():
    layer = LastStep()
    x = _normal((3, 4, 2))
    layer.forward(x, np.array([2, 4, 1], np.int32))
    dy = _normal((3, 2), seed=1)
    dx = layer.backward(dy)
    want = np.zeros_like(x)
    want[0, 1], want[1, 3], want[2, 0] = dy
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("lengths", [None, np.array([1, 4, 2])])
def test_step_pickers_gradients_match_finite_differences(lengths):
    layer = LastStep()
    check_layer_grads(layer, (_normal((3, 4, 2)),), forward=lambda x: layer.forward(x, lengths))
    check_layer_grads(FirstStep(), (_normal((3, 4, 2)),))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_step_pickers_give_the_final_states_of_a_recurrent_layer(bidirectional):
    """As LastStep's docstring says: forward direction at t = T-1, reverse direction at t = 0."""
    H = 3
    lstm = pyrnn.LSTM(2, H, bidirectional=bidirectional, dtype=np.float64, seed=0)
    y, (h, _) = lstm.forward(_normal((4, 6, 2)))
    np.testing.assert_allclose(LastStep().forward(y[..., :H]), h[0], rtol=1e-12)
    if bidirectional:
        np.testing.assert_allclose(FirstStep().forward(y[..., H:]), h[1], rtol=1e-12)
        assert not np.allclose(LastStep().forward(y[..., H:]), h[1])


@pytest.mark.parametrize(
    "x, lengths, exc, pattern",
    [
        (np.ones((2, 3, 1)), np.array([0, 2]), ValueError, r"lengths\[0\]: expected a value in \[1, 3\] \(the time axis of x\), got 0"),
        (np.ones((2, 3, 1)), np.array([3, 4]), ValueError, r"lengths\[1\]: expected a value in \[1, 3\] \(the time axis of x\), got 4"),
        (np.ones((2, 3, 1)), np.array([1.0, 2.0]), TypeError, r"lengths: expected integers, got dtype float64"),
        (np.ones((2, 3, 1)), np.array([1, 2, 3]), ValueError, r"lengths: expected shape \(2,\) \(batch,\), got \(3,\)"),
        (np.ones((2, 3, 1), np.int64), None, TypeError, r"x: expected a float32 or float64 array, got dtype int64"),
        (np.ones((2, 3)), None, ValueError, r"x: expected a 3-D array \(batch, time, features\), got 2-D with shape \(2, 3\)"),
        (np.ones((2, 0, 3)), None, ValueError, r"x: expected at least one time step, got shape \(2, 0, 3\)"),
    ],
    ids=["length-0", "length-too-big", "float-lengths", "lengths-shape", "int-x", "2-D", "T=0"],
)
def test_last_step_bad_input_is_named(x, lengths, exc, pattern):
    with pytest.raises(exc, match=pattern):
        LastStep().forward(x, lengths)


# --------------------------------------------------------------- RepeatVector
def test_repeat_vector_values_and_gradients():
    x = _normal((2, 3))
    y = RepeatVector(4).forward(x)
    assert y.shape == (2, 4, 3)
    for t in range(4):
        np.testing.assert_array_equal(y[:, t], x)
    check_layer_grads(RepeatVector(4), (x,))


# ---------------------------------------------------------- Add, Concatenate
def test_add_values_gradients_and_independent_copies():
    xs = [_normal((2, 3, 4), seed=k) for k in range(3)]
    layer = Add()
    np.testing.assert_allclose(layer.forward(*xs), xs[0] + xs[1] + xs[2], rtol=1e-15)
    dy = _normal((2, 3, 4), seed=9)
    dxs = layer.backward(dy)
    assert isinstance(dxs, tuple) and len(dxs) == 3
    for dx in dxs:
        np.testing.assert_array_equal(dx, dy)
    dxs[0][...] = 0  # a consumer writing into its gradient changes no other
    assert dxs[1].any() and dy.any()
    check_layer_grads(Add(), [_normal((3, 2), seed=k) for k in range(3)])


@pytest.mark.parametrize("axis, shapes", [(-1, [(2, 3, 4), (2, 3, 1), (2, 3, 2)]), (1, [(2, 1, 4), (2, 5, 4)]), (0, [(1, 3), (2, 3)])])
def test_concatenate_values_and_gradients(axis, shapes):
    xs = [_normal(s, seed=k) for k, s in enumerate(shapes)]
    layer = Concatenate(axis)
    np.testing.assert_array_equal(layer.forward(*xs), np.concatenate(xs, axis=axis))
    check_layer_grads(Concatenate(axis), xs)


def test_merges_of_mixed_dtypes_give_each_input_its_dtype_back():
    a, b = np.ones((2, 3), np.float32), np.ones((2, 2), np.float64)
    cat = Concatenate()
    assert cat.forward(a, b).dtype == np.float64
    da, db = cat.backward(np.ones((2, 5)))
    assert (da.dtype, da.shape, db.dtype, db.shape) == (np.float32, (2, 3), np.float64, (2, 2))
    add = Add()
    assert add.forward(a, b[:, :1].repeat(3, 1)).dtype == np.float64
    assert [d.dtype for d in add.backward(np.ones((2, 3)))] == [np.float32, np.float64]
    assert Add().forward(a, a).dtype == np.float32


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: Add().forward(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 4))), ValueError,
         r"Add: expected inputs of one shape, got input 0 with shape \(2, 3\) and input 2 with shape \(2, 4\)"),
        (lambda: Add().forward(), ValueError, r"Add: expected at least one input, got none"),
        (lambda: Add().forward(np.ones(2), np.ones(2, np.int64)), TypeError, r"input 1: expected a float32 or float64 array, got dtype int64"),
        (lambda: Concatenate().forward(np.ones((2, 3)), np.ones((3, 3))), ValueError,
         r"Concatenate: expected inputs of equal shapes except on axis -1, got input 0 with shape \(2, 3\) and input 1 with shape \(3, 3\)"),
        (lambda: Concatenate().forward(np.ones((2, 3)), np.ones((2, 1, 3))), ValueError, r"got input 0 with shape \(2, 3\) and input 1 with shape \(2, 1, 3\)"),
        (lambda: Concatenate(axis=2).forward(np.ones((2, 3)), np.ones((2, 3))), ValueError, r"input 0: expected an array with axis 2, got 2-D"),
        (lambda: Concatenate(axis="last"), TypeError, r"axis: expected an integer, got str 'last'"),
        (lambda: RepeatVector(0), ValueError, r"n: expected an integer >= 1, got 0"),
        (lambda: RepeatVector(2).forward(np.ones((2, 3, 4))), ValueError, r"x: expected a 2-D array \(batch, features\), got 3-D"),
    ],
    ids=["add-shapes", "add-none", "add-int", "cat-shapes", "cat-ndim", "cat-axis", "cat-axis-type", "repeat-n", "repeat-3-D"],
)
def test_bad_input_is_named(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ------------------------------------------------ every layer: dy, config, no_grad
CASES = [  # (layer factory, forward inputs, dy shape)
    (lambda: TimeDistributed(Dense(3, 2, dtype=np.float64, seed=0)), (np.ones((2, 4, 3)),), (2, 4, 2)),
    (LastStep, (np.ones((2, 4, 3)),), (2, 3)),
    (FirstStep, (np.ones((2, 4, 3)),), (2, 3)),
    (lambda: RepeatVector(5), (np.ones((2, 3)),), (2, 5, 3)),
    (Add, (np.ones((2, 3)), np.ones((2, 3))), (2, 3)),
    (lambda: Concatenate(axis=0), (np.ones((2, 3)), np.ones((1, 3))), (3, 3)),
]
CASE_IDS = ["time-distributed", "last-step", "first-step", "repeat-vector", "add", "concatenate"]


@pytest.mark.parametrize("make, inputs, dy_shape", CASES, ids=CASE_IDS)
def test_config_round_trips_through_json(make, inputs, dy_shape):
    layer = make()
    again = _config_round_trip(layer)
    assert again.get_config() == layer.get_config() and repr(again) == repr(layer)
    np.testing.assert_array_equal(again.forward(*inputs), layer.forward(*inputs))


@pytest.mark.parametrize("make, inputs, dy_shape", CASES, ids=CASE_IDS)
def test_no_grad_saves_nothing(make, inputs, dy_shape):
    layer = make()
    with no_grad():
        layer.forward(*inputs)
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}.backward: expected a forward\(\) first"):
        layer.backward(np.ones(dy_shape))


@pytest.mark.parametrize("make, inputs, dy_shape", CASES, ids=CASE_IDS)
def test_bad_dy_is_named_and_consumes_nothing(make, inputs, dy_shape):
    layer = make()
    layer.forward(*inputs)
    bad = dy_shape[:-1] + (dy_shape[-1] + 1,)
    with pytest.raises(ValueError, match=rf"dy: expected shape {tuple(dy_shape)}.*got {bad}".replace("(", r"\(").replace(")", r"\)")):
        layer.backward(np.ones(bad))
    with pytest.raises(TypeError, match=r"dy: expected a floating-point array \(float64\), got dtype int64"):
        layer.backward(np.ones(dy_shape, np.int64))
    layer.backward(np.ones(dy_shape))
