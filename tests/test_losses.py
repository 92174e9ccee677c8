"""Losses: values and gradients against PyTorch (float32/float64, masks, per-sample and
per-time-step cross-entropy), finite differences in float64, hand-computed small cases,
the registry and config round trip, and bad inputs with their messages."""

import math
import zlib

import numpy as np
import pytest

import pyrnn
from pyrnn.losses import BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss, get_loss, loss_from_config, loss_to_config

from gradcheck import assert_grad_close

REGRESSION = [MSELoss(), L1Loss(), HuberLoss(), HuberLoss(delta=0.4), BCEWithLogitsLoss()]
# (pred shape, mask shape or None)
ELEMENTWISE_CASES = [((7,), None), ((7,), (7,)), ((4, 3), None), ((4, 3), (4,)), ((3, 5, 2), None),
                     ((3, 5, 2), (3,)), ((3, 5, 2), (3, 5)), ((2, 3, 2, 2), (2, 3))]
CE_CASES = [((6, 4), None), ((6, 4), (6,)), ((3, 5, 4), None), ((3, 5, 4), (3, 5)), ((1, 1, 1), None)]
TOL = {np.float64: dict(rtol=1e-12, atol=1e-15), np.float32: dict(rtol=1e-5, atol=1e-7)}


def _mask(rng, shape):
    if shape is None:
        return None
    m = rng.random(shape) < 0.6
    m.flat[0] = True  # never empty
    return m


def _elementwise_problem(loss, shape, mask_shape, dtype, rng):
    pred = (2 * rng.standard_normal(shape)).astype(dtype)
    if isinstance(loss, BCEWithLogitsLoss):
        target = np.where(rng.random(shape) < 0.3, rng.random(shape), rng.random(shape) < 0.5).astype(dtype)
    else:
        target = rng.standard_normal(shape).astype(dtype)
    return pred, target, _mask(rng, mask_shape)


def _torch_loss(torch, loss):
    nn = torch.nn
    return {MSELoss: lambda: nn.MSELoss(), L1Loss: lambda: nn.L1Loss(), BCEWithLogitsLoss: lambda: nn.BCEWithLogitsLoss(),
            HuberLoss: lambda: nn.HuberLoss(delta=getattr(loss, "delta", 1.0)),
            CrossEntropyLoss: lambda: nn.CrossEntropyLoss()}[type(loss)]()


def _torch_value_grad(torch, loss, pred, target, mask):
    """PyTorch's mean over the selected positions (boolean indexing) and its gradient w.r.t. all of pred."""
    tp = torch.tensor(pred, requires_grad=True)
    tt = torch.tensor(target)
    sel_p, sel_t = (tp, tt) if mask is None else (tp[torch.tensor(mask)], tt[torch.tensor(mask)])
    if isinstance(loss, CrossEntropyLoss):
        sel_p, sel_t = sel_p.reshape(-1, pred.shape[-1]), sel_t.reshape(-1)
    value = _torch_loss(torch, loss)(sel_p, sel_t)
    value.backward()
    return value.item(), tp.grad.numpy()


# ---------------------------------------------------------------- torch parity

@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ELEMENTWISE_CASES, ids=str)
@pytest.mark.parametrize("loss", REGRESSION, ids=repr)
def test_elementwise_matches_torch(torch, loss, case, dtype):
    rng = np.random.default_rng(zlib.crc32(repr((loss, case)).encode()))
    pred, target, mask = _elementwise_problem(loss, *case, dtype, rng)
    value = loss.forward(pred, target, mask)
    grad = loss.backward()
    assert isinstance(value, float)
    assert grad.shape == pred.shape and grad.dtype == pred.dtype
    t_value, t_grad = _torch_value_grad(torch, loss, pred, target, mask)
    np.testing.assert_allclose(value, t_value, **TOL[dtype])
    np.testing.assert_allclose(grad, t_grad, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CE_CASES, ids=str)
