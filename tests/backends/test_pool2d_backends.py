"""The 2-D pooling/upsampling kernels: the reference by finite differences (float64), every fast backend
against the reference (float64 ~1e-10, float32 ~1e-5), saved state that any backend's backward takes,
edge cases (empty sizes, windows wholly in the padding, NaN and -inf), the contract's checks, the Protocol.

Legend: B = batch, H/W = height/width, C = channels, k = kernel, s = stride, p = padding, d = dilation.
"""

import inspect
import re
import zlib

import numpy as np
import pytest

import pyrnn
from pyrnn.backends import backend_module, contract
from pyrnn.backends import pool2d_reference as ref

from gradcheck import assert_grad_close
from helpers import cpp_isas, cpp_team

BACKENDS = pyrnn.available_backends()
FAST = [b for b in BACKENDS if b != "numpy"]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}
POOL_MEMBERS = ["pool2d_backward", "pool2d_forward", "upsample2d_backward", "upsample2d_forward"]


def _close(got, want, dtype, name):
    assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, got.shape, want.shape)
    finite = want[np.isfinite(want)]
    scale = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
    np.testing.assert_allclose(got, want, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale, err_msg=name)


def _random_pool_cases(kind, n, seed):
    """(shape, kernel, stride, padding, dilation, ceil_mode, count_include_pad) with an output."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        p = (int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1)))
        d = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if kind == "max" else (1, 1)
        ceil_mode, cip = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 10)), int(rng.integers(1, 10)), int(rng.integers(1, 4)))
        if min(ref.pool_output_size(shape[1 + i], k[i], s[i], p[i], d[i], ceil_mode) for i in range(2)) >= 1:
            out.append((shape, k, s, p, d, ceil_mode, cip))
    return out


def _pool_run(kernels, kind, x, dy_rng, geom):
    y, saved = kernels.pool2d_forward(kind, x, *geom)
    dy = dy_rng.standard_normal(y.shape).astype(x.dtype)
    return y, saved, dy, kernels.pool2d_backward(saved, dy)


# --------------------------------------------------- reference vs finite differences
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", _random_pool_cases("max", 6, 1)[:3] + _random_pool_cases("avg", 6, 2)[:3], ids=str)
def test_reference_pool2d_gradients_match_finite_differences(kind, case):
    shape, k, s, p, d, ceil_mode, cip = case
    geom = (k, s, p, d if kind == "max" else (1, 1), ceil_mode, cip)
    rng = np.random.default_rng(zlib.crc32(f"{kind}{case}".encode()))
    x = rng.permutation(int(np.prod(shape))).reshape(shape) / np.prod(shape)  # distinct values in [0, 1): no tie within eps
    y, saved, dy, dx = _pool_run(ref, kind, x, rng, geom)
    assert_grad_close(dx, lambda: float(np.sum(ref.pool2d_forward(kind, x, *geom)[0] * dy)), x, f"{kind} dx")


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("shape,scale", [((2, 3, 4, 2), (2, 2)), ((1, 5, 2, 3), (3, 1)), ((2, 1, 3, 1), (4, 3))])
def test_reference_upsample2d_gradients_match_finite_differences(mode, shape, scale):
    rng = np.random.default_rng(zlib.crc32(f"{mode}{shape}{scale}".encode()))
    x = rng.standard_normal(shape)
    y, saved = ref.upsample2d_forward(x, scale, mode)
    dy = rng.standard_normal(y.shape)
    dx = ref.upsample2d_backward(saved, dy)
    assert_grad_close(dx, lambda: float(np.sum(ref.upsample2d_forward(x, scale, mode)[0] * dy)), x, f"{mode} dx")


def test_reference_semantics_on_a_worked_example():
    """Hand-computed on one 3x3 channel: x = [[1, 5, 2], [0, -1, 3], [4, 2, 2]]."""
    x = np.array([[1.0, 5, 2], [0, -1, 3], [4, 2, 2]]).reshape(1, 3, 3, 1)
    y, saved = ref.pool2d_forward("max", x, (2, 2), (2, 2), (1, 1), (1, 1), False, True)  # windows start at -1, 1
    assert y.ravel().tolist() == [1.0, 5.0, 4.0, 3.0] and saved.argmax.ravel().tolist() == [0, 1, 6, 5]
    y, _ = ref.pool2d_forward("avg", x, (2, 2), (2, 2), (1, 1), (1, 1), False, True)
    assert y.ravel().tolist() == [0.25, 1.75, 1.0, 1.5]  # the padding counts in the divisor
    y, _ = ref.pool2d_forward("avg", x, (2, 2), (2, 2), (1, 1), (1, 1), False, False)
    assert y.ravel().tolist() == [1.0, 3.5, 2.0, 1.5]  # it does not
    y, _ = ref.pool2d_forward("avg", x, (2, 2), (2, 2), (0, 0), (1, 1), True, True)  # ceil: windows past the input
    assert y.ravel().tolist() == [5 / 4, 5 / 2, 6 / 2, 2.0]  # divided by what the window covers inside L + p
    y, _ = ref.upsample2d_forward(np.array([[1.0, 3.0]]).reshape(1, 1, 2, 1), (1, 2), "bilinear")
    assert y.ravel().tolist() == [1.0, 1.5, 2.5, 3.0]


# --------------------------------------------------- fast backends vs the reference
POOL_CASES = [("max", c) for c in _random_pool_cases("max", 16, 3)] + [("avg", c) for c in _random_pool_cases("avg", 16, 4)]


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind,case", POOL_CASES, ids=[f"{k}-{c}" for k, c in POOL_CASES])
def test_fast_pool2d_matches_the_reference(backend, dtype, kind, case):
    shape, k, s, p, d, ceil_mode, cip = case
    geom = (k, s, p, d, ceil_mode, cip)
    seed = zlib.crc32(f"{kind}{case}".encode())
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    y, saved, _, dx = _pool_run(backend_module(backend), kind, x, np.random.default_rng(seed), geom)
    want_y, want_saved, _, want_dx = _pool_run(ref, kind, x, np.random.default_rng(seed), geom)
    _close(y, want_y, dtype, "y")
    _close(dx, want_dx, dtype, "dx")
    assert type(saved) is contract.Pool2DSaved and saved._replace(argmax=None) == want_saved._replace(argmax=None)
    if kind == "max":
        np.testing.assert_array_equal(saved.argmax, want_saved.argmax)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("shape,scale", [((2, 5, 7, 3), (2, 3)), ((1, 1, 1, 2), (3, 3)), ((3, 4, 3, 1), (1, 4)), ((2, 9, 6, 5), (2, 2))])
def test_fast_upsample2d_matches_the_reference(backend, dtype, mode, shape, scale):
    kernels = backend_module(backend)
    rng = np.random.default_rng(zlib.crc32(f"{shape}{scale}{mode}".encode()))
    x = rng.standard_normal(shape).astype(dtype)
    y, saved = kernels.upsample2d_forward(x, scale, mode)
    want_y, want_saved = ref.upsample2d_forward(x, scale, mode)
    assert type(saved) is contract.Upsample2DSaved and saved == want_saved
    dy = rng.standard_normal(y.shape).astype(dtype)
    _close(y, want_y, dtype, "y")
    _close(kernels.upsample2d_backward(saved, dy), ref.upsample2d_backward(want_saved, dy), dtype, "dx")


@pytest.mark.parametrize("backend", FAST)
def test_saved_state_is_the_same_type_for_every_backend(backend):
    """Any backend's backward takes what any other's forward saved."""
    x = np.random.default_rng(0).standard_normal((2, 7, 6, 3))
    dy = np.random.default_rng(1).standard_normal((2, 4, 4, 3))
    for kind in ("max", "avg"):
        geom = ((3, 2), (2, 2), (1, 1), (1, 1), True, False)
        _, fast_saved = backend_module(backend).pool2d_forward(kind, x, *geom)
        _, ref_saved = ref.pool2d_forward(kind, x, *geom)
        _close(ref.pool2d_backward(fast_saved, dy), backend_module(backend).pool2d_backward(ref_saved, dy), np.float64, kind)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])  # float32: C++'s masked-vector max forward too
@pytest.mark.parametrize("backend", BACKENDS)
def test_windows_in_the_padding_nan_and_minus_inf(backend, dtype):
    kernels = backend_module(backend)
    # H = 1, kernel 2, dilation 2, padding 1: the taps are rows -1 and 1, both outside x
    x = np.ones((1, 1, 3, 1), dtype)
    y, saved = kernels.pool2d_forward("max", x, (2, 1), (1, 1), (1, 0), (2, 1), False, True)
    assert y.shape == (1, 1, 3, 1) and np.all(y == -np.inf) and np.all(saved.argmax == -1)
    assert np.all(kernels.pool2d_backward(saved, np.ones(y.shape, dtype)) == 0)
    # NaN wins (the first one in window order) and propagates
    x = np.arange(16.0, dtype=dtype).reshape(1, 4, 4, 1)
    x[0, 1, 0, 0] = x[0, 1, 1, 0] = np.nan
    y, saved = kernels.pool2d_forward("max", x, (2, 2), (2, 2), (0, 0), (1, 1), False, True)
    assert np.isnan(y[0, 0, 0, 0]) and saved.argmax[0, 0, 0, 0] == 4 and y[0, 1, 1, 0] == 15.0
    # an all -inf window: the first tap inside x
    x = np.full((1, 3, 3, 1), -np.inf, dtype)
    y, saved = kernels.pool2d_forward("max", x, (2, 2), (2, 2), (1, 1), (1, 1), False, True)
    assert np.all(y == -np.inf) and saved.argmax.ravel().tolist() == [0, 1, 3, 4]


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_sizes(backend):
    kernels = backend_module(backend)
    for shape in ((0, 5, 5, 2), (2, 5, 5, 0)):
        x = np.zeros(shape, np.float32)
        for kind in ("max", "avg"):
            y, saved = kernels.pool2d_forward(kind, x, (2, 2), (2, 2), (1, 1), (1, 1), True, True)
            assert y.shape == shape[:1] + (3, 3) + shape[3:] and y.dtype == np.float32
            assert kernels.pool2d_backward(saved, y).shape == shape
        y, saved = kernels.upsample2d_forward(x, (2, 1), "bilinear")
        assert y.shape == shape[:1] + (10, 5) + shape[3:]
        assert kernels.upsample2d_backward(saved, y).shape == shape


# --------------------------------------------------- the contract's checks
GOOD = dict(kind="max", x=np.zeros((1, 4, 4, 1)), kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1),
            ceil_mode=False, count_include_pad=True)
BAD_POOL_ARGS = [
    (dict(kind="min"), ValueError, r"kind: expected 'max' or 'avg', got 'min'"),
    (dict(x=[[1.0]]), TypeError, r"x: expected a numpy.ndarray, got list"),
    (dict(x=np.zeros((1, 4, 4, 1), np.int32)), TypeError, r"x: expected dtype float32 or float64, got int32"),
    (dict(x=np.zeros((4, 4, 1))), ValueError, r"x: expected a 4-D array \(B, H, W, C\), got shape \(4, 4, 1\)"),
    (dict(x=np.zeros((1, 4, 8, 1))[:, :, ::2]), ValueError, r"x: expected a C-contiguous array"),
    (dict(kernel=(2, 0)), ValueError, r"kernel: expected a pair \(h, w\) of integers >= 1, got \(2, 0\)"),
    (dict(stride=2), ValueError, r"stride: expected a pair \(h, w\) of integers >= 1, got 2"),
    (dict(padding=(2, 0)), ValueError, r"padding: expected at most kernel // 2 = \(1, 1\), got \(2, 0\)"),
    (dict(kind="avg", dilation=(2, 1)), ValueError, r"dilation: expected \(1, 1\) for average pooling, got \(2, 1\)"),
    (dict(ceil_mode=None), TypeError, r"ceil_mode: expected True or False, got NoneType None"),
    (dict(kernel=(5, 2)), ValueError, r"x: expected H >= 5 for kernel_size=\(5, 2\), stride=\(2, 2\), padding=\(0, 0\), "
                                      r"dilation=\(1, 1\), ceil_mode=False, got H=4, W=4"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("change,error,match", BAD_POOL_ARGS, ids=[m[:40] for *_, m in BAD_POOL_ARGS])
def test_pool2d_forward_checks_its_arguments(backend, change, error, match):
    with pytest.raises(error, match=match):
        backend_module(backend).pool2d_forward(**dict(GOOD, **change))


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_and_upsample_check_their_arguments(backend):
    kernels = backend_module(backend)
    x = np.zeros((1, 4, 4, 2))
    y, saved = kernels.pool2d_forward("max", x, (2, 2), (2, 2), (0, 0), (1, 1), False, True)
    with pytest.raises(TypeError, match=r"saved: expected a Pool2DSaved from pool2d_forward, got tuple"):
        kernels.pool2d_backward(tuple(saved), y)
    with pytest.raises(ValueError, match=r"dy: expected shape \(1, 2, 2, 2\) \(B, OH, OW, C\), got \(1, 2, 2, 1\)"):
        kernels.pool2d_backward(saved, np.zeros((1, 2, 2, 1)))
    with pytest.raises(TypeError, match=r"dy: expected dtype float64 \(the forward's\), got float32"):
        kernels.pool2d_backward(saved, y.astype(np.float32))
    with pytest.raises(ValueError, match=r"saved.argmax: expected a C-contiguous int64 array \(1, 2, 2, 2\)"):
        kernels.pool2d_backward(saved._replace(argmax=saved.argmax.astype(np.int32)), y)
    with pytest.raises(ValueError, match=r"scale: expected a pair \(h, w\) of integers >= 1, got \(0, 2\)"):
        kernels.upsample2d_forward(x, (0, 2), "nearest")
    with pytest.raises(ValueError, match=r"mode: expected one of \['nearest', 'bilinear'\], got 'area'"):
        kernels.upsample2d_forward(x, (2, 2), "area")
    with pytest.raises(ValueError, match=r"x: expected H >= 1 and W >= 1, got H=0, W=4"):
        kernels.upsample2d_forward(np.zeros((1, 0, 4, 2)), (2, 2), "nearest")
    y, saved = kernels.upsample2d_forward(x, (2, 1), "nearest")
    with pytest.raises(ValueError, match=r"dy: expected shape \(1, 8, 4, 2\) \(B, OH, OW, C\), got \(1, 4, 4, 2\)"):
        kernels.upsample2d_backward(saved, x)
    with pytest.raises(TypeError, match=r"saved: expected an Upsample2DSaved from upsample2d_forward, got Pool2DSaved"):
        kernels.upsample2d_backward(kernels.pool2d_forward("avg", x, (2, 2), (2, 2), (0, 0), (1, 1), False, True)[1], y)


# --------------------------------------------------- the Protocol and the Numba flags
def _parameters(fn, drop_self=False):
    return [(p.name, p.kind, p.default) for p in list(inspect.signature(fn).parameters.values())[int(drop_self):]]


def test_the_protocol_names_the_family():
    names = sorted(n for n, v in vars(contract.Pool2DBackend).items() if callable(v) and not n.startswith("_"))
    assert names == POOL_MEMBERS


@pytest.mark.parametrize("module", ["pyrnn.backends.pool2d_reference", "pyrnn.backends.pool2d_numba"]
                         + [f"backend:{b}" for b in BACKENDS])
def test_modules_conform_to_the_pool2d_protocol(module):
    mod = backend_module(module.split(":")[1]) if module.startswith("backend:") else __import__(module, fromlist=["_"])
    assert isinstance(mod, contract.Pool2DBackend)
    for member in POOL_MEMBERS:
        assert _parameters(getattr(mod, member)) == _parameters(getattr(contract.Pool2DBackend, member), True), member


def test_cpp_backend_uses_its_own_kernels():
    if "cpp" not in BACKENDS:  # pragma: no cover - a plain install builds it
        pytest.skip("the cpp backend is not built")
    from pyrnn.backends import pool2d_cpp

    assert isinstance(pool2d_cpp, contract.Pool2DBackend)
    for member in POOL_MEMBERS:
        assert getattr(backend_module("cpp"), member) is getattr(pool2d_cpp, member)
        assert _parameters(getattr(pool2d_cpp, member)) == _parameters(getattr(contract.Pool2DBackend, member), True)


def test_cpp_bindings_check_their_arrays():
    """The compiled functions refuse what would read or write out of bounds, whatever the Python side passed."""
    if "cpp" not in BACKENDS:  # pragma: no cover - a plain install builds it
        pytest.skip("the cpp backend is not built")
    from pyrnn import _C

    x = np.zeros((1, 4, 4, 2))
    y, arg = np.zeros((1, 2, 2, 2)), np.zeros((1, 2, 2, 2), np.int64)
    geom = ((2, 2), (2, 2), (0, 0), (1, 1))
    _C.pool2d_forward("max", x, y, arg, None, None, *geom)
    with pytest.raises(ValueError, match=r"arg: expected shape \(1, 2, 2, 2\), got \(1, 2, 2, 1\)"):
        _C.pool2d_forward("max", x, y, np.zeros((1, 2, 2, 1), np.int64), None, None, *geom)
    with pytest.raises(TypeError, match=r"y: expected dtype float64, got float32"):
        _C.pool2d_forward("max", x, y.astype(np.float32), arg, None, None, *geom)
    with pytest.raises(ValueError, match=r"div_h: expected shape \(2,\), got \(3,\)"):
        _C.pool2d_forward("avg", x, y, None, np.ones(3, np.int64), np.ones(2, np.int64), *geom)
    with pytest.raises(ValueError, match=r"kind: expected 'max' or 'avg', got 'sum'"):
        _C.pool2d_forward("sum", x, y, arg, None, None, *geom)
    with pytest.raises(TypeError, match=r"stride: expected a tuple \(h, w\), got list"):
        _C.pool2d_forward("max", x, y, arg, None, None, (2, 2), [2, 2], (0, 0), (1, 1))
    with pytest.raises(ValueError, match=r"dx: expected a C-contiguous array"):
        _C.pool2d_backward("max", y, arg, None, None, np.zeros((1, 4, 8, 2))[:, :, ::2], *geom)
    axes = tuple(a for axis in (pool2d_ref_axis(4), pool2d_ref_axis(4)) for a in axis)
    _C.upsample2d_forward("bilinear", x, np.zeros((1, 8, 8, 2)), axes)
    bad = (np.full(8, 4, np.int64),) + axes[1:]
    with pytest.raises(ValueError, match=r"axes \(h\) indices: expected values in \[0, 4\), got 4, 1 at 0"):
        _C.upsample2d_forward("bilinear", x, np.zeros((1, 8, 8, 2)), bad)
    with pytest.raises(ValueError, match=r"axes: expected a tuple of 8 arrays, got 7"):
        _C.upsample2d_backward("nearest", np.zeros((1, 8, 8, 2)), x, axes[:7])


def pool2d_ref_axis(L, scale=2):
    i0, i1, l0, l1 = ref.upsample_axis(L, scale, "bilinear")
    return i0.astype(np.int64), i1.astype(np.int64), l0, l1


def test_numba_kernels_take_their_flags_from_one_place():
    pytest.importorskip("numba")
    from pyrnn.backends import pool2d_numba

    source = inspect.getsource(pool2d_numba)
    jitted = re.findall(r"@numba\.(\w+)\(([^)]*)\)", source)
    assert len(jitted) >= 8 and all(kind == "njit" and args == "**JIT" for kind, args in jitted), jitted
    assert "numba.prange" not in source and "set_num_threads(" not in source


# --------------------------------------- the C++ kernels: every ISA, the team, cancellation
requires_cpp = pytest.mark.skipif("cpp" not in BACKENDS, reason="the cpp backend is not built")
TEAM_CASES = POOL_CASES[::2]  # 8 max, 8 avg: padding, dilation, ceil_mode, overlapping windows


def _cpp_pool_and_upsample(x, dy_seed):
    """Every cpp kernel of the family on x: {name: output}, for the pools and the upsamplings."""
    cpp = backend_module("cpp")
    out = {}
    for kind, geom in (("max", ((3, 2), (2, 1), (1, 1), (1, 2), True, True)), ("avg", ((2, 3), (1, 2), (1, 0), (1, 1),
                                                                                          False, False)),
                       ("global", ((x.shape[1], x.shape[2]), (x.shape[1], x.shape[2]), (0, 0), (1, 1), False, True))):
        y, saved, _, dx = _pool_run(cpp, "avg" if kind == "global" else kind, x, np.random.default_rng(dy_seed), geom)
        out |= {f"{kind} y": y, f"{kind} dx": dx} | ({"max arg": saved.argmax} if kind == "max" else {})
    for mode in ("nearest", "bilinear"):
        y, saved = cpp.upsample2d_forward(x, (2, 3), mode)
        out |= {f"{mode} y": y, f"{mode} dx": cpp.upsample2d_backward(saved, np.random.default_rng(dy_seed).standard_normal(
            y.shape).astype(x.dtype))}
    return out


@requires_cpp
@pytest.mark.parametrize("threads", [1, 2], ids=["1thread", "team"])
@pytest.mark.parametrize("isa", cpp_isas())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind,case", TEAM_CASES, ids=[f"{k}-{c}" for k, c in TEAM_CASES])
def test_cpp_every_isa_and_the_team_match_the_reference(kind, case, dtype, isa, threads):
    """The team splits even these small problems (min_flops 0), in every instruction set of this CPU."""
    shape, k, s, p, d, ceil_mode, cip = case
    geom = (k, s, p, d, ceil_mode, cip)
    x = np.random.default_rng(5).standard_normal(shape).astype(dtype)
    with cpp_team(threads, isa):
        y, saved, _, dx = _pool_run(backend_module("cpp"), kind, x, np.random.default_rng(6), geom)
    want_y, want_saved, _, want_dx = _pool_run(ref, kind, x, np.random.default_rng(6), geom)
    _close(y, want_y, dtype, "y")
    _close(dx, want_dx, dtype, "dx")
    if kind == "max":
        np.testing.assert_array_equal(saved.argmax, want_saved.argmax)


# the channel counts the C++ loops unroll for (csrc/pool2d/lines.inc with_channels), counts beside them
# (the runtime loop), both sides of the AVX-512 max forward's one-vector limit (16 float32 lanes under a
# mask) and more than one 64-channel argmax block
SPECIALISED_CHANNELS = [1, 2, 3, 4, 5, 6, 7, 8, 12, 15, 16, 17, 70]


@requires_cpp
@pytest.mark.parametrize("isa", cpp_isas())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("C", SPECIALISED_CHANNELS)
def test_cpp_pooling_of_every_specialised_channel_count_matches_the_reference(C, dtype, isa):
    """Overlapping and padded windows, ties (first maximum wins) and NaN (first NaN wins) in every lane."""
    rng = np.random.default_rng(C)
    x = rng.integers(-3, 4, size=(2, 7, 6, C)).astype(dtype)  # few values: ties in most windows
    x[rng.random(x.shape) < 0.05] = np.nan
    for kind, geom in (("max", ((2, 2), (2, 2), (0, 0), (1, 1), False, True)),
                       ("max", ((3, 2), (2, 1), (1, 1), (1, 2), True, True)),
                       ("avg", ((2, 2), (2, 2), (0, 0), (1, 1), False, True)),
                       ("avg", ((3, 3), (2, 1), (1, 1), (1, 1), True, False))):
        with cpp_team(1, isa):
            y, saved, _, dx = _pool_run(backend_module("cpp"), kind, x, np.random.default_rng(6), geom)
        want_y, want_saved, _, want_dx = _pool_run(ref, kind, x, np.random.default_rng(6), geom)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(want_y), err_msg=f"{kind} {geom} NaN")
        _close(np.nan_to_num(y), np.nan_to_num(want_y), dtype, f"{kind} {geom} y")
        _close(np.nan_to_num(dx), np.nan_to_num(want_dx), dtype, f"{kind} {geom} dx")
        if kind == "max":
            np.testing.assert_array_equal(saved.argmax, want_saved.argmax, err_msg=f"{geom} argmax")


@requires_cpp
@pytest.mark.parametrize("isa", cpp_isas())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("C", SPECIALISED_CHANNELS)
def test_cpp_average_pooling_of_tiling_windows_matches_the_reference(C, dtype, isa):
    """Windows that tile x (kernel = stride, no padding: csrc/pool2d/lines.inc runs whole registers over the
    channels, a pixel's register spilling into the next pixels, the last pixels of a line scalar): lines of 1 to 8
    windows, so every line has both parts or only the scalar one; divisors a power of two (a multiply) or not."""
    rng = np.random.default_rng(100 + C)
    for k in ((2, 2), (3, 2), (1, 3), (2, 1)):
        for ow in (1, 2, 3, 5, 8):
            x = rng.standard_normal((2, 2 * k[0], ow * k[1], C)).astype(dtype)
            geom = (k, k, (0, 0), (1, 1), False, True)
            with cpp_team(2, isa):
                y, saved, _, dx = _pool_run(backend_module("cpp"), "avg", x, np.random.default_rng(6), geom)
            want_y, _, _, want_dx = _pool_run(ref, "avg", x, np.random.default_rng(6), geom)
            _close(y, want_y, dtype, f"{k} OW={ow} y")
            _close(dx, want_dx, dtype, f"{k} OW={ow} dx")


@requires_cpp
@pytest.mark.parametrize("isa", cpp_isas())
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cpp_upsample_in_every_isa_and_the_team_matches_the_reference(dtype, mode, isa):
    x = np.random.default_rng(7).standard_normal((3, 5, 4, 6)).astype(dtype)
    dy = np.random.default_rng(8).standard_normal((3, 15, 8, 6)).astype(dtype)
    want_y, want_saved = ref.upsample2d_forward(x, (3, 2), mode)
    want_dx = ref.upsample2d_backward(want_saved, dy)
    for threads in (1, 2):
        with cpp_team(threads, isa):
            y, saved = backend_module("cpp").upsample2d_forward(x, (3, 2), mode)
            _close(y, want_y, dtype, f"y {threads}")
            _close(backend_module("cpp").upsample2d_backward(saved, dy), want_dx, dtype, f"dx {threads}")


@requires_cpp
def test_cpp_results_do_not_depend_on_the_team():
    """Every output element is computed by one thread with the same loop: the team changes no bit."""
    x = np.random.default_rng(9).standard_normal((5, 9, 11, 7)).astype(np.float32)
    with cpp_team(1):
        alone = _cpp_pool_and_upsample(x, 10)
    with cpp_team(2):
        team = _cpp_pool_and_upsample(x, 10)
    for name in alone:
        np.testing.assert_array_equal(team[name], alone[name], err_msg=name)


@requires_cpp
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cpp_team_above_the_default_threshold_matches_the_reference(dtype):
    """Shapes of the vision models, large enough for the team at the default threshold, on 2 threads."""
    rng = np.random.default_rng(11)
    cpp = backend_module("cpp")
    problems = [("max", rng.standard_normal((8, 28, 28, 32)), ((2, 2), (2, 2), (0, 0), (1, 1), False, True)),
                ("avg", rng.standard_normal((16, 8, 8, 256)), ((8, 8), (8, 8), (0, 0), (1, 1), False, True)),  # global
                ("avg", rng.standard_normal((4, 20, 20, 32)), ((3, 3), (2, 2), (1, 1), (1, 1), True, False))]
    with cpp_team(2, min_flops=None):
        for kind, x, geom in problems:
            x = x.astype(dtype)
            y, saved, _, dx = _pool_run(cpp, kind, x, np.random.default_rng(12), geom)
            want_y, want_saved, _, want_dx = _pool_run(ref, kind, x, np.random.default_rng(12), geom)
            _close(y, want_y, dtype, f"{kind} y")
            _close(dx, want_dx, dtype, f"{kind} dx")
        x = rng.standard_normal((4, 16, 16, 32)).astype(dtype)
        y, saved = cpp.upsample2d_forward(x, (2, 2), "bilinear")
        dy = rng.standard_normal(y.shape).astype(dtype)
        want_y, want_saved = ref.upsample2d_forward(x, (2, 2), "bilinear")
        _close(y, want_y, dtype, "upsample y")
        _close(cpp.upsample2d_backward(saved, dy), ref.upsample2d_backward(want_saved, dy), dtype, "upsample dx")


@requires_cpp
@pytest.mark.parametrize("threads", [1, 2], ids=["1thread", "team"])
def test_cpp_interrupted_kernels_raise_and_stay_usable(threads):
    """Ctrl-C landing at the first poll of a kernel (simulated: _C._interrupt_next_kernel; the leader polls before
    any chunk) or, on one thread, at the second (after a chunk) raises KeyboardInterrupt out of it; the kernels
    give their results afterwards, and a countdown longer than the kernel's polls interrupts nothing (and is
    gone after that call)."""
    from pyrnn import _C

    x = np.random.default_rng(13).standard_normal((4, 64, 64, 32)).astype(np.float32)  # several chunks a member
    with cpp_team(threads, min_flops=None):
        want = _cpp_pool_and_upsample(x, 14)
        cpp = backend_module("cpp")
        y, saved = cpp.pool2d_forward("max", x, (2, 2), (2, 2), (0, 0), (1, 1), False, True)
        y_up, saved_up = cpp.upsample2d_forward(x, (2, 2), "bilinear")
        calls = [lambda: cpp.pool2d_forward("max", x, (2, 2), (2, 2), (0, 0), (1, 1), False, True),
                 lambda: cpp.pool2d_forward("avg", x, (3, 3), (1, 1), (1, 1), (1, 1), False, True),
                 lambda: cpp.pool2d_backward(saved, y), lambda: cpp.upsample2d_forward(x, (2, 2), "bilinear"),
                 lambda: cpp.upsample2d_backward(saved_up, y_up)]
        for call in calls:
            for polls in (1, 2) if threads == 1 else (1,):  # a team's leader may take no chunk
                _C._interrupt_next_kernel(polls)
                with pytest.raises(KeyboardInterrupt):
                    call()
        _C._interrupt_next_kernel(10**9)
        calls[0]()
        after = _cpp_pool_and_upsample(x, 14)
    for name in want:
        np.testing.assert_array_equal(after[name], want[name], err_msg=name)


@requires_cpp
def test_cpp_optional_and_fixed_team_regions_alternate_safely():
    """Tiny pools on a team (their regions let off a worker that has not started by the time the caller is
    done: on tiny shapes, often) between convolutions (whose regions wait for every member), many times:
    every result stays the one-thread result and nothing hangs."""
    cpp = backend_module("cpp")
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 6, 5, 3))
    w = rng.standard_normal((4, 3, 3, 3))
    conv_geom = ((1, 1), (1, 1, 1, 1), (1, 1), 1)
    with cpp_team(1):
        want_pool = cpp.pool2d_forward("max", x, (2, 2), (1, 1), (0, 0), (1, 1), False, True)[0]
        want_conv = cpp.conv2d_forward(x, w, None, *conv_geom)[0]
    with cpp_team(2):
        for _ in range(300):
            np.testing.assert_array_equal(cpp.pool2d_forward("max", x, (2, 2), (1, 1), (0, 0), (1, 1), False, True)[0],
                                          want_pool)
            np.testing.assert_array_equal(cpp.conv2d_forward(x, w, None, *conv_geom)[0], want_conv)
