"""The Layer base: one-way layering, the one registry, shapes_only builds, strict state dicts."""

import ast
import gc
import json
import pathlib

import numpy as np
import pytest

import pyrnn
from pyrnn.layers import Dense, LastStep, Layer
from pyrnn.layers.base import load_strict, shapes_only
from pyrnn.layers.registry import layer_class, layer_from_config

SRC = pathlib.Path(pyrnn.__file__).resolve().parent


def _imports(path):
    """Absolute names of every module ``path`` imports (function-level imports too)."""
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            names.append(".".join(base + ([node.module] if node.module else [])))
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return names


def test_layers_import_nothing_from_models_or_above():
    """Imports only point down: layers/ knows nothing of models, training, checkpoints."""
    above = ("pyrnn.models", "pyrnn.serialization", "pyrnn.checkpoint", "pyrnn.callbacks", "pyrnn.tasks", "pyrnn.timeseries")
    bad = [(p.name, name) for p in (SRC / "layers").glob("*.py") for name in _imports(p) if name.startswith(above)]
    assert not bad, bad


def test_grad_mode_imports_nothing_from_pyrnn():
    assert not [n for n in _imports(SRC / "grad_mode.py") if n.startswith("pyrnn")]


class Scale(Layer):
    """A user-defined layer: y = a * x with one parameter."""

    def __init__(self, features, dtype=np.float32):
        super().__init__(dtype)
        self.features = features
        self.add_param("a", (features,), lambda shape: np.full(shape, 2.0))

    def forward(self, x):
        self._save(x)
        return x * self.params["a"]

    def backward(self, dy):
        x = self._pop_saved()
        self.grads["a"] += (dy * x).reshape(-1, self.features).sum(axis=0)
        return dy * self.params["a"]

    def get_config(self):
        return {"features": self.features, "dtype": self.dtype.name}


def test_a_user_defined_layer_saves_and_loads(tmp_path):
    model = pyrnn.Sequential([pyrnn.GRU(2, 3, seed=0), LastStep(), Scale(3), Dense(3, 1, seed=1)])
    model.layers[2].params["a"][:] = [1.0, -2.0, 0.5]
    model.save(tmp_path / "m.safetensors")
    again = pyrnn.load(tmp_path / "m.safetensors")
    assert type(again.layers[2]) is Scale
    x = np.random.default_rng(0).standard_normal((4, 5, 2)).astype(np.float32)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_the_registry_names_ambiguity_and_absence():
    assert layer_class("GRU") is pyrnn.GRU and layer_class("Scale") is Scale

    class Dense(Layer):  # noqa: F811 - a user class with a built-in's name
        pass

    with pytest.raises(ValueError, match=r"layer class: expected the name of one defined Layer subclass, got 'Dense' \(2 classes"):
        layer_class("Dense")
    del Dense
    gc.collect()  # the registry holds classes weakly: the local class is gone again
    assert layer_class("Dense") is pyrnn.Dense
    with pytest.raises(ValueError, match=r"got 'Nope' \(no such class is defined\)"):
        layer_from_config({"class": "Nope", "config": {}})
    with pytest.raises(TypeError, match=r"layer config of 'GRU': expected a dict of keyword arguments, got list"):
        layer_from_config({"class": "GRU", "config": [3, 4]})


def test_wrappers_take_layers_and_rebuild_their_inner_layer_from_config():
    td = pyrnn.TimeDistributed(pyrnn.TimeDistributed(Dense(3, 2, seed=4)))
    again = pyrnn.TimeDistributed.from_config(json.loads(json.dumps(td.get_config())))
    assert type(again.layer.layer) is Dense and again.get_config() == td.get_config()
    with pytest.raises(TypeError, match=r"layer: expected a Layer, got dict"):
        pyrnn.TimeDistributed(td.get_config()["layer"])


def test_shapes_only_allocates_nothing():
    with shapes_only():
        big = pyrnn.LSTM(10000, 10000, num_layers=3, bidirectional=True, forget_bias=1.0)  # 9.6 GB if real
        head = Dense(20000, 7)
    assert big.params["weight_ih_l1"].shape == (40000, 20000) and head.params["weight"].shape == (7, 20000)
    assert all(p.strides == (0,) * p.ndim for p in list(big.params.values()) + list(head.params.values()))
    small = pyrnn.LSTM(3, 4, seed=0, forget_bias=1.0)  # outside: real, seeded, writable
    np.testing.assert_array_equal(small.params["bias_ih_l0"], pyrnn.LSTM(3, 4, seed=0, forget_bias=1.0).params["bias_ih_l0"])


