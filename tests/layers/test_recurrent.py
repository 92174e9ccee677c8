"""The recurrent layers' contract: the seed's worked example, state dicts, init, layouts, bad inputs."""

import json

import numpy as np
import pytest

import pyrnn
from pyrnn.layers import Dense, LastStep
from pyrnn.layers.registry import layer_config, layer_from_config

from helpers import CELLS, make_layer, random_problem, run, state_parts

BACKENDS = pyrnn.available_backends()


# ------------------------------------------------------------ worked example
@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_worked_example_relu_cell(backend):
    """Seed 003: ReLU cell, input weights [2, 3], recurrent weight -0.1, bias 0, the 4x2 sequence.

    By hand: relu(2*0 + 3*23) = 69; relu(2 - 9 - 6.9) = 0; relu(2 + 168 - 0) = 170;
    relu(2*2 + 3*12 - 0.1*170) = 23. (The slides' table writes 23 at t=0 and 21 at t=3.)
    """
    cell = pyrnn.RNN(2, 1, nonlinearity="relu", bias=False, dtype=np.float64)
    cell.load_state_dict({"weight_ih_l0": np.array([[2.0, 3.0]]), "weight_hh_l0": np.array([[-0.1]])})
    x = np.array([[[0, 23], [1, -3], [1, 56], [2, 12]]], dtype=np.float64)
    with pyrnn.use_backend(backend):
        y, h = cell.forward(x)
    np.testing.assert_allclose(y.ravel(), [69, 0, 170, 23], rtol=1e-12)
    np.testing.assert_allclose(h.ravel(), [23], rtol=1e-12)


# ---------------------------------------------------------------- state dict
def test_state_dict_names_and_shapes_are_pytorchs():
    lstm = pyrnn.LSTM(5, 3, num_layers=2, bidirectional=True)
    shapes = {k: v.shape for k, v in lstm.state_dict().items()}
    want = {}
    for layer, in_k in ((0, 5), (1, 6)):
        for sfx in ("", "_reverse"):
            want[f"weight_ih_l{layer}{sfx}"] = (12, in_k)
            want[f"weight_hh_l{layer}{sfx}"] = (12, 3)
            want[f"bias_ih_l{layer}{sfx}"] = (12,)
            want[f"bias_hh_l{layer}{sfx}"] = (12,)
    assert shapes == want
    assert set(lstm.grads) == set(want)
    assert pyrnn.GRU(4, 2, bias=False).state_dict().keys() == {"weight_ih_l0", "weight_hh_l0"}


def test_state_dict_round_trip_and_copy_semantics():
    a, b = pyrnn.GRU(3, 4, seed=1), pyrnn.GRU(3, 4, seed=2)
    sd = a.state_dict()
    sd["weight_hh_l0"][0, 0] = 99.0  # a copy: the layer is untouched
    assert a.params["weight_hh_l0"][0, 0] != 99.0
    b.load_state_dict(a.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    np.testing.assert_array_equal(a.forward(x)[0], b.forward(x)[0])


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda d: d.pop("bias_hh_l0"), r"missing \['bias_hh_l0'\]"),
        (lambda d: d.update(weight_ih_l1=np.zeros((4, 3))), r"unexpected \['weight_ih_l1'\]"),
        (lambda d: d.update(weight_hh_l0=np.zeros((4, 2))), r"state_dict\['weight_hh_l0'\]: expected shape \(4, 1\), got \(4, 2\)"),
    ],
)
def test_load_state_dict_is_strict(mutate, pattern):
    layer = pyrnn.LSTM(3, 1)
    before = layer.state_dict()
    sd = layer.state_dict()
    sd["weight_ih_l0"] = sd["weight_ih_l0"] + 1  # a valid change that must not land either
    mutate(sd)
    with pytest.raises(ValueError, match=pattern):
        layer.load_state_dict(sd)
    for k, v in before.items():  # nothing half-loaded
        np.testing.assert_array_equal(layer.params[k], v)


# ---------------------------------------------------------------------- init
@pytest.mark.parametrize("cell", CELLS)
def test_default_init_is_uniform_in_plus_minus_one_over_sqrt_h(cell):
    H = 16
    layer = make_layer(cell, 8, H, num_layers=2, bidirectional=True, dtype=np.float32, seed=5)
    values = np.concatenate([p.ravel() for p in layer.parameters()])
    bound = 1 / np.sqrt(H)
    assert values.dtype == np.float32
    assert np.all(np.abs(values) <= bound)
    assert values.max() > 0.9 * bound and values.min() < -0.9 * bound  # it fills the range
    again = make_layer(cell, 8, H, num_layers=2, bidirectional=True, dtype=np.float32, seed=5)
    other = make_layer(cell, 8, H, num_layers=2, bidirectional=True, dtype=np.float32, seed=6)
    assert all(np.array_equal(p, q) for p, q in zip(layer.parameters(), again.parameters()))
    assert not np.array_equal(layer.parameters()[0], other.parameters()[0])