def test_cross_entropy_matches_torch(torch, case, dtype):
    shape, mask_shape = case
    rng = np.random.default_rng(len(shape) * 10 + (mask_shape is not None))
    logits = (3 * rng.standard_normal(shape)).astype(dtype)
    target = rng.integers(0, shape[-1], shape[:-1])
    mask = _mask(rng, mask_shape)
    loss = CrossEntropyLoss()
    value, grad = loss.forward(logits, target, mask), loss.backward()
    assert grad.shape == logits.shape and grad.dtype == logits.dtype
    t_value, t_grad = _torch_value_grad(torch, loss, logits, target, mask)
    np.testing.assert_allclose(value, t_value, **TOL[dtype])
    np.testing.assert_allclose(grad, t_grad, **TOL[dtype])


@pytest.mark.parametrize("loss", [CrossEntropyLoss(), BCEWithLogitsLoss()], ids=repr)
def test_extreme_logits_stay_finite_and_match_torch(torch, loss):
    logits = np.array([[1000.0, -1000.0, 0.0], [-800.0, 5.0, 800.0]])
    target = np.array([1, 2]) if isinstance(loss, CrossEntropyLoss) else np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    value, grad = loss.forward(logits, target), loss.backward()
    assert np.isfinite(value) and np.isfinite(grad).all()
    t_value, t_grad = _torch_value_grad(torch, loss, logits, target, None)
    np.testing.assert_allclose(value, t_value, rtol=1e-12)
    np.testing.assert_allclose(grad, t_grad, rtol=1e-12, atol=1e-300)


# ------------------------------------------------------------ finite differences


@pytest.mark.parametrize("case", [((5,), None), ((3, 4, 2), (3, 4)), ((4, 3), (4,))], ids=str)
@pytest.mark.parametrize("loss", REGRESSION, ids=repr)
def test_elementwise_gradient_by_finite_differences(loss, case):
    rng = np.random.default_rng(7)
    pred, target, mask = _elementwise_problem(loss, *case, np.float64, rng)
    loss.forward(pred, target, mask)
    analytic = loss.backward()
    assert_grad_close(analytic, lambda: loss.forward(pred, target, mask), pred, repr(loss))


@pytest.mark.parametrize("case", CE_CASES, ids=str)
def test_cross_entropy_gradient_by_finite_differences(case):
    shape, mask_shape = case
    rng = np.random.default_rng(3)
    logits, target, mask = rng.standard_normal(shape), rng.integers(0, shape[-1], shape[:-1]), _mask(rng, mask_shape)
    loss = CrossEntropyLoss()
    loss.forward(logits, target, mask)
    assert_grad_close(loss.backward(), lambda: loss.forward(logits, target, mask), logits, "cross-entropy")


# -------------------------------------------------------------- hand-computed


def test_hand_computed_regression():
    pred, target = np.array([1.5, 2.0, 3.0]), np.array([1.0, 0.0, 0.0])  # d = 0.5, 2, 3
    cases = {
        MSELoss(): ((0.25 + 4 + 9) / 3, [2 * 0.5 / 3, 2 * 2 / 3, 2 * 3 / 3]),
        L1Loss(): ((0.5 + 2 + 3) / 3, [1 / 3, 1 / 3, 1 / 3]),
        HuberLoss(): ((0.125 + 1.5 + 2.5) / 3, [0.5 / 3, 1 / 3, 1 / 3]),
        HuberLoss(delta=2.5): ((0.125 + 2.0 + 2.5 * (3 - 1.25)) / 3, [0.5 / 3, 2 / 3, 2.5 / 3]),
    }
    for loss, (value, grad) in cases.items():
        assert loss.forward(pred, target) == pytest.approx(value, rel=1e-15), repr(loss)
        np.testing.assert_allclose(loss.backward(), grad, rtol=1e-15, err_msg=repr(loss))


def test_hand_computed_ties_have_zero_gradient():
    pred, target = np.array([1.0, 2.0, -3.0]), np.array([1.0, 0.0, 0.0])  # d = 0 on the first element
    loss = L1Loss()
    assert loss.forward(pred, target) == pytest.approx(5 / 3, rel=1e-15)
    np.testing.assert_allclose(loss.backward(), [0.0, 1 / 3, -1 / 3], rtol=1e-15)
    loss = HuberLoss()
    assert loss.forward(pred, target) == pytest.approx((0 + 1.5 + 2.5) / 3, rel=1e-15)
    np.testing.assert_allclose(loss.backward(), [0.0, 1 / 3, -1 / 3], rtol=1e-15)


