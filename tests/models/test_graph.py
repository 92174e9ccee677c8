"""Functional graphs: several inputs and outputs, merges, fan-out, an encoder's state as a
decoder's initial state; every gradient checked by finite differences (float64)."""

import weakref

import numpy as np
import pytest

import pyrnn
from pyrnn.layers import Add, Concatenate, Dense, LastStep

from gradcheck import check_model_grads


def test_encoder_decoder_graph_gradients():
    rng = np.random.default_rng(0)
    src, tgt = pyrnn.Input(name="src"), pyrnn.Input(name="tgt")
    _, (h, c) = pyrnn.LSTM(3, 4, dtype=np.float64, seed=0)(src)
    y, _ = pyrnn.LSTM(2, 4, dtype=np.float64, seed=1)(tgt, initial_state=(h, c))
    out = Dense(4, 3, dtype=np.float64, seed=2)(y)
    model = pyrnn.Model([src, tgt], out)
    check_model_grads(model, [rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 4, 2))], every=2)


def test_multi_output_merges_and_fan_out_gradients():
    """x feeds two branches (fan-out: gradients add), merged by Add and Concatenate; two outputs."""
    rng = np.random.default_rng(1)
    x, lengths = pyrnn.Input(name="x"), pyrnn.Input(name="lengths", dtype="int64")
    a, _ = pyrnn.GRU(3, 4, dtype=np.float64, seed=3)(x, lengths=lengths)
    b, _ = pyrnn.RNN(3, 4, dtype=np.float64, seed=4)(x, lengths=lengths)
    summed = Add()(a, b)
    both = Concatenate()(LastStep()(summed, lengths), LastStep()(a, lengths))
    out1, out2 = Dense(8, 2, dtype=np.float64, seed=5)(both), Dense(4, 1, dtype=np.float64, seed=6)(LastStep()(b, lengths))
    model = pyrnn.Model([x, lengths], [out1, out2])
    xs = rng.standard_normal((3, 5, 3))
    check_model_grads(model, [xs, np.array([5, 2, 3])], every=2)


def test_shared_layer_called_twice_gets_both_gradients():
    rng = np.random.default_rng(2)
    x1, x2 = pyrnn.Input(), pyrnn.Input()
    dense = Dense(3, 2, dtype=np.float64, seed=7)
    model = pyrnn.Model([x1, x2], Add()(dense(x1), dense(x2)))
    assert len(model.layers) == 2
    check_model_grads(model, [rng.standard_normal((4, 3)), rng.standard_normal((4, 3))], every=2)


def test_config_round_trip_rebuilds_the_same_function():
    rng = np.random.default_rng(3)
    src, tgt = pyrnn.Input(), pyrnn.Input()
    _, h = pyrnn.GRU(3, 4, seed=0)(src)
    y, _ = pyrnn.GRU(2, 4, seed=1)(tgt, initial_state=h)
    model = pyrnn.Model([src, tgt], Dense(4, 1, seed=2)(y))
    again = pyrnn.Model.from_config(model.get_config())
    again.load_state_dict(model.state_dict())
    xs = [rng.standard_normal((2, 5, 3)).astype(np.float32), rng.standard_normal((2, 4, 2)).astype(np.float32)]
    np.testing.assert_array_equal(model.predict(xs), again.predict(xs))


def test_graph_errors_are_named():
    x, other = pyrnn.Input(), pyrnn.Input()
    y = Dense(2, 2)(Add()(x, other))
    with pytest.raises(ValueError, match="depend on an Input that is not among the model's inputs"):
        pyrnn.Model(x, y)
    model = pyrnn.Model([x, other], y)
    with pytest.raises(ValueError, match=r"Model.forward: expected 2 input arrays, got 1"):
        model.forward(np.zeros((1, 2)))
    with pytest.raises(TypeError, match="every input must be a symbolic tensor"):
        Add()(x, np.zeros((1, 2)))


class _Probe(pyrnn.layers.Layer):
    """y = 2 x, keeping nothing for backward; records weak references to what passes through it
    and, when it runs, which earlier arrays are still alive."""

    def __init__(self, log):
        super().__init__()
        self.log = log

    def forward(self, x):
        self.log.append(("forward", self, weakref.ref(x), [ref() is not None for _, _, ref, _ in self.log]))
        self._save(None)
        return 2 * x

    def backward(self, dy):
        self._pop_saved()
        self.log.append(("backward", self, weakref.ref(dy), [ref() is not None for _, _, ref, _ in self.log]))
        return 2 * dy