# ----------------------------------------------------------- layouts, dtypes
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fortran_order_and_strided_inputs_give_the_same_result(backend, cell):
    layer = make_layer(cell, 4, 3, num_layers=2, bidirectional=True, dtype=np.float32)
    x, state, dy, dstate = random_problem(layer, 3, 5, np.random.default_rng(1))
    want = run(layer, x, state, dy, dstate, backend)
    big = np.zeros((3, 10, 8), np.float32)
    big[:, ::2, ::2] = x  # a strided view
    fortran_state = tuple(np.asfortranarray(s) for s in state) if isinstance(state, tuple) else np.asfortranarray(state)
    for variant in (np.asfortranarray(x), big[:, ::2, ::2]):
        got = run(layer, variant, fortran_state, np.asfortranarray(dy), dstate, backend)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_float64_layer_casts_float32_input_and_stays_float64():
    layer = pyrnn.RNN(3, 2, dtype=np.float64)
    y, h = layer.forward(np.ones((1, 2, 3), np.float32))
    assert y.dtype == h.dtype == np.float64
    dx, dh = layer.backward(np.ones((1, 2, 2), np.float32))
    assert dx.dtype == dh.dtype == np.float64


def test_backward_adds_into_grads_and_zero_grad_clears():
    layer = pyrnn.GRU(3, 2, dtype=np.float64, seed=0)
    x, h0, dy, dh = random_problem(layer, 2, 4, np.random.default_rng(3))
    layer.forward(x, h0)
    layer.backward(dy, dh)
    once = {k: g.copy() for k, g in layer.grads.items()}
    layer.forward(x, h0)
    layer.backward(dy, dh)
    for k, g in layer.grads.items():
        np.testing.assert_allclose(g, 2 * once[k], rtol=1e-12)
    layer.zero_grad()
    assert all(not g.any() for g in layer.grads.values())