def test_hand_computed_masked_mean_counts_only_selected_elements():
    pred = np.array([[1.0, 1.0], [2.0, 4.0], [100.0, np.nan]])  # row 2 is padding, never read
    target = np.zeros((3, 2))
    loss = MSELoss()
    assert loss.forward(pred, target, mask=np.array([1, 1, 0])) == pytest.approx((1 + 1 + 4 + 16) / 4, rel=1e-15)
    np.testing.assert_allclose(loss.backward(), [[0.5, 0.5], [1.0, 2.0], [0.0, 0.0]], rtol=1e-15)


def test_hand_computed_cross_entropy():
    loss = CrossEntropyLoss()
    assert loss.forward(np.zeros((1, 2)), np.array([0])) == pytest.approx(math.log(2), rel=1e-15)
    np.testing.assert_allclose(loss.backward(), [[-0.5, 0.5]], rtol=1e-15)
    # per time step, the first step masked out: softmax([0, ln 3]) = [1/4, 3/4]
    logits = np.array([[[0.0, 0.0], [0.0, math.log(3)]]])
    value = loss.forward(logits, np.array([[1, 1]]), np.array([[False, True]]))
    assert value == pytest.approx(math.log(4 / 3), rel=1e-14)
    np.testing.assert_allclose(loss.backward(), [[[0.0, 0.0], [0.25, -0.25]]], rtol=1e-14, atol=1e-16)


def test_hand_computed_bce_with_logits():
    loss = BCEWithLogitsLoss()
    # x = 0, y = 1: log 2, grad -1/2;  x = ln 3, y = 0: ln 3 + log(4/3) = ln 4, grad s(ln 3) = 3/4
    assert loss.forward(np.array([0.0, math.log(3)]), np.array([1.0, 0.0])) == pytest.approx(1.5 * math.log(2), rel=1e-15)
    np.testing.assert_allclose(loss.backward(), [-0.25, 0.375], rtol=1e-15)


# --------------------------------------------------------- protocol and registry


def test_backward_needs_a_forward_and_consumes_it():
    loss = MSELoss()
    with pytest.raises(ValueError, match=r"MSELoss.backward: expected a forward\(\) first"):
        loss.backward()
    loss.forward(np.ones(3), np.zeros(3))
    loss.backward()
    with pytest.raises(ValueError, match="expected a forward"):
        loss.backward()
    with pyrnn.no_grad():
        assert loss(np.ones(3), np.zeros(3)) == 1.0  # __call__ is forward
    with pytest.raises(ValueError, match="expected a forward"):
        loss.backward()


@pytest.mark.parametrize("name, cls", [("mse", MSELoss), ("mean_squared_error", MSELoss), ("mae", L1Loss), ("l1", L1Loss),
                                       ("mean_absolute_error", L1Loss), ("huber", HuberLoss), ("Cross_Entropy", CrossEntropyLoss),
                                       ("sparse_categorical_crossentropy", CrossEntropyLoss),
                                       ("bce_with_logits", BCEWithLogitsLoss), ("binary_crossentropy", BCEWithLogitsLoss)])
def test_get_loss_names(name, cls):
    assert type(get_loss(name)) is cls


def test_get_loss_instance_unknown_and_config_round_trip():
    huber = HuberLoss(delta=0.3)
    assert get_loss(huber) is huber
    with pytest.raises(ValueError, match=r"loss: expected one of \[.*'binary_crossentropy'.*'mse'.*\], got 'hinge'"):
        get_loss("hinge")
    with pytest.raises(TypeError, match="expected a Loss instance or a name, got int"):
        get_loss(3)
    config = loss_to_config(huber)
    assert config == {"class": "HuberLoss", "config": {"delta": 0.3}}
    rebuilt = loss_from_config(config)
    assert type(rebuilt) is HuberLoss and rebuilt.delta == 0.3
    assert type(loss_from_config(loss_to_config(CrossEntropyLoss()))) is CrossEntropyLoss
    with pytest.raises(ValueError, match=r"config\['class'\]: expected one of .*got 'Hinge'"):
        loss_from_config({"class": "Hinge", "config": {}})


# ------------------------------------------------------------------ bad inputs

