"""The elementwise activation kernels (ReLU, LeakyReLU, Tanh, Sigmoid): the reference by finite differences
(float64), every fast backend against the reference (float64 to a few ulp; float32 within the rational tanh's
3.6e-7 and the polynomial exp's few ulp), on every instruction set and on the thread team, NaN and inf, odd and
empty sizes, non-contiguous input through the layers, saved state any backend's backward takes, the contract's
and the bindings' checks, Ctrl-C, PyTorch parity.

Legend: x = input, y = output, dy = dL/dy, dx = dL/dx, s = LeakyReLU's negative slope.
"""

import numpy as np
import pytest

import pyrnn
from pyrnn.backends import activation_reference as ref
from pyrnn.backends import backend_module
from pyrnn.grad_mode import no_grad
from pyrnn.layers.activations import LeakyReLU, ReLU, Sigmoid, Tanh

from gradcheck import assert_grad_close
from helpers import cpp_isas, cpp_team

BACKENDS = pyrnn.available_backends()
FAST = [b for b in BACKENDS if b != "numpy"]
requires_cpp = pytest.mark.skipif("cpp" not in BACKENDS, reason="the cpp backend is not built")
# (kind, negative_slope)
CASES = [("relu", 0.0), ("leaky_relu", 0.01), ("leaky_relu", -0.3), ("tanh", 0.0), ("sigmoid", 0.0)]
CASE_IDS = [f"{k}{'' if k != 'leaky_relu' else s}" for k, s in CASES]
LAYERS = {"relu": lambda s: ReLU(), "leaky_relu": LeakyReLU, "tanh": lambda s: Tanh(), "sigmoid": lambda s: Sigmoid()}
SIZES = [(), (0,), (1,), (17,), (3, 0, 2), (5, 7, 3), (1001,), (2, 16411)]  # 16411: a chunk (2^14) and a tail


def _x(shape, dtype, seed=0, scale=4.0):
    """Normal values (times `scale`) at least 1e-3 away from 0, the kink of ReLU and LeakyReLU."""
    x = np.array(scale * np.random.default_rng(seed).standard_normal(shape))
    x[np.abs(x) < 1e-3] = 0.5
    return np.asarray(x, dtype)


def _tol(kind, dtype):
    """(rtol, atol of y, atol of dx) of a fast backend against the reference, dx's in units of max |dy|."""
    if dtype == np.float64:
        return 1e-14, 1e-15, 1e-15
    if kind == "tanh":  # the rational tanh: |error| <= 3.6e-7 in y, so <= 7.2e-7 in 1 - y^2 (and dx / dy)
        return 1e-6, 4e-7, 8e-7
    return 1e-6, 1e-7, 1e-7  # sigmoid's exp: a few ulp; 1 - y^2 and y (1 - y) may round once less (FMA)


def _run(backend, kind, x, dy, s):
    kernels = backend_module(backend)
    y, saved = kernels.activation_forward(kind, x, s)
    return y, saved, kernels.activation_backward(kind, saved, dy, s)


def _assert_matches_reference(backend, kind, s, x, dy):
    y, saved, dx = _run(backend, kind, x, dy, s)
    y_ref, _, dx_ref = _run("numpy", kind, x, dy, s)
    rtol, atol_y, atol_dx = _tol(kind, x.dtype)
    scale = float(np.max(np.abs(dy))) if dy.size else 1.0
    for name, got, want, a in (("y", y, y_ref, atol_y), ("dx", dx, dx_ref, atol_dx * scale)):
        assert got.dtype == x.dtype and got.shape == x.shape, (name, got.dtype, got.shape)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=a, err_msg=f"{backend} {kind} {name}")
    assert y is not x and dx is not dy and (saved is x if kind == "leaky_relu" else saved is y)
    return y, dx


