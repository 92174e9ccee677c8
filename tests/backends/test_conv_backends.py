"""The conv family's kernels: the reference by finite differences (float64), every fast backend
against the reference, empty sizes, the contract's argument checks, and the C++ bindings' own checks.

Legend: B = batch, T = time, C = input channels, O = output channels, K = kernel size,
s = stride, d = dilation, pl/pr = padding left/right.
"""

import zlib

import numpy as np
import pytest

import pyrnn
from pyrnn.backends import backend_module
from pyrnn.backends import conv_reference as ref

from gradcheck import assert_grad_close

FAST = [b for b in ("cpp", "numba") if b in pyrnn.available_backends()]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}

# (B, T, C, O, K, s, pl, pr, d, bias)
CONV_CASES = [
    (2, 7, 3, 4, 3, 1, 0, 0, 1, True),
    (2, 9, 2, 3, 3, 2, 1, 2, 2, True),
    (1, 6, 3, 2, 2, 3, 0, 1, 1, False),
    (3, 5, 1, 1, 1, 1, 0, 0, 1, True),
    (2, 4, 2, 3, 4, 1, 3, 0, 1, False),  # causal-like: left padding only
    (1, 3, 2, 2, 2, 2, 2, 2, 3, True),  # windows lying mostly in the padding
]
# (B, T, C, K, s, pl, pr)
POOL_CASES = [(2, 9, 3, 3, 2, 1, 1), (1, 5, 2, 2, 2, 0, 0), (2, 6, 1, 4, 1, 2, 1), (1, 1, 1, 1, 1, 0, 0)]


def _conv_ids(c):
    return "B{}T{}C{}O{}K{}s{}p{}-{}d{}".format(*c[:9]) + ("" if c[9] else "-nobias")


def _conv_problem(case, dtype, rng):
    B, T, C, O, K, s, pl, pr, d, bias = case
    x = rng.standard_normal((B, T, C)).astype(dtype)
    w = rng.standard_normal((O, C, K)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype) if bias else None
    U = ref.output_length(T, K, s, pl, pr, d)
    dy = rng.standard_normal((B, U, O)).astype(dtype)
    return x, w, b, dy, (s, pl, pr, d)


def _conv_run(kernels, x, w, b, dy, geom):
    y = kernels.conv1d_forward(x, w, b, *geom)
    dw = np.full(w.shape, 0.5, w.dtype)  # not zero: the kernels must ADD into dw and db
    db = None if b is None else np.full(b.shape, 0.25, b.dtype)
    dx = kernels.conv1d_backward(x, w, dy, *geom, dw, db)
    return {"y": y, "dx": dx, "dw": dw} | ({} if db is None else {"db": db})


def _pool_run(kernels, kind, x, dy, geom):
    y, saved = kernels.pool1d_forward(kind, x, *geom)
    dx = kernels.pool1d_backward(kind, x.shape, dy, saved, *geom)
    return {"y": y, "dx": dx} | ({} if saved is None else {"argmax": saved})


def _close(got, want, dtype, name):
    assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, got.shape, want.shape)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale, err_msg=name)


# --------------------------------------------------- reference vs finite differences
@pytest.mark.parametrize("case", CONV_CASES, ids=_conv_ids)
def test_reference_conv_gradients_match_finite_differences(case):
    x, w, b, dy, geom = _conv_problem(case, np.float64, np.random.default_rng(zlib.crc32(str(case).encode())))
    out = _conv_run(ref, x, w, b, dy, geom)
    loss = lambda: float(np.sum(ref.conv1d_forward(x, w, b, *geom) * dy))  # noqa: E731
    assert_grad_close(out["dx"], loss, x, "dx")
    assert_grad_close(out["dw"] - 0.5, loss, w, "dw")  # added into 0.5
    if b is not None:
        assert_grad_close(out["db"] - 0.25, loss, b, "db")


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "B{}T{}C{}K{}s{}p{}-{}".format(*c))
def test_reference_pool_gradients_match_finite_differences(kind, case):
    B, T, C, K, s, pl, pr = case
    rng = np.random.default_rng(zlib.crc32(f"{kind}{case}".encode()))
    x = rng.permutation(B * T * C).reshape(B, T, C) / 7.0  # distinct values: no tie within eps
    U = ref.output_length(T, K, s, pl, pr)
    dy = rng.standard_normal((B, U, C))
    y, saved = ref.pool1d_forward(kind, x, K, s, pl, pr)
    dx = ref.pool1d_backward(kind, x.shape, dy, saved, K, s, pl, pr)
    assert_grad_close(dx, lambda: float(np.sum(ref.pool1d_forward(kind, x, K, s, pl, pr)[0] * dy)), x, f"{kind} dx")