# ----------------------------------------------------------------- bad input
def _lstm():
    return pyrnn.LSTM(4, 3, num_layers=2)


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda l: l.forward(np.zeros((5, 4), np.float32)), ValueError, r"x: expected a 3-D array \(batch, time, input_size\) \(batch_first=True\), got 2-D with shape \(5, 4\)"),
        (lambda l: l.forward(np.zeros((2, 5, 7), np.float32)), ValueError, r"x: expected input_size=4 .*got shape \(2, 5, 7\)"),
        (lambda l: l.forward(np.zeros((2, 5, 4), np.int64)), TypeError, r"x: expected a floating-point array \(float32\), got dtype int64"),
        (lambda l: l.forward(np.zeros((2, 5, 4), object)), TypeError, r"x: expected a floating-point array .*got dtype object"),
        (lambda l: l.forward(np.zeros((2, 5, 4)), np.zeros((2, 2, 3))), TypeError, r"state: expected a tuple \(h, c\) for LSTM"),
        (lambda l: l.forward(np.zeros((2, 5, 4)), (np.zeros((2, 3, 3)), None)), ValueError, r"state\[0\] \(h\): expected shape \(2, 2, 3\).*got \(2, 3, 3\)"),
        (lambda l: l.forward(np.zeros((2, 5, 4)), (np.zeros((2, 2, 3)), np.zeros((1, 2, 3)))), ValueError, r"state\[1\] \(c\): expected shape \(2, 2, 3\).*got \(1, 2, 3\)"),
        (lambda l: l.backward(np.zeros((2, 5, 3))), ValueError, r"LSTM.backward: expected a forward\(\) first"),
    ],
    ids=["ndim", "features", "int-dtype", "object-dtype", "lstm-state-not-tuple", "h-shape", "c-shape", "backward-first"],
)
def test_bad_input_is_named(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call(_lstm())


def test_bad_dy_and_second_backward_are_named():
    layer = pyrnn.GRU(4, 3, bidirectional=True)
    layer.forward(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 5, 6\).*got \(2, 5, 3\)"):
        layer.backward(np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match=r"dstate: expected shape \(2, 2, 3\).*got \(1, 2, 3\)"):
        layer.backward(np.zeros((2, 5, 6)), np.zeros((1, 2, 3)))
    with pytest.raises(TypeError, match=r"dstate: expected one array h for GRU, got a tuple"):
        layer.backward(np.zeros((2, 5, 6)), (np.zeros((2, 2, 3)), np.zeros((2, 2, 3))))
    layer.backward(np.zeros((2, 5, 6)))
    with pytest.raises(ValueError, match="expected a forward"):
        layer.backward(np.zeros((2, 5, 6)))


@pytest.mark.parametrize(
    "make, exc, pattern",
    [
        (lambda: pyrnn.LSTM(0, 3), ValueError, r"input_size: expected an integer >= 1, got 0"),
        (lambda: pyrnn.GRU(3, 2.5), TypeError, r"hidden_size: expected an integer, got float 2.5"),
        (lambda: pyrnn.RNN(3, 2, num_layers=True), TypeError, r"num_layers: expected an integer, got bool True"),
        (lambda: pyrnn.RNN(3, 2, nonlinearity="sigmoid"), ValueError, r"nonlinearity: expected one of \['tanh', 'relu'\], got 'sigmoid'"),
        (lambda: pyrnn.LSTM(3, 2, dtype=np.int32), TypeError, r"dtype: expected float32, float64 or 'bfloat16', got int32"),
    ],
)
def test_bad_constructor_arguments_are_named(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_propagates_and_stays_in_its_sample(backend, cell, dtype):
    """A NaN in sample 1 at t = 2 poisons that sample from t = 2 on, and nothing else (as in PyTorch)."""
    layer = make_layer(cell, 3, 4, dtype=dtype)
    x = np.random.default_rng(0).standard_normal((3, 5, 3)).astype(dtype)
    x[1, 2, 0] = np.nan
    with pyrnn.use_backend(backend):
        y, _ = layer.forward(x)
    assert np.isfinite(y[[0, 2]]).all() and np.isfinite(y[1, :2]).all()
    assert np.isnan(y[1, 2:]).all()


# ------------------------------------------------- variable lengths, skip, dropout, step
from gradcheck import assert_grad_close  # noqa: E402


def _loss_and_grads(layer, x, state, dy, dstate, lengths, backend="numpy"):
    with pyrnn.use_backend(backend):
        layer.zero_grad()
        y, sT = layer.forward(x, state, lengths=lengths)
        dx, ds0 = layer.backward(dy, dstate)
    return y, sT, dx, ds0


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("skip", [False, True])
def test_variable_lengths_and_skip_gradients_by_finite_differences(cell, skip):
    layer = make_layer(cell, 3, 3, num_layers=2, bidirectional=True, seed=4)
    layer.skip = skip
    rng = np.random.default_rng(5)
    x, state, dy, dstate = random_problem(layer, B=3, T=4, rng=rng)
    if cell == "rnn_relu":
        x *= 3
    lengths = np.array([4, 0, 2])
    _, _, dx, ds0 = _loss_and_grads(layer, x, state, dy, dstate, lengths)
    parts, dparts = list(state) if isinstance(state, tuple) else [state], list(dstate) if isinstance(dstate, tuple) else [dstate]
    grads = {k: g.copy() for k, g in layer.grads.items()}

    def f():
        with pyrnn.use_backend("numpy"):
            y, sT = layer.forward(x, state, lengths=lengths)
        layer.clear_saved()
        sT = list(sT) if isinstance(sT, tuple) else [sT]
        return float(np.sum(y * dy) + sum(np.sum(a * b) for a, b in zip(sT, dparts)))

    assert_grad_close(dx, f, x, "x")
    for k, (g, s) in enumerate(zip(ds0 if isinstance(ds0, tuple) else [ds0], parts)):
        assert_grad_close(g, f, s, f"state[{k}]")
    for name in ("weight_hh_l0", "weight_ih_l1_reverse", "bias_ih_l1"):
        assert_grad_close(grads[name], f, layer.params[name], name)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_variable_lengths_every_backend_matches_reference(backend, cell, dtype):
    layer = make_layer(cell, 4, 5, num_layers=2, bidirectional=True, dtype=dtype, seed=2)
    x, state, dy, dstate = random_problem(layer, B=5, T=6, rng=np.random.default_rng(8))
    lengths = np.array([6, 1, 0, 3, 5])
    want = _loss_and_grads(layer, x, state, dy, dstate, lengths, "numpy")
    want_g = {k: g.copy() for k, g in layer.grads.items()}
    got = _loss_and_grads(layer, x, state, dy, dstate, lengths, backend)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    flat = lambda r: [r[0], *(r[1] if isinstance(r[1], tuple) else [r[1]]), r[2], *(r[3] if isinstance(r[3], tuple) else [r[3]])]  # noqa: E731
    for g, w in zip(flat(got), flat(want)):
        np.testing.assert_allclose(g, w, **tol)
    for k in want_g:
        np.testing.assert_allclose(layer.grads[k], want_g[k], **tol, err_msg=k)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_lengths_semantics(backend, cell):
    """Outputs past a length are 0; the final state equals running the sample alone on its
    valid steps (both directions); length 0 keeps the initial state and passes dstate through."""
    layer = make_layer(cell, 3, 4, num_layers=2, bidirectional=True, seed=1)
    x, state, dy, dstate = random_problem(layer, B=3, T=5, rng=np.random.default_rng(9))
    lengths = np.array([5, 2, 0])
    y, sT, dx, ds0 = _loss_and_grads(layer, x, state, dy, dstate, lengths, backend)
    assert not y[1, 2:].any() and not y[2].any() and not dx[1, 2:].any() and not dx[2].any()
    sel = lambda s, b: tuple(a[:, b : b + 1] for a in s) if isinstance(s, tuple) else s[:, b : b + 1]  # noqa: E731
    with pyrnn.use_backend(backend):
        y1, s1 = layer.forward(x[1:2, :2], sel(state, 1))
    layer.clear_saved()
    np.testing.assert_allclose(y[1:2, :2], y1, rtol=1e-12)
    for a, b in zip(sT if isinstance(sT, tuple) else [sT], s1 if isinstance(s1, tuple) else [s1]):
        np.testing.assert_allclose(a[:, 1:2], b, rtol=1e-12)
    for a, s0, g0, gT in zip(*(v if isinstance(v, tuple) else [v] for v in (sT, state, ds0, dstate))):
        np.testing.assert_array_equal(a[:, 2], s0[:, 2])  # length 0: initial state kept
        np.testing.assert_array_equal(g0[:, 2], gT[:, 2])  # and dstate passes straight through


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_variable_lengths_match_torch_packed_sequences(backend, cell):
    torch = pytest.importorskip("torch")
    layer = make_layer(cell, 3, 4, num_layers=2, bidirectional=True, seed=6)
    mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN}[cell](
        3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    mod.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    x, state, dy, dstate = random_problem(layer, B=4, T=6, rng=np.random.default_rng(10))
    lengths = np.array([6, 2, 4, 1])
    y, sT, dx, ds0 = _loss_and_grads(layer, x, state, dy, dstate, lengths, backend)

    xt = torch.tensor(x, requires_grad=True)
    st = tuple(torch.tensor(a, requires_grad=True) for a in (state if isinstance(state, tuple) else (state,)))
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    out, sTt = mod(packed, st if len(st) == 2 else st[0])
    yt, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=6)
    sTt = sTt if isinstance(sTt, tuple) else (sTt,)
    loss = (yt * torch.tensor(dy)).sum() + sum((a * torch.tensor(g)).sum() for a, g in zip(sTt, dstate if isinstance(dstate, tuple) else (dstate,)))
    loss.backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(sT if isinstance(sT, tuple) else (sT,), sTt):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(ds0 if isinstance(ds0, tuple) else (ds0,), st):
        np.testing.assert_allclose(a, b.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in mod.named_parameters():
        np.testing.assert_allclose(layer.grads[name], p.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


def test_bad_lengths_are_named():
    layer = pyrnn.GRU(3, 2)
    x = np.zeros((2, 4, 3))
    with pytest.raises(ValueError, match=r"lengths\[1\]: expected a value in \[0, 4\] .*got 5"):
        layer.forward(x, lengths=[4, 5])
    with pytest.raises(ValueError, match=r"lengths: expected shape \(2,\).*got \(3,\)"):
        layer.forward(x, lengths=[1, 2, 3])
    with pytest.raises(TypeError, match=r"lengths: expected integers, got dtype float64"):
        layer.forward(x, lengths=[1.0, 2.0])


def test_skip_connection_is_a_residual_between_stacked_layers():
    """skip=True: layer 2's output is its states plus its input (layer 1's output)."""
    deep = pyrnn.LSTM(3, 4, num_layers=2, skip=True, dtype=np.float64, seed=0)
    first, second = pyrnn.LSTM(3, 4, dtype=np.float64), pyrnn.LSTM(4, 4, dtype=np.float64)
    sd = deep.state_dict()
    first.load_state_dict({k: v for k, v in sd.items() if k.endswith("_l0")})
    second.load_state_dict({k.replace("_l1", "_l0"): v for k, v in sd.items() if k.endswith("_l1")})
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    y1, _ = first.forward(x)
    y2, _ = second.forward(y1)
    np.testing.assert_allclose(deep.forward(x)[0], y1 + y2, rtol=1e-12)


def test_dropout_between_layers_is_seeded_training_only_and_gradient_checked():
    layer = pyrnn.GRU(3, 4, num_layers=3, dropout=0.5, dtype=np.float64, seed=7)
    x = np.random.default_rng(1).standard_normal((2, 5, 3))
    with pyrnn.no_grad():
        a, _ = layer.forward(x)
        b, _ = layer.forward(x)
        c, _ = pyrnn.GRU(3, 4, num_layers=3, dropout=0.5, dtype=np.float64, seed=7).forward(x)
        layer.eval()
        e1, _ = layer.forward(x)
        e2, _ = layer.forward(x)
    assert not np.allclose(a, b) and np.array_equal(a, c)  # fresh masks per call, reproducible per seed
    assert np.array_equal(e1, e2)  # eval: no dropout
    layer.train()
    dy = np.random.default_rng(2).standard_normal(a.shape)
    state = layer.rng_state()
    layer.forward(x)
    dx, _ = layer.backward(dy)

    def f():
        layer.set_rng_state(state)  # the same masks at every evaluation
        with pyrnn.no_grad():
            y, _ = layer.forward(x)
        return float(np.sum(y * dy))

    assert_grad_close(dx, f, x, "x")


def test_dropout_and_skip_argument_errors():
    with pytest.raises(ValueError, match=r"dropout: expected a finite number in \[0, 1\), got 1.5"):
        pyrnn.LSTM(2, 2, dropout=1.5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_step_streams_like_the_whole_sequence(backend, cell):
    layer = make_layer(cell, 3, 4, num_layers=2, seed=3)
    x, state, _, _ = random_problem(layer, B=2, T=6, rng=np.random.default_rng(4))
    with pyrnn.use_backend(backend), pyrnn.no_grad():
        y, final = layer.forward(x, state)
        s, ys = state, []
        for t in range(6):
            yt, s = layer.step(x[:, t], s)
            ys.append(yt)
    np.testing.assert_allclose(np.stack(ys, axis=1), y, rtol=1e-12)
    for a, b in zip(final if isinstance(final, tuple) else [final], s if isinstance(s, tuple) else [s]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    with pytest.raises(ValueError, match="step: expected a unidirectional layer"):
        make_layer(cell, 3, 4, bidirectional=True).step(x[:, 0])


@pytest.mark.parametrize("cell", CELLS)
def test_get_config_rebuilds_the_same_layer(cell):
    layer = make_layer(cell, 3, 4, num_layers=2, bidirectional=True, seed=11)
    cfg = layer.get_config()
    again = type(layer)(**cfg)
    assert again.get_config() == cfg
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(again.params[k], v)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_inference_without_a_cache_equals_the_training_forward(backend, cell):
    """Under no_grad the kernels keep no gates (the cpp backend uses one step's scratch);
    the outputs and final states are the same numbers, bit for bit."""
    layer = make_layer(cell, 3, 5, num_layers=2, bidirectional=True, dtype=np.float32, seed=2)
    x, state, _, _ = random_problem(layer, B=4, T=6, rng=np.random.default_rng(12))
    lengths = np.array([6, 0, 3, 1])
    with pyrnn.use_backend(backend):
        y, s = layer.forward(x, state, lengths=lengths)
        layer.clear_saved()
        with pyrnn.no_grad():
            y2, s2 = layer.forward(x, state, lengths=lengths)
    assert not layer._saved_stack
    np.testing.assert_array_equal(y2, y)
    for a, b in zip(s2 if isinstance(s2, tuple) else [s2], s if isinstance(s, tuple) else [s]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "time-major"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_inference_reads_x_in_any_layout_like_the_training_forward(backend, cell, batch_first):
    """At inference the C++ kernels read x where it lies (a view, any strides between rows), write hs straight into y
    and keep only LSTM's latest c; a layout they cannot read in place (columns apart, time reversed) is copied first.
    Every layout gives the training forward's bits, without lengths (the path that keeps one c) and with them."""
    layer = make_layer(cell, 3, 5, num_layers=2, bidirectional=True, dtype=np.float32, seed=2)
    layer.batch_first = batch_first
    rng = np.random.default_rng(13)
    shape = (4, 6, 3) if batch_first else (6, 4, 3)
    base = rng.standard_normal(shape).astype(np.float32)
    wide = np.zeros(shape[:2] + (8,), np.float32)
    wide[:, :, 2:5] = base
    spread = np.zeros(shape[:2] + (6,), np.float32)
    spread[:, :, ::2] = base
    layouts = {"C": base, "Fortran": np.asfortranarray(base), "columns of a wider array": wide[:, :, 2:5],
               "every other column": spread[:, :, ::2], "time reversed": np.ascontiguousarray(base[::-1])[::-1]}
    for lengths in (None, np.array([6, 0, 3, 1])):
        with pyrnn.use_backend(backend):
            y, s = layer.forward(base, lengths=lengths)
            layer.clear_saved()
            for name, x in layouts.items():
                np.testing.assert_array_equal(x, base)
                with pyrnn.no_grad():
                    y2, s2 = layer.forward(x, lengths=lengths)
                np.testing.assert_array_equal(y2, y, err_msg=f"{name} lengths={lengths is not None}")
                for a, b in zip(s2 if isinstance(s2, tuple) else [s2], s if isinstance(s, tuple) else [s]):
                    np.testing.assert_array_equal(a, b, err_msg=f"{name} lengths={lengths is not None}")


# ------------------------------------------------------------ batch_first (issue 13, point 2)
def _time_major(a):
    return np.ascontiguousarray(np.swapaxes(a, 0, 1))


@pytest.mark.parametrize("skip", [False, True], ids=["plain", "skip"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_batch_first_false_takes_and_returns_time_major_arrays(cell, backend, skip):
    """batch_first=False on (T, B, I) gives the batch-first layer's results transposed, bit for bit,
    with lengths too; the states stay (L*D, B, H). (Batch-first, the last layer's kernels write y
    itself, each direction its columns, masked and with the residual in place.)"""
    rng = np.random.default_rng(3)
    bf = make_layer(cell, 4, 4, num_layers=2, bidirectional=True)
    bf = type(bf)(**dict(bf.get_config(), skip=skip))
    tm = type(bf)(**dict(bf.get_config(), batch_first=False))
    assert tm.state_dict().keys() == bf.state_dict().keys()
    tm.load_state_dict(bf.state_dict())
    x, state, dy, dstate = random_problem(bf, 3, 6, rng)
    lengths = np.array([6, 2, 4])
    with pyrnn.use_backend(backend):
        for layer, xi, dyi in ((bf, x, dy), (tm, _time_major(x), _time_major(dy))):
            layer.zero_grad()
            y, sT = layer.forward(xi, state, lengths=lengths)
            dx, ds0 = layer.backward(dyi, dstate)
            if layer is bf:
                want = (y, dx, sT, ds0, {k: g.copy() for k, g in layer.grads.items()})
    assert y.shape == (6, 3, 8) and dx.shape == (6, 3, 4)
    np.testing.assert_array_equal(_time_major(y), want[0])
    np.testing.assert_array_equal(_time_major(dx), want[1])
    for got, ref in zip(state_parts(sT) + state_parts(ds0), state_parts(want[2]) + state_parts(want[3])):
        np.testing.assert_array_equal(got, ref)
    for k, g in tm.grads.items():
        np.testing.assert_array_equal(g, want[4][k], err_msg=k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("I", [2, 37], ids=["narrow", "wide"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_batch_first_training_keeps_one_x_and_one_dx(cell, backend, I, dtype):
    """Two directions, batch-first, training: no copy of x before the kernels and none of dx after them. The first
    direction saves x in C order (the C++ kernels write it as they read the batch-first view; Numba's driver copies
    it) and the second reads that saved array: one array for both. The first direction's backward writes dx into the
    batch-first result and the second's is added there. Bit for bit the time-major layer's results."""
    rng = np.random.default_rng(5)
    bf = make_layer(cell, I, 9, bidirectional=True, dtype=dtype)
    tm = type(bf)(**dict(bf.get_config(), batch_first=False))
    tm.load_state_dict(bf.state_dict())
    x, state, dy, dstate = random_problem(bf, 5, 7, rng)
    with pyrnn.use_backend(backend):
        y, sT = bf.forward(x, state)
        saved = bf._peek_saved()[3]
        first, second = saved[0].x, saved[1].x
        np.testing.assert_array_equal(first, x.transpose(1, 0, 2))
        if backend == "numpy":  # the reference saves what it is given: the view, in both directions
            assert np.shares_memory(first, x) and np.shares_memory(second, x)
        else:
            assert second is first and first.flags.c_contiguous and not np.shares_memory(first, x)
        dx, ds0 = bf.backward(dy, dstate)
        assert dx.shape == x.shape and dx.flags.c_contiguous
        ty, tsT = tm.forward(_time_major(x), state)
        tdx, tds0 = tm.backward(_time_major(dy), dstate)
    np.testing.assert_array_equal(_time_major(ty), y)
    np.testing.assert_array_equal(_time_major(tdx), dx)
    for got, ref in zip(state_parts(sT) + state_parts(ds0), state_parts(tsT) + state_parts(tds0)):
        np.testing.assert_array_equal(got, ref)
    for k, g in tm.grads.items():
        np.testing.assert_array_equal(g, bf.grads[k], err_msg=k)


def test_batch_first_is_a_checked_keyword_saved_in_the_config_and_the_repr():
    gru = pyrnn.GRU(3, 4, batch_first=False)
    assert gru.get_config()["batch_first"] is False and "batch_first=False" in repr(gru)
    assert "batch_first" not in pyrnn.GRU(3, 4).get_config()  # the default: configs saved before it compare equal
    assert layer_from_config(layer_config(gru)).batch_first is False
    with pytest.raises(TypeError, match="batch_first: expected True or False"):
        pyrnn.LSTM(3, 4, batch_first="False")


@pytest.mark.parametrize("batch_first, layout", [(True, r"\(batch, time, input_size\)"), (False, r"\(time, batch, input_size\)")])
def test_shape_errors_name_the_layout(batch_first, layout):
    layer = pyrnn.LSTM(3, 4, batch_first=batch_first)
    with pytest.raises(ValueError, match=layout + r" \(batch_first=" + str(batch_first)):
        layer.forward(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="input_size=3 features in the last axis of " + layout):
        layer.forward(np.zeros((2, 5, 7)))
    layer.forward(np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 5, 4\) " + layout.replace("input_size", "num_directions\\*hidden_size")):
        layer.backward(np.zeros((5, 2, 4)))
    layer.clear_saved()


def test_step_follows_batch_first():
    bf, tm = pyrnn.GRU(3, 4, seed=0, dtype=np.float64), pyrnn.GRU(3, 4, seed=0, dtype=np.float64, batch_first=False)
    x = np.random.default_rng(0).standard_normal((2, 3))
    with pyrnn.no_grad():
        (a, ha), (b, hb) = bf.step(x), tm.step(x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ha, hb)


def test_dilated_refuses_a_time_major_layer():
    with pytest.raises(ValueError, match="Dilated reads \\(batch, time, features\\)"):
        pyrnn.layers.Dilated(pyrnn.GRU(3, 4, batch_first=False), 2)


# ------------------------------------------------------------------- dtype="bfloat16" (mixed precision)
@pytest.mark.parametrize("cls", [pyrnn.RNN, pyrnn.LSTM, pyrnn.GRU])
def test_bfloat16_keeps_float32_arrays_and_records_its_dtype(cls):
    layer = cls(3, 5, num_layers=2, bidirectional=True, dtype="bfloat16", seed=0)
    assert layer.bfloat16 and layer.dtype == np.float32
    assert all(p.dtype == np.float32 for p in layer.params.values())
    assert all(g.dtype == np.float32 for g in layer.grads.values())
    cfg = layer.get_config()
    assert cfg["dtype"] == "bfloat16" and "dtype=bfloat16)" in repr(layer)
    again = cls(**json.loads(json.dumps(cfg)))
    assert again.bfloat16
    for name, value in layer.state_dict().items():  # float32 master weights: a float32 layer's state dict
        np.testing.assert_array_equal(value, cls(3, 5, num_layers=2, bidirectional=True, seed=0).params[name])
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    with pyrnn.no_grad():
        y, _ = layer.forward(x)
    assert y.dtype == np.float32


@pytest.mark.parametrize("value", ["bf16", "BFloat16", "bfloat16 ", np.float16, None])
def test_bfloat16_spelling_is_exact(value):
    with pytest.raises(TypeError, match=r"dtype: expected float32, float64 or 'bfloat16', got"):
        pyrnn.LSTM(3, 5, dtype=value)


@pytest.mark.parametrize("backend", ["cpp", "numba", "numpy"])
def test_bfloat16_layer_matches_the_reference_kernels(backend):
    """The layer hands bf16 to every backend (numba runs the NumPy specification): the same results as the
    reference within the rounding-flip tolerance of tests/backends/test_bfloat16.py (4U in norm)."""
    if backend not in pyrnn.available_backends():
        pytest.skip(f"backend {backend!r} unavailable")
    layer = pyrnn.GRU(6, 9, num_layers=2, bidirectional=True, dtype="bfloat16", seed=1)
    x, h0, dy, dh = random_problem(layer, 4, 5, np.random.default_rng(2))
    ref = run(layer, x, h0, dy, dh, "numpy")
    got = run(layer, x, h0, dy, dh, backend)
    for name, value in ref.items():
        assert np.linalg.norm(got[name] - value) <= 4 * 2.0**-8 * np.linalg.norm(value), name
    f32 = run(pyrnn.GRU(6, 9, num_layers=2, bidirectional=True, seed=1), x, h0, dy, dh, "numpy")
    assert np.linalg.norm(ref["y"] - f32["y"]) > 50 * 2.0**-24 * np.linalg.norm(f32["y"])  # it is not float32


def test_bfloat16_training_reaches_the_float32_validation_loss():
    """A short training run (LSTM on a noisy sine's next value, Adam, 6 epochs): the bf16 model's validation
    loss ends within 10 % (relative) of the float32 model's, from the same init and batches. The margin: bf16
    perturbs every product by <= 2U ~ 0.8 %, the gradients alike, so the two runs follow nearby paths; 10 %
    covers their drift over ~140 steps (measured: 0.6 %), far below the loss's 30x fall from var(y)."""
    t = np.arange(1400)
    series = (np.sin(2 * np.pi * t / 40) + 0.1 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    x = np.stack([series[i : i + 30] for i in range(1360)])[:, :, None]
    y = series[30:1390, None]
    losses = {}
    for dtype in ("float32", "bfloat16"):
        model = pyrnn.Sequential([pyrnn.LSTM(1, 24, dtype=dtype, seed=1), LastStep(), Dense(24, 1, dtype=dtype, seed=2)])
        model.compile(optimizer="adam", loss="mse", lr=1e-2)
        hist = model.fit(x, y, epochs=6, batch_size=48, validation_split=0.2, seed=0, verbose=0)
        losses[dtype] = hist.history["val_loss"]
    assert losses["float32"][-1] < 0.1 * np.var(y)  # it learned: predicting the mean costs var(y) ~ 0.5
    assert abs(losses["bfloat16"][-1] - losses["float32"][-1]) <= 0.1 * losses["float32"][-1], losses


# ------------------------------------------------------------ workspace (pyrnn.workspace)
FAST_BACKENDS = [b for b in BACKENDS if b != "numpy"]
TOL64 = dict(rtol=1e-9, atol=1e-10)


def _assert_same(got, want, what):
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], err_msg=f"{what} {k}", **TOL64)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_workspace_reuse_across_calls_and_shapes_matches_the_reference(backend, cell):
    """Caches from the layer's workspace, reused by later calls of other shapes (larger, then smaller:
    views of the grown buffers), give the reference's outputs and gradients every time."""
    layer = make_layer(cell, 3, 5, num_layers=2, bidirectional=True, seed=1)
    rng = np.random.default_rng(0)
    for B, T in [(3, 7), (5, 9), (2, 4), (5, 9)]:
        x, state, dy, dstate = random_problem(layer, B, T, rng)
        want = run(layer, x, state, dy, dstate, "numpy")
        got = run(layer, x, state, dy, dstate, backend)
        _assert_same(got, want, f"{backend} B={B} T={T}")
    if cell in ("lstm", "gru"):  # an RNN keeps nothing: its cache is hs alone, the output; dhs is read in place
        assert layer._workspace().nbytes() > 0, "expected the workspace to keep the spent buffers"


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_several_forwards_before_their_backwards_keep_their_own_caches(backend, cell):
    """One layer used twice in one graph call (as truncated BPTT or a shared layer do): each forward's
    cache stays valid until its own backward, though both come from one workspace."""
    layer = make_layer(cell, 3, 4, seed=2)
    rng = np.random.default_rng(1)
    x1, s1, dy1, ds1 = random_problem(layer, 2, 6, rng)
    x2, s2, dy2, ds2 = random_problem(layer, 2, 6, rng)
    results = {}
    for b in ("numpy", backend):
        layer.zero_grad()
        with pyrnn.use_backend(b):
            with pyrnn.forward_scope():
                y1, _ = layer.forward(x1, s1)
                y2, _ = layer.forward(x2, s2)
            dx2, _ = layer.backward(dy2, ds2)  # the stack: the last forward first
            dx1, _ = layer.backward(dy1, ds1)
        results[b] = {"y1": y1, "y2": y2, "dx1": dx1, "dx2": dx2, **{k: g.copy() for k, g in layer.grads.items()}}
    _assert_same(results[backend], results["numpy"], backend)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_release_workspace_between_forward_and_backward(backend):
    layer = make_layer("lstm", 3, 4, seed=3)
    x, state, dy, dstate = random_problem(layer, 3, 5, np.random.default_rng(2))
    want = run(layer, x, state, dy, dstate, "numpy")
    run(layer, x, state, dy, dstate, backend)
    assert layer._workspace().nbytes() > 0
    layer.zero_grad()
    with pyrnn.use_backend(backend):
        y, sT = layer.forward(x, state)
        layer.release_workspace()  # the pending cache stays valid
        assert layer._workspace().nbytes() == 0
        dx, ds0 = layer.backward(dy, dstate)
    np.testing.assert_allclose(y, want["y"], **TOL64)
    np.testing.assert_allclose(dx, want["dx"], **TOL64)
    for name, g in layer.grads.items():
        np.testing.assert_allclose(g, want[f"grad {name}"], err_msg=name, **TOL64)
    layer.release_workspace()
    assert layer._workspace().nbytes() == 0


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_outputs_are_fresh_arrays_not_workspace_memory(backend):
    layer = make_layer("gru", 3, 4, seed=4, dtype=np.float32)
    x = np.random.default_rng(3).standard_normal((2, 5, 3)).astype(np.float32)
    with pyrnn.use_backend(backend), pyrnn.no_grad():
        y1, h1 = layer.forward(x)
        keep = y1.copy(), h1.copy()
        y2, h2 = layer.forward(2 * x)  # reuses the workspace
    assert not np.shares_memory(y1, y2) and not np.shares_memory(h1, h2)
    np.testing.assert_array_equal(y1, keep[0])
    np.testing.assert_array_equal(h1, keep[1])


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_large_outputs_from_recycled_memory_stay_the_callers(backend, batch_first):
    """y and dx past pyrnn._buffers.MIN_BYTES come from recycled memory: a later call never writes into the
    arrays a caller still holds, in training (y, dx) as at inference."""
    from pyrnn import _buffers

    T, B, I, H = 64, 16, 32, 48
    assert T * B * min(I, H) * 4 >= _buffers.MIN_BYTES  # the recycled path, not np.empty
    layer = pyrnn.LSTM(I, H, batch_first=batch_first, seed=6)
    rng = np.random.default_rng(5)
    shape = (B, T, I) if batch_first else (T, B, I)
    x1, x2 = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    with pyrnn.use_backend(backend):
        y1, _ = layer.forward(x1)
        dx1, _ = layer.backward(np.ones_like(y1))
        keep = y1.copy(), dx1.copy()
        y2, _ = layer.forward(x2)
        dx2, _ = layer.backward(2 * np.ones_like(y2))
        with pyrnn.no_grad():
            y3, _ = layer.forward(x1)
    for a, b in [(y1, y2), (y1, y3), (y2, y3), (dx1, dx2), (y1, dx2), (dx1, y2)]:
        assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(y1, keep[0])
    np.testing.assert_array_equal(dx1, keep[1])
    np.testing.assert_allclose(y3, y1, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_weights_written_in_place_are_used_by_the_next_call(backend):
    """Nothing derived from the weights outlives a call: a direct write into params is seen at once."""
    layer = make_layer("lstm", 3, 4, seed=5)
    x = np.random.default_rng(4).standard_normal((2, 5, 3))
    with pyrnn.use_backend(backend), pyrnn.no_grad():
        layer.forward(x)
        layer.params["weight_hh_l0"][...] *= -0.5
        layer.params["bias_ih_l0"][1] += 1.0
        got = layer.forward(x)[0]
    with pyrnn.use_backend("numpy"), pyrnn.no_grad():
        want = layer.forward(x)[0]
    np.testing.assert_allclose(got, want, **TOL64)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_two_threads_on_one_layer_do_not_corrupt_each_other(backend):
    """One thread trains (forward + backward, no optimizer step: the weights stay) while another runs
    inference on the same layer, both through its one workspace; every result is the reference's."""
    import threading

    layer = make_layer("lstm", 3, 6, num_layers=2, seed=6)
    rng = np.random.default_rng(5)
    x, state, dy, dstate = random_problem(layer, 4, 8, rng)
    xi = rng.standard_normal((3, 11, 3))
    want = run(layer, x, state, dy, dstate, "numpy")
    with pyrnn.use_backend("numpy"), pyrnn.no_grad():
        want_inf = layer.forward(xi)[0]
    failures, done = [], threading.Event()

    def infer():
        with pyrnn.use_backend(backend), pyrnn.no_grad():
            while not done.is_set():
                if not np.allclose(layer.forward(xi)[0], want_inf, **TOL64):
                    failures.append("inference")

    t = threading.Thread(target=infer)
    t.start()
    try:
        with pyrnn.use_backend(backend):
            for _ in range(20):
                layer.zero_grad()
                y, _ = layer.forward(x, state)
                dx, _ = layer.backward(dy, dstate)
                if not (np.allclose(y, want["y"], **TOL64) and np.allclose(dx, want["dx"], **TOL64)):
                    failures.append("training")
    finally:
        done.set()
        t.join()
    assert not failures
    for name, g in layer.grads.items():
        np.testing.assert_allclose(g, want[f"grad {name}"], err_msg=name, **TOL64)