def test_load_strict_changes_nothing_unless_every_entry_fits():
    own = {"a": np.zeros(3), "b": np.zeros((2, 2))}
    with pytest.raises(ValueError, match=r"state_dict\['b'\]: expected shape \(2, 2\), got \(4,\)"):
        load_strict(own, {"a": np.ones(3), "b": np.ones(4)})
    assert not own["a"].any()
    with pytest.raises(TypeError, match=r"state_dict\['a'\]: expected a floating-point array, got dtype int64"):
        load_strict(own, {"a": np.ones(3, np.int64), "b": np.ones((2, 2))})
    with pytest.raises(ValueError, match=r"missing \['b'\], unexpected \['c'\]"):
        load_strict(own, {"a": np.ones(3), "c": 1})
    with pytest.raises(TypeError, match=r"state_dict: expected a mapping of names to arrays, got list"):
        load_strict(own, [1, 2])


def test_parameter_sizes_are_bounded_and_memory_errors_name_the_parameter():
    with pytest.raises(ValueError, match=r"GRU: expected at most 2147483647 elements in a parameter, got weight_hh_l0 of shape \(3145728, 1048576\)"):
        pyrnn.GRU(3, 2**20)
    with pytest.raises(ValueError, match=r"Dense: expected at most 2147483647 elements in a parameter, got weight of shape \(2, 2147483647\)"):
        Dense(2**31 - 1, 2)
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, resource.RLIM_INFINITY))\n"
            "import pyrnn\n"
            "try:\n    pyrnn.Dense(2**30, 1)\nexcept MemoryError as exc:\n    print(exc)\n")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "Dense: unable to allocate parameter weight of shape (1, 1073741824) and its gradient (8.0 GiB of float32)" in out.stdout, out


class RunningMean(Layer):
    """A layer with buffers: a float running mean and an integer counter (as BatchNorm has)."""

    def __init__(self, features, dtype=np.float32):
        super().__init__(dtype)
        self.features = features
        self.add_param("w", (features,), np.ones)
        self.add_buffer("running_mean", np.zeros(features, self.dtype))
        self.add_buffer("num_batches_tracked", np.array(0, np.int64))

    def forward(self, x):
        if self.is_training:
            self.buffers["running_mean"] += 0.1 * (x.mean(axis=0) - self.buffers["running_mean"])
            self.buffers["num_batches_tracked"] += 1
        self._save(None)
        return x * self.params["w"]

    def backward(self, dy):
        self._pop_saved()
        return dy * self.params["w"]

    def get_config(self):
        return {"features": self.features, "dtype": self.dtype.name}


def test_buffers_are_state_but_not_parameters_and_round_trip_bit_for_bit(tmp_path):
    model = pyrnn.Sequential([RunningMean(3), Dense(3, 1, seed=0)]).compile("adam", "mse")
    x = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
    model.fit(x, x[:, :1], epochs=2, batch_size=4, verbose=0)
    layer = model.layers[0]
    assert int(layer.buffers["num_batches_tracked"]) == 8 and layer.buffers["running_mean"].any()
    assert "0.running_mean" in model.state_dict() and "0.num_batches_tracked" in model.state_dict()
    assert len(model.param_grad_pairs()) == 3  # w, weight, bias: buffers are not trained
    model.save(tmp_path / "m.safetensors")
    again = pyrnn.load(tmp_path / "m.safetensors")
    for name, value in model.state_dict().items():
        got = again.state_dict()[name]
        assert got.dtype == value.dtype and np.array_equal(got, value), name
    with pytest.raises(TypeError, match=r"state_dict\['0.num_batches_tracked'\]: expected an integer array, got dtype float64"):
        again.load_state_dict(dict(again.state_dict(), **{"0.num_batches_tracked": np.array(1.0)}))
    with pytest.raises(ValueError, match=r"missing \['0.running_mean'\]"):
        again.load_state_dict({k: v for k, v in again.state_dict().items() if k != "0.running_mean"})


def test_forward_signatures_are_kept_per_function_and_follow_a_replaced_forward():
    """graph_inputs binds every call to forward's signature (a Sequential does, at every step): built once per
    function, bound and unbound apart, and a forward replaced on one layer is bound by its own signature."""
    import inspect

    from pyrnn.layers.base import signature_of

    a, b = pyrnn.Dense(2, 3), pyrnn.Dense(2, 3)
    assert signature_of(a.forward) is signature_of(b.forward) == inspect.signature(a.forward)
    assert signature_of(pyrnn.Dense.forward) == inspect.signature(pyrnn.Dense.forward)  # with self
    assert "self" not in signature_of(a.forward).parameters and "self" in signature_of(pyrnn.Dense.forward).parameters
    assert a.graph_inputs("x") == ["x"]
    a.forward = lambda x, extra=7: x
    assert a.graph_inputs(1) == [1, 7] and b.graph_inputs(1) == [1]
    with pytest.raises(TypeError, match="Dense"):
        b.graph_inputs(1, 2)
