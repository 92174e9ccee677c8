"""Every backend conforms to the contract in code: the Protocols of pyrnn.backends.contract (same
function names, same parameters) and one Cache layout, with the same values, for every backend."""

import inspect

import numpy as np
import pytest

import pyrnn
from pyrnn.backends import backend_module, contract

from helpers import CELLS

BACKENDS = pyrnn.available_backends()


def _members(protocol):
    return sorted({name for cls in protocol.__mro__ if cls.__module__ == contract.__name__
                   for name, value in vars(cls).items() if callable(value) and not name.startswith("_")})


def _parameters(fn, drop_self=False):
    params = list(inspect.signature(fn).parameters.values())[int(drop_self):]
    return [(p.name, p.kind, p.default) for p in params]


def test_the_protocols_name_every_family():
    assert _members(contract.RecurrentBackend) == ["recurrent_backward", "recurrent_forward"]
    assert _members(contract.ConvBackend) == ["conv1d_backward", "conv1d_forward", "pool1d_backward", "pool1d_forward"]
    families = (contract.RecurrentBackend, contract.ConvBackend, contract.NormBackend, contract.Pool2DBackend,
                contract.Conv2dBackend, contract.ActivationBackend, contract.ConcatBackend)
    assert _members(contract.ConcatBackend) == ["concat_last", "split_last"]
    assert _members(contract.Backend) == sorted(m for family in families for m in _members(family))


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_module_conforms_to_the_protocols(name):
    module = backend_module(name)
    assert isinstance(module, contract.Backend)
    for member in _members(contract.Backend):
        want = _parameters(getattr(contract.Backend, member), drop_self=True)
        assert _parameters(getattr(module, member)) == want, f"{name}.{member}"


@pytest.mark.parametrize("module", ["conv_reference", "conv_numba", "conv_cpp"])
def test_conv_modules_conform_to_the_conv_protocol(module):
    if module == "conv_cpp" and "cpp" not in BACKENDS:  # pragma: no cover - a plain install builds it
        pytest.skip("the cpp backend is not built")
    mod = __import__(f"pyrnn.backends.{module}", fromlist=["_"])
    assert isinstance(mod, contract.ConvBackend)
    for member in _members(contract.ConvBackend):
        assert _parameters(getattr(mod, member)) == _parameters(getattr(contract.ConvBackend, member), True), member


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELLS)
def test_every_backend_saves_the_same_cache(cell, dtype):
    """One Cache type, None where a cell has none (and LSTM's tanh_cs from the C++ kernels, whose backward
    recomputes tanh(c_t) from cs), and the same values in every backend."""
    T, B, I, H = 5, 3, 4, 6
    G = contract.GATES[cell]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    c0 = rng.standard_normal((B, H)).astype(dtype) if cell == "lstm" else None
    weights = contract.Weights(*(0.3 * rng.standard_normal(s) for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]))
    weights = contract.Weights(*(w.astype(dtype) for w in weights))
    lengths = np.array([5, 2, 0], np.int64)
    caches = {}
    for name in BACKENDS:
        hs, hT, cT, saved = backend_module(name).recurrent_forward(cell, x, h0, c0, weights, reverse=True, lengths=lengths)
        assert type(saved.cache) is contract.Cache and saved.hs is hs
        layout = contract.new_cache(cell, T, B, H, dtype, tanh_cs=name != "cpp")
        for field, have, want in zip(contract.Cache._fields, saved.cache, layout):
            assert (have is None) == (want is None), f"{name} {field}"
            if have is not None:
                assert have.shape == want.shape and have.dtype == dtype, f"{name} {field}"
        caches[name] = saved.cache
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for name, cache in caches.items():
        for field, have, want in zip(contract.Cache._fields, cache, caches["numpy"]):
            if want is not None and not (name == "cpp" and field == "tanh_cs"):
                np.testing.assert_allclose(have, want, err_msg=f"{name} {field}", **tol)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_backward_writes_dx_into_out(name, cell):
    """recurrent_backward's ``out``: a time-major view of a batch-first array receives dx (the value the call
    returns without it) and is returned in its place."""
    T, B, I, H = 4, 3, 5, 6
    G = contract.GATES[cell]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    c0 = rng.standard_normal((B, H)) if cell == "lstm" else None
    weights = contract.Weights(*(0.3 * rng.standard_normal(s) for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]))
    dhs, dhT = rng.standard_normal((T, B, H)), rng.standard_normal((B, H))
    dcT = rng.standard_normal((B, H)) if cell == "lstm" else None
    module = backend_module(name)
    dxs = []
    for out in (None, np.full((B, T, I), np.nan).transpose(1, 0, 2)):
        grads = contract.Weights(*(np.zeros_like(w) for w in weights))
        saved = module.recurrent_forward(cell, x, h0, c0, weights)[3]
        dx = module.recurrent_backward(saved, weights, dhs, dhT, dcT, grads, out=out)[0]
        assert out is None or dx is out
        dxs.append(dx)
    assert not np.isnan(dxs[1]).any()
    np.testing.assert_array_equal(dxs[1], dxs[0], err_msg=name)


@pytest.mark.parametrize("name", [b for b in BACKENDS if b != "numpy"])
@pytest.mark.parametrize("cell", CELLS)
def test_inference_keeps_no_cache(name, cell):
    x = np.ones((3, 2, 2))
    h0 = np.zeros((2, 4))
    G = contract.GATES[cell]
    weights = contract.Weights(np.ones((G * 4, 2)), np.ones((G * 4, 4)), np.zeros(G * 4), np.zeros(G * 4))
    c0 = h0 if cell == "lstm" else None
    hs, hT, cT, saved = backend_module(name).recurrent_forward(cell, x, h0, c0, weights, save=False)
    assert saved is None and hs.shape == (3, 2, 4) and (cT is None) == (cell != "lstm")


def test_numba_kernels_take_their_flags_from_one_place():
    """Every @njit of the Numba backend is ``@numba.njit(**JIT)`` (backends/_numba_config.py); none runs
    in parallel and none sets Numba's threads."""
    import re

    pytest.importorskip("numba")
    from pyrnn.backends import _numba_config, conv_numba, numba_jit

    for module in (numba_jit, conv_numba):
        source = inspect.getsource(module)
        jitted = re.findall(r"@numba\.(\w+)\(([^)]*)\)", source)
        assert jitted and all(kind == "njit" and args == "**JIT" for kind, args in jitted), jitted
        assert "numba.prange" not in source and "set_num_threads(" not in source
    assert not _numba_config.JIT.get("parallel", False)