def test_reference_pool_semantics_on_a_worked_example():
    """Hand-computed: x = [1, 5, 2, -1, 3], K = 2, s = 2, padding 1 on both sides."""
    x = np.array([1.0, 5, 2, -1, 3]).reshape(1, 5, 1)
    y, arg = ref.pool1d_forward("max", x, 2, 2, 1, 1)  # windows [pad, 1], [5, 2], [-1, 3]
    assert y.ravel().tolist() == [1.0, 5.0, 3.0] and arg.ravel().tolist() == [0, 1, 4]
    y, _ = ref.pool1d_forward("avg", x, 2, 2, 1, 1)
    assert y.ravel().tolist() == [0.5, 3.5, 1.0]  # the padding counts in the divisor
    dx = ref.pool1d_backward("avg", x.shape, np.ones((1, 3, 1)), None, 2, 2, 1, 1)
    assert dx.ravel().tolist() == [0.5] * 5


# --------------------------------------------------- fast backends vs the reference
EDGE_CONV = [  # B = 1, T = K, C = 1, O = 1, K = 1, and im2col chunked over samples (last case)
    (1, 3, 1, 1, 3, 1, 0, 0, 1, True),
    (1, 1, 1, 1, 1, 1, 0, 0, 1, False),
    (4, 5, 1, 6, 5, 1, 0, 0, 1, True),
    (2, 6, 5, 1, 1, 2, 0, 0, 1, True),
]
CHUNKED = (3, 1000, 100, 8, 4, 1, 2, 1, 1, True)  # B*U*C*K > 2**20: im2col runs in chunks of samples


def _random_conv_cases(n=8):
    rng = np.random.default_rng(7)
    for k in range(n):
        K, d = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        pl, pr = int(rng.integers(0, 4)), int(rng.integers(0, 4))
        T = max(1, d * (K - 1) + 1 - pl - pr + int(rng.integers(0, 9)))
        yield (int(rng.integers(1, 5)), T, int(rng.integers(1, 7)), int(rng.integers(1, 7)), K,
               int(rng.integers(1, 4)), pl, pr, d, bool(k % 3))


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype,case", [(dt, c) for dt in (np.float64, np.float32) for c in list(_random_conv_cases()) + EDGE_CONV]
                         + [(np.float64, CHUNKED)], ids=lambda p: np.dtype(p).name if isinstance(p, type) else _conv_ids(p))
def test_conv_backend_matches_reference(backend, dtype, case):
    x, w, b, dy, geom = _conv_problem(case, dtype, np.random.default_rng(zlib.crc32(f"{backend}{case}".encode())))
    want = _conv_run(ref, x, w, b, dy, geom)
    got = _conv_run(backend_module(backend), x, w, b, dy, geom)
    assert got.keys() == want.keys()
    for name in want:
        _close(got[name], want[name], dtype, f"{backend} {name}")