BAD = [
    (MSELoss(), np.ones((2, 3)), np.ones((3, 2)), None, ValueError, r"target: expected shape \(2, 3\) \(the shape of pred\), got \(3, 2\)"),
    (MSELoss(), np.ones(3, np.int64), np.ones(3), None, TypeError, "pred: expected a float32 or float64 array, got dtype int64"),
    (MSELoss(), np.ones(3), np.array(["a", "b", "c"]), None, TypeError, "target: expected a real-valued array, got dtype <U1"),
    (MSELoss(), np.array([1.0, np.nan]), np.ones(2), None, ValueError, "pred: expected finite values, got an array that contains NaN"),
    (L1Loss(), np.ones(2), np.array([1.0, -np.inf]), None, ValueError, "target: expected finite values, got an array that contains inf"),
    (MSELoss(), np.ones((2, 3)), np.ones((2, 3)), np.ones(3), ValueError, r"mask: expected shape a prefix of pred's shape \(2, 3\).*got \(3,\)"),
    (MSELoss(), np.ones((2, 3)), np.ones((2, 3)), np.zeros(2, bool), ValueError, "mask: expected at least one selected position, got none"),
    (MSELoss(), np.ones((2, 3)), np.ones((2, 3)), np.array([1, 2]), ValueError, "mask: expected boolean or 0/1 values, got 2"),
    (MSELoss(), np.ones((0, 3)), np.ones((0, 3)), None, ValueError, r"expected at least one element to average over, got shape \(0, 3\)"),
    (BCEWithLogitsLoss(), np.ones(2), np.array([0.0, 2.0]), None, ValueError, r"target: expected labels in \[0, 1\], got 2.0"),
    (CrossEntropyLoss(), np.ones((2, 3)), np.array([0, 3]), None, ValueError, r"target: expected class indices in \[0, 3\), got 3"),
    (CrossEntropyLoss(), np.ones((2, 3)), np.array([-1, 0]), None, ValueError, r"target: expected class indices in \[0, 3\), got -1"),
    (CrossEntropyLoss(), np.ones((2, 3)), np.array([0.0, 1.0]), None, TypeError, "target: expected integer class indices, got dtype float64"),
    (CrossEntropyLoss(), np.ones((2, 3)), np.array([0, 1, 1]), None, ValueError, r"target: expected shape \(2,\) .*got \(3,\)"),
    (CrossEntropyLoss(), np.ones(3), np.array(0), None, ValueError, r"pred: expected logits \(\.\.\., C\) with a batch axis and C >= 1, got shape \(3,\)"),
    (CrossEntropyLoss(), np.ones((2, 4, 3)), np.zeros((2, 4), int), np.ones(2, bool), ValueError, r"mask: expected shape \(2, 4\) \(the shape of target\), got \(2,\)"),
    (CrossEntropyLoss(), np.array([[np.nan, 0.0]]), np.array([0]), None, ValueError, "pred: expected finite values, got an array that contains NaN"),
]


@pytest.mark.parametrize("loss, pred, target, mask, exc, msg", BAD, ids=lambda v: v if isinstance(v, str) else None)
def test_bad_inputs(loss, pred, target, mask, exc, msg):
    with pytest.raises(exc, match=msg):
        loss.forward(pred, target, mask)


def test_masked_out_positions_are_not_checked():
    # padding may hold garbage: NaN logits and out-of-range targets past a sequence's end
    logits = np.zeros((1, 3, 2))
    logits[0, 2] = np.nan
    value = CrossEntropyLoss().forward(logits, np.array([[0, 1, -100]]), np.array([[1, 1, 0]]))
    assert value == pytest.approx(math.log(2), rel=1e-15)
    assert BCEWithLogitsLoss().forward(np.array([0.0, np.inf]), np.array([1.0, 7.0]), np.array([True, False])) == pytest.approx(math.log(2))


def test_huber_delta_must_be_positive():
    for bad, exc in ((0, ValueError), (-1.0, ValueError), (float("nan"), ValueError), ("1", TypeError)):
        with pytest.raises(exc, match=r"delta: expected a (finite number in \(0, inf\)|real number), got"):
            HuberLoss(delta=bad)