# --------------------------------------------------- reference vs finite differences
@pytest.mark.parametrize("kind, s", CASES, ids=CASE_IDS)
def test_reference_gradients_match_finite_differences(kind, s):
    x = _x((3, 4, 5), np.float64, seed=1, scale=2.0)
    dy = np.random.default_rng(2).standard_normal(x.shape)
    y, saved = ref.activation_forward(kind, x, s)
    dx = ref.activation_backward(kind, saved, dy, s)
    assert_grad_close(dx, lambda: float(np.sum(ref.activation_forward(kind, x, s)[0] * dy)), x, f"{kind} dx")


def test_reference_values_by_hand():
    x = np.array([-np.inf, -2.0, -0.0, 0.0, 0.5, np.inf, np.nan])
    relu, _ = ref.activation_forward("relu", x, 0.0)
    np.testing.assert_array_equal(relu, [0, 0, 0, 0, 0.5, np.inf, np.nan])
    leaky, _ = ref.activation_forward("leaky_relu", x, 0.1)
    np.testing.assert_array_equal(leaky, [-np.inf, -0.2, -0.0, 0, 0.5, np.inf, np.nan])
    np.testing.assert_array_equal(ref.activation_forward("tanh", x, 0.0)[0], [-1, np.tanh(-2), -0.0, 0, np.tanh(0.5), 1, np.nan])
    np.testing.assert_allclose(ref.activation_forward("sigmoid", x, 0.0)[0],
                               [0, 1 / (1 + np.exp(2)), 0.5, 0.5, 1 / (1 + np.exp(-0.5)), 1, np.nan], rtol=1e-15)
    # relu's backward is a select: 0 where y <= 0 even for an infinite dy, dy where y is NaN
    dy = np.array([np.inf, np.nan, 1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(ref.activation_backward("relu", relu, dy, 0.0), [0, 0, 0, 0, 3, 4, 5])


# --------------------------------------------------- every backend vs the reference
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SIZES, ids=str)
@pytest.mark.parametrize("kind, s", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("backend", FAST)
def test_fast_backends_match_the_reference(backend, kind, s, shape, dtype):
    x = _x(shape, dtype, seed=len(shape))
    dy = _x(shape, dtype, seed=7, scale=1.0)
    _assert_matches_reference(backend, kind, s, x, dy)


@requires_cpp
@pytest.mark.parametrize("isa", cpp_isas())
@pytest.mark.parametrize("threads", [1, 2], ids=["1thread", "team"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind, s", CASES, ids=CASE_IDS)
def test_cpp_every_isa_and_the_team_match_the_reference(kind, s, dtype, threads, isa):
    """Each instruction set's loops (their vector body and scalar tail: sizes off every lane count), on one
    thread and on the team (even on small shapes), and the same bits on any number of threads."""
    got = {}
    for n in (5, 33, 3 * 2**14 + 19):
        x, dy = _x((n,), dtype, seed=n), _x((n,), dtype, seed=n + 1, scale=1.0)
        with cpp_team(threads, isa=isa):
            got[n] = _assert_matches_reference("cpp", kind, s, x, dy)
        with cpp_team(1, isa=isa):
            once = _run("cpp", kind, x, dy, s)
        np.testing.assert_array_equal(got[n][0], once[0])
        np.testing.assert_array_equal(got[n][1], once[2])


@requires_cpp
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind, s", CASES, ids=CASE_IDS)
def test_cpp_large_arrays_on_the_default_team(kind, s, dtype):
    """3 x 2^18 values: past the size where the team starts (the default rule, 2 threads)."""
    x, dy = _x((3, 512, 512), dtype, seed=3), _x((3, 512, 512), dtype, seed=4, scale=1.0)
    with cpp_team(2, min_flops=None):
        _assert_matches_reference("cpp", kind, s, x, dy)


@requires_cpp
@pytest.mark.parametrize("isa", cpp_isas())
def test_cpp_float32_tanh_and_sigmoid_accuracy_on_a_dense_grid(isa):
    """Against float64 maths over [-120, 120] (both saturations, sigmoid's denormals): tanh within the rational's
    3.6e-7 (plus the rounding of its output), sigmoid within 4 ulp relative, and 1.5e-45 (one denormal) absolute."""
    x = np.linspace(-120, 120, 2_000_001, dtype=np.float32)
    x = np.concatenate([x, np.float32([1e-30, -1e-30, 1e-40, -1e-40, 20.0, -20.0, 88.7, -88.7, 103.9, -103.9])])
    x64 = x.astype(np.float64)
    with cpp_team(1, isa=isa):
        tanh = backend_module("cpp").activation_forward("tanh", x, 0.0)[0]
        sig = backend_module("cpp").activation_forward("sigmoid", x, 0.0)[0]
    assert np.max(np.abs(tanh - np.tanh(x64))) <= 3.6e-7 + 2**-25
    want = 1 / (1 + np.exp(-x64))
    np.testing.assert_allclose(sig, want, rtol=4 * 2**-24, atol=1.5e-45)
    assert np.all(sig[x < -104] == 0) and np.all(sig[x > 17] == 1)


# --------------------------------------------------- NaN, inf, signed zeros
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_and_inf(backend, dtype):
    x = np.array([-np.inf, -1e30, -0.0, 0.0, 1e30, np.inf, np.nan] * 3, dtype)  # past a 16-lane vector
    dy = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0] * 3, dtype)
    k = backend_module(backend)
    y, saved = k.activation_forward("relu", x, 0.0)
    np.testing.assert_array_equal(y, np.array([0, 0, 0, 0, 1e30, np.inf, np.nan] * 3, dtype))
    assert not np.any(np.signbit(y[2::7]))  # -0 gives +0, as NumPy's maximum (torch keeps -0)
    dx = k.activation_backward("relu", saved, np.full_like(dy, np.inf), 0.0)
    np.testing.assert_array_equal(dx, np.array([0, 0, 0, 0, np.inf, np.inf, np.inf] * 3, dtype))  # select, not product
    y, saved = k.activation_forward("leaky_relu", x, 0.5)
    np.testing.assert_array_equal(y, np.array([-np.inf, -5e29, -0.0, 0, 1e30, np.inf, np.nan] * 3, dtype))
    np.testing.assert_array_equal(k.activation_backward("leaky_relu", saved, dy, 0.5), np.where(x > 0, dy, 0.5 * dy))
    y, saved = k.activation_forward("tanh", x, 0.0)
    np.testing.assert_array_equal(y, np.array([-1, -1, -0.0, 0, 1, 1, np.nan] * 3, dtype))
    assert np.all(np.signbit(y[2::7]))
    dx = k.activation_backward("tanh", saved, dy, 0.0)
    np.testing.assert_array_equal(dx, np.where(np.isnan(x), np.nan, np.where(np.abs(x) > 1, 0, dy)))
    y, saved = k.activation_forward("sigmoid", x, 0.0)
    np.testing.assert_array_equal(y, np.array([0, 0, 0.5, 0.5, 1, 1, np.nan] * 3, dtype))
    dx = k.activation_backward("sigmoid", saved, dy, 0.0)
    np.testing.assert_array_equal(dx, np.where(np.isnan(x), np.nan, np.where(np.abs(x) > 1, 0, dy / 4)))


# --------------------------------------------------- through the layers
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind, s", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("backend", FAST)
def test_layers_on_non_contiguous_input(backend, kind, s, dtype):
    """A strided or transposed x (and dy) is copied to C order by the layer, never written."""
    base = _x((6, 9, 4), dtype, seed=5)
    for x in (base[:, ::2], base.transpose(2, 0, 1), base[::-1, :, 1]):
        before = base.copy()
        dy = _x(x.shape, dtype, seed=6, scale=1.0)[..., ::-1]
        out = {}
        for b in ("numpy", backend):
            layer = LAYERS[kind](s)
            with pyrnn.use_backend(b):
                y = layer.forward(x)
            out[b] = (y, layer.backward(dy))  # on the forward's backend, whatever is current now
        rtol, atol_y, atol_dx = _tol(kind, dtype)
        for got, want, atol in zip(out[backend], out["numpy"], (atol_y, atol_dx * float(np.max(np.abs(dy))))):
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
        np.testing.assert_array_equal(base, before)


@pytest.mark.parametrize("kind, s", CASES, ids=CASE_IDS)
def test_any_backend_backward_takes_any_backend_forward(kind, s):
    x, dy = _x((4, 5), np.float64, seed=8), _x((4, 5), np.float64, seed=9, scale=1.0)
    want = ref.activation_backward(kind, ref.activation_forward(kind, x, s)[1], dy, s)
    for a in BACKENDS:
        _, saved = backend_module(a).activation_forward(kind, x, s)
        for b in BACKENDS:
            np.testing.assert_allclose(backend_module(b).activation_backward(kind, saved, dy, s), want, rtol=1e-14,
                                       atol=1e-15, err_msg=f"{a} -> {b}")


@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-12, 1e-14), (np.float32, 2e-6, 1e-6)], ids=["f64", "f32"])
@pytest.mark.parametrize("kind, s", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_layers_match_torch_on_every_backend(backend, kind, s, dtype, rtol, atol):
    """Values and gradients, with NaN and inf in x and dy: torch's NaN semantics too."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    fns = {"relu": F.relu, "leaky_relu": lambda t: F.leaky_relu(t, s), "tanh": torch.tanh, "sigmoid": torch.sigmoid}
    x = _x((3, 41), dtype, seed=10)
    x[0, :4] = [np.nan, np.inf, -np.inf, -0.0]
    dy = _x(x.shape, dtype, seed=11, scale=1.0)
    dy[1, :3] = [np.inf, -np.inf, np.nan]
    layer = LAYERS[kind](s)
    with pyrnn.use_backend(backend):
        y = layer.forward(x)
        dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = fns[kind](tx)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=rtol, atol=atol, err_msg="y")
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=rtol, atol=atol, err_msg="dx")


# --------------------------------------------------- checks
@pytest.mark.parametrize("backend", BACKENDS)
def test_contract_checks_name_what_came(backend):
    k = backend_module(backend)
    x = np.ones((2, 3), np.float32)
    y, saved = k.activation_forward("tanh", x, 0.0)
    with pytest.raises(ValueError, match=r"kind: expected one of \['relu', 'leaky_relu', 'tanh', 'sigmoid'\], got 'gelu'"):
        k.activation_forward("gelu", x, 0.0)
    with pytest.raises(TypeError, match=r"x: expected a numpy.ndarray, got list"):
        k.activation_forward("relu", [1.0], 0.0)
    with pytest.raises(TypeError, match=r"x: expected dtype float32 or float64, got int64"):
        k.activation_forward("relu", np.ones(3, np.int64), 0.0)
    with pytest.raises(ValueError, match=r"x: expected a C-contiguous array"):
        k.activation_forward("relu", np.ones((3, 4))[:, ::2], 0.0)
    with pytest.raises(ValueError, match=r"negative_slope: expected a finite number, got nan"):
        k.activation_forward("leaky_relu", x, float("nan"))
    with pytest.raises(TypeError, match=r"dy: expected dtype float32, got float64"):
        k.activation_backward("tanh", saved, np.ones((2, 3)), 0.0)
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 3\) \(the shape of the forward's x\), got \(3, 2\)"):
        k.activation_backward("tanh", saved, np.ones((3, 2), np.float32), 0.0)
    with pytest.raises(TypeError, match=r"saved: expected the float32 or float64 array activation_forward saved, got tuple"):
        k.activation_backward("tanh", (saved,), y, 0.0)


@requires_cpp
def test_cpp_bindings_check_every_array():
    from pyrnn import _C

    x = np.ones((2, 3), np.float32)
    y = np.empty_like(x)
    cases = [
        (lambda: _C.activation_forward("elu", x, y, 0.0), ValueError,
         r"kind: expected 'relu', 'leaky_relu', 'tanh' or 'sigmoid', got 'elu'"),
        (lambda: _C.activation_forward(1, x, y, 0.0), ValueError, r"kind: expected .* got 1"),
        (lambda: _C.activation_forward("relu", x.astype(np.float16), y, 0.0), TypeError,
         r"x: expected dtype float32 or float64, got float16"),
        (lambda: _C.activation_forward("relu", x, np.empty((2, 3)), 0.0), TypeError, r"y: expected dtype float32, got float64"),
        (lambda: _C.activation_forward("relu", x, np.empty((3, 2), np.float32), 0.0), ValueError,
         r"y: expected shape \(2, 3\), got \(3, 2\)"),
        (lambda: _C.activation_forward("relu", np.ones((4, 3), np.float32)[::2], y, 0.0), ValueError,
         r"x: expected a C-contiguous array"),
        (lambda: _C.activation_forward("relu", x, y, "a"), TypeError,
         r"negative_slope: expected a real number, got str"),
        (lambda: _C.activation_forward("relu", x, y, float("inf")), ValueError,
         r"negative_slope: expected a finite number, got inf"),
        (lambda: _C.activation_forward("relu", x, x, 0.0), ValueError,
         r"y: expected an array that overlaps no input, got one sharing memory with x"),
        (lambda: _C.activation_backward("tanh", x, y, x, 0.0), ValueError,
         r"dx: expected an array that overlaps no input, got one sharing memory with saved"),
        (lambda: _C.activation_backward("tanh", x, y, np.empty((2, 3)), 0.0), TypeError,
         r"dx: expected dtype float32, got float64"),
        (lambda: _C.activation_backward("tanh", x, np.ones(6, np.float32), y, 0.0), ValueError,
         r"dy: expected shape \(2, 3\), got \(6,\)"),
        (lambda: _C.activation_backward("tanh", None, x, y, 0.0), TypeError,
         r"saved: expected a numpy.ndarray, got NoneType"),
    ]
    read_only = np.empty_like(x)
    read_only.flags.writeable = False
    cases.append((lambda: _C.activation_forward("relu", x, read_only, 0.0), ValueError,
                  r"y: expected a writable array, got a read-only one"))
    big = np.ones(12, np.float32)
    cases.append((lambda: _C.activation_forward("relu", big[:6], big[3:9], 0.0), ValueError, r"y: expected .* overlaps no input"))
    for call, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            call()


@requires_cpp
@pytest.mark.parametrize("threads", [1, 2], ids=["1thread", "team"])
def test_cpp_interrupted_kernels_raise_and_stay_usable(threads):
    """Ctrl-C landing at the first poll (simulated: _C._interrupt_next_kernel) raises KeyboardInterrupt out of the
    kernel; the kernels give their results afterwards."""
    from pyrnn import _C

    x = _x((8, 2**14), np.float32, seed=12)  # 8 chunks
    cpp = backend_module("cpp")
    with cpp_team(threads, min_flops=None):
        y, saved = cpp.activation_forward("tanh", x, 0.0)
        for call in (lambda: cpp.activation_forward("tanh", x, 0.0), lambda: cpp.activation_backward("tanh", saved, x, 0.0)):
            _C._interrupt_next_kernel(1)
            with pytest.raises(KeyboardInterrupt):
                call()
        _C._interrupt_next_kernel(10**9)
        np.testing.assert_array_equal(cpp.activation_forward("tanh", x, 0.0)[0], y)


def test_layers_without_grad_save_nothing_and_follow_the_backend_of_their_forward():
    layer = Tanh()
    x = _x((3, 4), np.float64)
    with no_grad():
        layer.forward(x)
    with pytest.raises(ValueError, match=r"expected a forward\(\) first"):
        layer.backward(np.ones((3, 4)))
    with pyrnn.use_backend("numpy"):
        layer.forward(x)
    with pyrnn.use_backend(BACKENDS[0]):
        assert layer._peek_saved()[0][0] == "numpy"
        layer.backward(np.ones((3, 4)))