def _random_pool_cases(n=6):
    rng = np.random.default_rng(8)
    for _ in range(n):
        K = int(rng.integers(1, 6))
        pl, pr = int(rng.integers(0, K // 2 + 1)), int(rng.integers(0, K // 2 + 1))
        yield (int(rng.integers(1, 4)), max(1, K - pl - pr + int(rng.integers(0, 9))), int(rng.integers(1, 6)), K,
               int(rng.integers(1, 4)), pl, pr)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", list(_random_pool_cases()) + POOL_CASES, ids=lambda c: "B{}T{}C{}K{}s{}p{}-{}".format(*c))
def test_pool_backend_matches_reference(backend, dtype, kind, case):
    B, T, C, K, s, pl, pr = case
    rng = np.random.default_rng(zlib.crc32(f"{backend}{kind}{case}".encode()))
    x = rng.standard_normal((B, T, C)).astype(dtype)
    dy = rng.standard_normal((B, ref.output_length(T, K, s, pl, pr), C)).astype(dtype)
    want = _pool_run(ref, kind, x, dy, (K, s, pl, pr))
    got = _pool_run(backend_module(backend), kind, x, dy, (K, s, pl, pr))
    assert got.keys() == want.keys()
    for name in want:
        if name == "argmax":
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{backend} argmax")
        else:
            _close(got[name], want[name], dtype, f"{backend} {name}")


@pytest.mark.parametrize("backend", FAST + ["numpy"])
def test_max_pool_ties_nan_and_all_padding_windows(backend):
    """The first maximum wins ties (also -inf against the padding), the first NaN wins and
    propagates; a window wholly in the padding gives -inf and sends no gradient anywhere."""
    nan, inf = np.nan, np.inf
    x = np.array([[2, nan], [2, nan], [-inf, 3], [-inf, nan], [1, nan], [5, 0]]).reshape(1, 6, 2)
    geom = (2, 2, 0, 2)  # K = 2, s = 2, pl = 0, pr = 2: windows [0, 1], [2, 3], [4, 5], [6, 7] (all padding)
    dy = np.arange(1.0, 9.0).reshape(1, 4, 2)
    got = _pool_run(backend_module(backend), "max", x, dy, geom)
    assert got["argmax"][0].T.tolist() == [[0, 2, 5, 6], [0, 3, 4, 6]]
    np.testing.assert_array_equal(got["y"][0].T, [[2, -inf, 5, -inf], [nan, nan, nan, -inf]])
    np.testing.assert_array_equal(got["dx"][0].T, [[1, 0, 3, 0, 0, 5], [2, 0, 0, 4, 6, 0]])


@pytest.mark.parametrize("backend", FAST + ["numpy"])
@pytest.mark.parametrize("B,C,O", [(0, 3, 2), (2, 0, 2), (2, 3, 0)])
def test_empty_sizes(backend, B, C, O):
    kernels = backend_module(backend)
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((B, 6, C)), rng.standard_normal((O, C, 3)), rng.standard_normal(O)
    dy = rng.standard_normal((B, 4, O))
    out = _conv_run(kernels, x, w, b, dy, (1, 0, 0, 1))
    assert out["y"].shape == (B, 4, O) and out["dx"].shape == (B, 6, C) and out["dw"].shape == (O, C, 3)
    np.testing.assert_allclose(out["y"], np.broadcast_to(b, (B, 4, O)))  # C = 0: only the bias remains
    np.testing.assert_allclose(out["db"], 0.25 + dy.sum(axis=(0, 1)))
    np.testing.assert_array_equal(out["dw"], 0.5)  # no sample or no channel: nothing added
    if O == 0:
        assert not out["dx"].any()
    for kind in ("max", "avg"):
        p = _pool_run(kernels, kind, x, rng.standard_normal((B, 3, C)), (2, 2, 0, 0))
        assert p["y"].shape == (B, 3, C) and p["dx"].shape == (B, 6, C)


@pytest.mark.skipif("cpp" not in FAST, reason="the cpp backend is not built")
def test_cpp_loop_gemm_fallback_matches_reference():
    from pyrnn import _C
    from pyrnn.backends import cpp

    x, w, b, dy, geom = _conv_problem(CONV_CASES[1], np.float64, np.random.default_rng(3))
    want = _conv_run(ref, x, w, b, dy, geom)
    _C.set_blas(None, None)
    try:
        got = _conv_run(cpp, x, w, b, dy, geom)
    finally:
        cpp.register_blas()
    for name in want:
        _close(got[name], want[name], np.float64, name)


# --------------------------------------------------- the contract's checks, every backend
@pytest.mark.parametrize("backend", FAST + ["numpy"])
def test_contract_checks_run_before_any_kernel(backend):
    k = backend_module(backend)
    x, w = np.zeros((2, 5, 3)), np.zeros((4, 3, 2))
    with pytest.raises(ValueError, match=r"w: expected shape \(4, 3, 2\) \(C_out, C_in, K\), got \(4, 2, 2\)"):
        k.conv1d_forward(x, np.zeros((4, 2, 2)), None, 1, 0, 0, 1)
    with pytest.raises(TypeError, match=r"w: expected dtype float64, got float32"):
        k.conv1d_forward(x, w.astype(np.float32), None, 1, 0, 0, 1)
    with pytest.raises(ValueError, match=r"expected T \+ pad_left \+ pad_right >= dilation\*\(kernel-1\) \+ 1 = 7 "
                                         r"\(T=5, kernel=2, dilation=6"):
        k.conv1d_forward(x, w, None, 1, 0, 0, 6)
    with pytest.raises(ValueError, match=r"stride: expected an integer >= 1, got 0"):
        k.conv1d_forward(x, w, None, 0, 0, 0, 1)
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 4, 4\) \(B, T_out, C_out\), got \(2, 5, 4\)"):
        k.conv1d_backward(x, w, np.zeros((2, 5, 4)), 1, 0, 0, 1, np.zeros_like(w), None)
    with pytest.raises(ValueError, match=r"db: expected shape \(4,\) \(C_out,\), got \(3,\)"):
        k.conv1d_backward(x, w, np.zeros((2, 4, 4)), 1, 0, 0, 1, np.zeros_like(w), np.zeros(3))
    with pytest.raises(ValueError, match=r"kind: expected 'max' or 'avg', got 'min'"):
        k.pool1d_forward("min", x, 2, 2, 0, 0)
    with pytest.raises(TypeError, match=r"saved: expected dtype int64, got float64"):
        k.pool1d_backward("max", x.shape, np.zeros((2, 2, 3)), np.zeros((2, 2, 3)), 2, 2, 0, 0)
    with pytest.raises(TypeError, match=r"x: expected dtype float32 or float64, got int64"):
        k.pool1d_forward("avg", np.zeros((2, 5, 3), np.int64), 2, 2, 0, 0)


# --------------------------------------------------- the C++ bindings check everything themselves
def _ro(a):
    a.setflags(write=False)
    return a


@pytest.mark.skipif("cpp" not in FAST, reason="the cpp backend is not built")
def test_cpp_pool1d_refuses_bad_arguments():
    """(Conv1D has no binding of its own: it runs on conv2d_*, whose binding tests are in test_conv2d_backends.)"""
    from pyrnn import _C

    z = lambda *s: np.zeros(s)  # noqa: E731
    x = z(2, 6, 3)
    y, arg = z(2, 3, 3), np.zeros((2, 3, 3), np.int64)
    _C.pool1d_forward("max", x, y, arg, 2, 2, 0, 0)
    _C.pool1d_forward("avg", x, y, None, 2, 2, 0, 0)
    _C.pool1d_backward("max", y, arg, z(2, 6, 3), 2, 2, 0, 0)
    for call, exc, pattern in [
        (lambda: _C.pool1d_forward("sum", x, y, arg, 2, 2, 0, 0), ValueError, r"kind: expected 'max' or 'avg', got 'sum'"),
        (lambda: _C.pool1d_forward(None, x, y, arg, 2, 2, 0, 0), ValueError, r"kind: expected 'max' or 'avg', got None"),
        (lambda: _C.pool1d_forward("max", x, y, None, 2, 2, 0, 0), TypeError, r"arg: expected a numpy.ndarray, got NoneType"),
        (lambda: _C.pool1d_forward("max", x, y, arg.astype(np.int32), 2, 2, 0, 0), TypeError, r"arg: expected dtype int64, got int32"),
        (lambda: _C.pool1d_forward("max", x, y, arg[:, :2], 2, 2, 0, 0), ValueError, r"arg: expected shape \(2, 3, 3\), got \(2, 2, 3\)"),
        (lambda: _C.pool1d_forward("avg", x, z(2, 2, 3), None, 2, 2, 0, 0), ValueError, r"y: expected shape \(2, 3, 3\), got \(2, 2, 3\)"),
        (lambda: _C.pool1d_forward("avg", x, y, None, 0, 2, 0, 0), ValueError, r"kernel: expected an integer >= 1"),
        (lambda: _C.pool1d_forward("avg", x, y, None, 7, 1, 0, 0), ValueError, r"\(T=6, kernel=7, dilation=1\), got an output length of 0"),
        (lambda: _C.pool1d_backward("max", y, _ro(arg.copy()), _ro(z(2, 6, 3)), 2, 2, 0, 0), ValueError, r"dx: expected a writable array"),
        (lambda: _C.pool1d_backward("avg", y.astype(np.float32), None, z(2, 6, 3), 2, 2, 0, 0), TypeError, r"dx: expected dtype float32, got float64"),
        (lambda: _C.pool1d_backward("avg", y, None, z(2, 6), 2, 2, 0, 0), ValueError, r"dx: expected a 3-D array \(B, T, C\), got shape \(2, 6\)"),
        (lambda: _C.pool1d_backward("avg", None, None, z(2, 6, 3), 2, 2, 0, 0), TypeError, r"dy: expected a numpy.ndarray, got NoneType"),
    ]:
        with pytest.raises(exc, match=pattern):
            call()