def test_the_model_lets_go_of_arrays_it_no_longer_needs():
    """A chain x -> p0 -> p1 -> p2 -> h, and h feeds p3 and p4 (two outputs): in forward each output
    is freed once its last reader has run (the probes keep nothing); in backward each gradient once
    the layer that produced its tensor has taken it (h's, the sum of p3's and p4's, after p2)."""
    log = []
    x = pyrnn.Input(name="x")
    probes = [_Probe(log) for _ in range(5)]
    h = probes[2](probes[1](probes[0](x)))
    model = pyrnn.Model(x, [probes[3](h), probes[4](h)])
    data = np.ones((2, 3), np.float32)
    y3, y4 = model.forward(data)
    assert np.array_equal(y3, 16 * data) and np.array_equal(y4, 16 * data)
    # alive when p2, p3, p4 run: x (the caller's), p0's output (freed after p1), p1's (after p2), h
    assert [entry[3] for entry in log[2:]] == [[True, False], [True, False, False], [True, False, False, True]]
    n = len(log)
    model.backward(np.ones_like(y3), np.ones_like(y4))
    back = log[n:]
    assert [entry[1] for entry in back] == [probes[4], probes[3], probes[2], probes[1], probes[0]]
    # when p1 runs, h's summed gradient (p2's dy) is gone; when p0 runs, p1's dy is gone
    assert back[3][3][n + 2] is False and back[4][3][n + 3] is False
    assert back[4][3][n:n + 2] == [True, True]  # the output gradients: the caller's arguments


@pytest.mark.parametrize("forward", ["none", "no_grad", "inference"])
def test_backward_without_a_forward_that_kept_anything_is_a_named_error(forward):
    """Found by the API fuzz (vision family): Model.backward after a no_grad forward (or none) raised
    AttributeError '_out_meta' instead of saying what it expected."""
    x = pyrnn.Input()
    model = pyrnn.Model(x, Dense(3, 2)(x))
    if forward != "none":
        with pyrnn.no_grad() if forward == "no_grad" else pyrnn.inference():
            model.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"Model.backward: expected a forward\(\) with gradients on first, got none"):
        model.backward(np.zeros((4, 2)))


# ------------------------------------------ BatchNorm -> ReLU fused
def _bn_relu_model(fan_out=False, bn_is_output=False):
    inp = pyrnn.Input(name="x")
    h = pyrnn.Conv2D(3, 8, 3, padding=1, seed=0)(inp)
    bn = pyrnn.BatchNorm2D(8)
    n = bn(h)
    r = pyrnn.ReLU()(n)
    out = Add()(r, n) if fan_out else r
    model = pyrnn.Model(inp, [out, n] if bn_is_output else out)
    model._conv_folds = {}  # the BatchNorm -> ReLU pair alone, in inference too (the Conv2D fold: its own test)
    rng = np.random.default_rng(1)
    bn.buffers["running_mean"][...] = rng.standard_normal(8)
    bn.buffers["running_var"][...] = rng.random(8) + 0.5
    bn.params["weight"][...] = rng.standard_normal(8)
    return model


def _forward_backward(model, x):
    """The outputs, then every gradient (the input's, the parameters') and the state after a backward of ones."""
    model.zero_grad()
    out = model.forward(x)
    outs = out if isinstance(out, tuple) else (out,)
    dx = model.backward(*(np.ones_like(o) for o in outs))
    return [*outs, dx, *(g.copy() for layer in model.layers for g in layer.grads.values()),
            *model.state_dict().values()]