def test_cross_entropy_per_pixel_equals_the_flattened_loss():
    rng = np.random.default_rng(0)
    logits, target = rng.standard_normal((2, 4, 5, 3)), rng.integers(0, 3, (2, 4, 5))
    a, b = CrossEntropyLoss(), CrossEntropyLoss()
    assert a.forward(logits, target) == pytest.approx(b.forward(logits.reshape(-1, 3), target.reshape(-1)), rel=1e-15)
    np.testing.assert_allclose(a.backward(), b.backward().reshape(2, 4, 5, 3), rtol=1e-15)


# ------------------------------------------------- from_logits (issue 13, point 4)
def _probabilities(rng, shape):
    """Rows that sum to 1 (a softmax output), away from the clip at 1e-7."""
    z = rng.standard_normal(shape)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_from_logits_defaults_to_true_under_every_name_and_round_trips():
    for name in ("cross_entropy", "sparse_categorical_crossentropy", "bce_with_logits", "binary_crossentropy"):
        assert get_loss(name).from_logits is True
    for loss in (CrossEntropyLoss(from_logits=False), BCEWithLogitsLoss(from_logits=False)):
        again = loss_from_config(loss_to_config(loss))
        assert type(again) is type(loss) and again.from_logits is False and "from_logits=False" in repr(again)
    assert loss_to_config(CrossEntropyLoss()) == {"class": "CrossEntropyLoss", "config": {}}  # old checkpoints load
    with pytest.raises(TypeError, match="from_logits: expected True or False"):
        CrossEntropyLoss(from_logits="no")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CE_CASES[:-1], ids=str)  # not C = 1: p = 1 is clipped to 1 - 1e-7 (as Keras)
def test_cross_entropy_on_probabilities_matches_torch_nll_of_log(torch, case, dtype):
    shape, mask_shape = case
    rng = np.random.default_rng(11)
    probs = _probabilities(rng, shape).astype(dtype)
    target = rng.integers(0, shape[-1], shape[:-1])
    mask = _mask(rng, mask_shape)
    loss = CrossEntropyLoss(from_logits=False)
    value, grad = loss.forward(probs, target, mask), loss.backward()
    assert grad.shape == probs.shape and grad.dtype == probs.dtype
    tp = torch.tensor(probs.astype(np.float64), requires_grad=True)
    sel = tp if mask is None else tp[torch.tensor(mask)]
    t = torch.tensor(target if mask is None else target[mask])
    # Keras: p / sum(p), then -log p[y]; torch: nll of log of the normalised rows
    want = torch.nn.functional.nll_loss(torch.log(sel / sel.sum(-1, keepdim=True)).reshape(-1, shape[-1]), t.reshape(-1))
    want.backward()
    np.testing.assert_allclose(value, want.item(), **TOL[dtype])
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=TOL[dtype]["rtol"], atol=max(TOL[dtype]["atol"], 1e-6 * (dtype == np.float32)))


@pytest.mark.parametrize("case", [((6, 4), None), ((3, 5, 4), (3, 5))], ids=str)
def test_cross_entropy_on_probabilities_by_finite_differences(case):
    shape, mask_shape = case
    rng = np.random.default_rng(5)
    probs = _probabilities(rng, shape) * rng.uniform(0.5, 2.0, shape[:-1] + (1,))  # rows not summing to 1 too
    target, mask = rng.integers(0, shape[-1], shape[:-1]), _mask(rng, mask_shape)
    loss = CrossEntropyLoss(from_logits=False)
    loss.forward(probs, target, mask)
    assert_grad_close(loss.backward(), lambda: loss.forward(probs, target, mask), probs, "cross-entropy on probabilities")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ELEMENTWISE_CASES[:4], ids=str)
def test_bce_on_probabilities_matches_torch_bce_loss(torch, case, dtype):
    rng = np.random.default_rng(13)
    shape, mask_shape = case
    probs = rng.uniform(0.01, 0.99, shape).astype(dtype)
    target = np.where(rng.random(shape) < 0.3, rng.random(shape), rng.random(shape) < 0.5).astype(dtype)
    mask = _mask(rng, mask_shape)
    loss = BCEWithLogitsLoss(from_logits=False)
    value, grad = loss.forward(probs, target, mask), loss.backward()
    tp = torch.tensor(probs, requires_grad=True)
    sel_p, sel_t = (tp, torch.tensor(target)) if mask is None else (tp[torch.tensor(mask)], torch.tensor(target)[torch.tensor(mask)])
    want = torch.nn.BCELoss()(sel_p, sel_t)
    want.backward()
    np.testing.assert_allclose(value, want.item(), **TOL[dtype])
    np.testing.assert_allclose(grad, tp.grad.numpy(), **TOL[dtype])


def test_bce_on_probabilities_by_finite_differences_and_clipping():
    rng = np.random.default_rng(2)
    probs, target = rng.uniform(0.05, 0.95, (4, 3)), rng.random((4, 3))
    loss = BCEWithLogitsLoss(from_logits=False)
    loss.forward(probs, target)
    assert_grad_close(loss.backward(), lambda: loss.forward(probs, target), probs, "bce on probabilities")
    value = loss.forward(np.array([0.0, 1.0]), np.array([1.0, 0.0]))  # clipped: finite, -log(1e-7), gradient 0
    assert value == pytest.approx(-math.log(1e-7))
    np.testing.assert_array_equal(loss.backward(), [0.0, 0.0])


@pytest.mark.parametrize("loss, pred, msg", [
    (CrossEntropyLoss(from_logits=False), np.array([[0.5, -0.1, 0.6]]), r"pred: expected probabilities >= 0 \(from_logits=False\)"),
    (CrossEntropyLoss(from_logits=False), np.array([[0.0, 0.0, 0.0]]), "a positive sum over the classes"),
    (BCEWithLogitsLoss(from_logits=False), np.array([[1.5, 0.5, 0.5]]), r"pred: expected probabilities in \[0, 1\]"),
])
def test_probabilities_out_of_range_are_refused(loss, pred, msg):
    target = np.array([0]) if isinstance(loss, CrossEntropyLoss) else np.zeros((1, 3))
    with pytest.raises(ValueError, match=msg):
        loss.forward(pred, target)


@pytest.mark.parametrize("last, loss", [(pyrnn.layers.Softmax, "sparse_categorical_crossentropy"),
                                        (pyrnn.layers.Sigmoid, "binary_crossentropy"),
                                        (pyrnn.layers.Softmax, CrossEntropyLoss())])
def test_compile_warns_when_a_final_softmax_or_sigmoid_meets_a_loss_on_logits(last, loss):
    model = pyrnn.Sequential([pyrnn.Dense(3, 4, seed=0), last()])
    with pytest.warns(pyrnn.losses.LogitsWarning, match=f"the model ends in {last.__name__} but .* expects logits .*from_logits=False"):
        model.compile("adam", loss)
    inp = pyrnn.Input((3,))
    graph = pyrnn.Model(inp, last()(pyrnn.Dense(3, 4, seed=0)(inp)))
    with pytest.warns(pyrnn.losses.LogitsWarning):
        graph.compile("adam", loss)


def test_no_logits_warning_with_from_logits_false_or_without_a_final_activation():
    pyrnn.Sequential([pyrnn.Dense(3, 4, seed=0), pyrnn.layers.Softmax()]).compile("adam", CrossEntropyLoss(from_logits=False))
    pyrnn.Sequential([pyrnn.Dense(3, 4, seed=0)]).compile("adam", "sparse_categorical_crossentropy")


def test_a_keras_style_softmax_model_trains_as_well_as_logits_with_from_logits_false():
    """The issue's case: a final Softmax with the logits loss trains worse; with from_logits=False
    the same network trains like the one without Softmax (the two are the same function)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((240, 6)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) > 0).astype(np.int64) + (x[:, 3] > 0.5)

    def trained(layers, loss):
        model = pyrnn.Sequential(layers)
        model.compile("adam", loss, lr=1e-2)
        model.fit(x, y, epochs=8, batch_size=32, seed=0, verbose=0)
        return model

    logits = trained([pyrnn.Dense(6, 16, seed=1), pyrnn.layers.Tanh(), pyrnn.Dense(16, 3, seed=2)], "cross_entropy")
    probs = trained([pyrnn.Dense(6, 16, seed=1), pyrnn.layers.Tanh(), pyrnn.Dense(16, 3, seed=2), pyrnn.layers.Softmax()],
                    CrossEntropyLoss(from_logits=False))
    with pyrnn.no_grad():
        p_logits = pyrnn.layers.Softmax()(logits.predict(x))
    np.testing.assert_allclose(probs.predict(x), p_logits, rtol=1e-3, atol=1e-4)