@pytest.mark.parametrize("fan_out,bn_is_output,fused", [(False, False, 1), (True, False, 0), (False, True, 0)])
def test_a_batchnorm_and_the_relu_that_alone_reads_it_run_fused(monkeypatch, fan_out, bn_is_output, fused):
    """Fused only when the ReLU is the BatchNorm's only reader and the BatchNorm's value is no output; then in
    every mode (inference, training with its backward): the same bits as the two layers on the same backend,
    the NumPy backend's numbers."""
    if "cpp" not in pyrnn.available_backends():
        pytest.skip("the fused kernel is the cpp backend's")
    from pyrnn.backends import backend_module

    calls = []
    cpp = backend_module("cpp")
    real = cpp.batchnorm_relu_forward
    monkeypatch.setattr(cpp, "batchnorm_relu_forward", lambda *a: calls.append(1) or real(*a))
    x = np.random.default_rng(2).standard_normal((2, 6, 5, 3)).astype(np.float32)
    got, want = {}, {}
    for mode in ("eval", "train"):
        model = _bn_relu_model(fan_out, bn_is_output).train(mode == "train")
        with pyrnn.use_backend("cpp"):
            with pyrnn.inference():
                got[mode, "inference"] = model.forward(x)
            got[mode, "step"] = _forward_backward(model, x)
        assert len(calls) == (2 if mode == "eval" else 4) * fused
        model = _bn_relu_model(fan_out, bn_is_output).train(mode == "train")
        with monkeypatch.context() as m:  # the cpp backend without the fused kernels: the two layers
            m.delattr(cpp, "batchnorm_relu_forward")
            with pyrnn.use_backend("cpp"):
                with pyrnn.inference():
                    want[mode, "inference"] = model.forward(x)
                want[mode, "step"] = _forward_backward(model, x)
        model = _bn_relu_model(fan_out, bn_is_output).train(mode == "train")
        with pyrnn.use_backend("numpy"):
            reference = _forward_backward(model, x)
        for a, b, c in zip(got[mode, "step"], want[mode, "step"], reference):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4)
        for a, b in zip(*((v if isinstance(v, tuple) else (v,)) for v in (got[mode, "inference"], want[mode, "inference"]))):
            np.testing.assert_array_equal(a, b)


# ------------------------------------------ Conv2D -> (BatchNorm2D ->) (ReLU | Tanh) folded in inference
def _conv_bn_model(bn=True, act="relu", fan_out=False, conv_is_output=False):
    inp = pyrnn.Input(name="x")
    h = pyrnn.Conv2D(3, 8, 3, padding=1, seed=0)(inp)
    norm = pyrnn.BatchNorm2D(8)
    out = norm(h) if bn else h
    out = {"relu": pyrnn.ReLU(), "tanh": pyrnn.Tanh()}[act](out) if act else out
    if fan_out:
        out = Add()(out, h)
    model = pyrnn.Model(inp, [out, h] if conv_is_output else out)
    rng = np.random.default_rng(1)
    norm.buffers["running_mean"][...] = rng.standard_normal(8)
    norm.buffers["running_var"][...] = rng.random(8) + 0.5
    norm.params["weight"][...] = rng.standard_normal(8)
    norm.params["bias"][...] = rng.standard_normal(8)
    return model


@pytest.mark.parametrize("backend", ["numpy", "cpp"])
@pytest.mark.parametrize("bn,act,fan_out,conv_is_output,folded", [
    (True, "relu", False, False, True), (True, None, False, False, True), (True, "tanh", False, False, True),
    (False, "relu", False, False, True), (False, "tanh", False, False, True),
    (True, "relu", True, False, False), (True, "relu", False, True, False)])
def test_a_conv_and_the_layers_that_alone_read_it_fold_in_inference(backend, bn, act, fan_out, conv_is_output,
                                                                    folded, monkeypatch):
    """Without gradients and with the BatchNorm in eval mode, a Conv2D whose output only a BatchNorm2D or a
    ReLU/Tanh reads (and the ReLU/Tanh that alone reads that BatchNorm) runs as one folded convolution call: the
    BatchNorm's and the activation's layers do not run; the outputs are the layers' one by one up to rounding.
    Not folded: when another node reads the convolution's output, when it is a model output, in training mode
    (the BatchNorm's batch statistics), or with gradients on (but for a Conv2D -> activation: see
    test_a_conv_and_the_activation_that_alone_reads_it_run_as_one_call_in_training)."""
    if backend not in pyrnn.available_backends():
        pytest.skip(f"{backend} is not available")
    from pyrnn.layers.activations import ReLU, Tanh
    from pyrnn.layers.norm import _BatchNorm

    ran = []
    for cls, name in ((_BatchNorm, "_run"), (ReLU, "graph_forward"), (Tanh, "graph_forward")):  # _run: fused or not
        real = getattr(cls, name)
        monkeypatch.setattr(cls, name, lambda self, *a, real=real, **k: ran.append(type(self)) or real(self, *a, **k))
    x = np.random.default_rng(2).standard_normal((2, 6, 5, 3)).astype(np.float32)
    model = _conv_bn_model(bn, act, fan_out, conv_is_output).eval()
    with pyrnn.use_backend(backend):
        with pyrnn.inference():
            got = model.forward(x)
        assert (ran == []) == folded, ran
        with pyrnn.no_grad():  # eval mode, no gradients: the same
            np.testing.assert_array_equal(_tuple(model.forward(x))[0], _tuple(got)[0])
        ran.clear()
        folds, model._conv_folds = model._conv_folds, {}  # the layers one by one
        with pyrnn.inference():
            want = model.forward(x)
        model._conv_folds = folds
        assert ran
        for a, b in zip(_tuple(got), _tuple(want)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        if bn:
            ran.clear()
            model.train()  # batch statistics: no fold
            with pyrnn.no_grad():
                model.forward(x)
            assert pyrnn.BatchNorm2D in ran
        ran.clear()
        _forward_backward(model, x)  # gradients on: the layers, but a Conv2D -> activation chain
        assert (ran == []) == (folded and not bn), ran


@pytest.mark.parametrize("backend", ["numpy", "numba", "cpp"])
@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("fan_out,conv_is_output,first", [(False, False, True), (False, False, False),
                                                          (True, False, True), (False, True, False)])
def test_a_conv_and_the_activation_that_alone_reads_it_run_as_one_call_in_training(backend, act, fan_out,
                                                                                    conv_is_output, first, monkeypatch):
    """With gradients on, a Conv2D whose output only a ReLU/Tanh reads runs the activation in its own call (the
    activation layer's forward and backward do not run; the Conv2D applies the activation's backward to the
    gradient it gets), the model's input gradient or not (``first``: a first layer's backward_params); the outputs,
    the input gradient and every weight gradient are the layers' one by one up to the kernels' rounding (a tanh
    post-op is the same approximation). Not fused when another node reads the convolution's output or it is a
    model output."""
    if backend not in pyrnn.available_backends():
        pytest.skip(f"{backend} is not available")
    from pyrnn.layers.activations import ReLU, Tanh

    ran = []
    for cls in (ReLU, Tanh):
        for name in ("graph_forward", "graph_backward"):
            real = getattr(cls, name)
            monkeypatch.setattr(cls, name, lambda self, *a, real=real, **k: ran.append(type(self)) or real(self, *a, **k))
    x = np.random.default_rng(2).standard_normal((2, 6, 5, 3)).astype(np.float64)
    inp = pyrnn.Input(name="x")
    h = pyrnn.Conv2D(3, 8, 3, padding=1, dtype=np.float64, seed=0)(inp)
    if not first:
        h = pyrnn.Conv2D(8, 8, 3, padding=1, dtype=np.float64, seed=1)(pyrnn.Tanh()(h))
    out = {"relu": pyrnn.ReLU(), "tanh": pyrnn.Tanh()}[act](h)
    if fan_out:
        out = Add()(out, h)
    model = pyrnn.Model(inp, [out, h] if conv_is_output else out)
    fused = not fan_out and not conv_is_output
    with pyrnn.use_backend(backend):
        got = _forward_backward(model, x)
        assert ran.count({"relu": ReLU, "tanh": Tanh}[act]) == (0 if fused else 2), ran
        folds, model._conv_activations = model._conv_activations, {}  # the layers one by one
        want = _forward_backward(model, x)
        model._conv_activations = folds
        model.zero_grad()
        outs = _tuple(model.forward(x))  # the input needs no gradient: the first Conv2D's backward_params
        assert model.backward(*(np.ones_like(o) for o in outs), input_grad=False) is None
        weight_grads = [g.copy() for layer in model.layers for g in layer.grads.values()]
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    n = len(outs) + 1  # got: the outputs, the input gradient, then the weight gradients
    for a, b in zip(weight_grads, got[n:]):
        np.testing.assert_array_equal(a, b)


def _tuple(v):
    return v if isinstance(v, tuple) else (v,)


def test_a_deep_copy_of_a_model_runs_as_the_original():
    """copy.deepcopy makes new tensors: a model's step plan holds tensor numbers, not ids (it used to raise
    KeyError); the copy gives the original's outputs and gradients, fan-out and merges included."""
    import copy

    model = _bn_relu_model(fan_out=True, bn_is_output=True)
    twin = copy.deepcopy(model)
    x = np.random.default_rng(3).standard_normal((2, 6, 5, 3)).astype(np.float32)
    for a, b in zip(_forward_backward(model, x), _forward_backward(twin, x)):
        np.testing.assert_array_equal(a, b)
    assert all(p is not q for p, q in zip(model.parameters(), twin.parameters()))
