"""The normalisation family's kernels: the contract as a Protocol, the reference by finite
differences (float64), every fast backend against the reference (outputs, gradients, the
running buffers updated in place), the one-pass statistics on data with a large mean, and the
contract's argument checks.

Legend: N = rows, C = channels; x is (N, C).
"""

import inspect
import re

import numpy as np
import pytest

import pyrnn
from pyrnn.backends import backend_module, contract
from pyrnn.backends import norm_reference as ref

from gradcheck import assert_grad_close
from helpers import cpp_isas, cpp_team

BACKENDS = pyrnn.available_backends()
FAST = [b for b in ("cpp", "numba") if b in BACKENDS]
requires_cpp = pytest.mark.skipif("cpp" not in BACKENDS, reason="the cpp backend is not built")
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}

# (N, C, affine, track, training, momentum)
CASES = [
    (6, 3, True, True, True, 0.1),
    (2, 1, True, True, True, 0.5),  # the fewest rows batch statistics allow
    (17, 5, False, True, True, 1.0),
    (9, 4, True, False, True, 0.0),  # batch statistics, nothing to update
    (5, 2, False, False, True, 0.0),
    (7, 3, True, True, False, 0.0),  # running statistics
    (4, 6, False, True, False, 0.0),
    (0, 3, True, True, False, 0.0),  # empty batch in eval
    (300, 16, True, True, True, 0.25),
]


def _ids(c):
    N, C, affine, track, training, m = c
    return f"N{N}C{C}" + ("" if affine else "-noaffine") + ("" if track else "-notrack") + \
        ("-train" if training else "-eval") + f"-m{m}"


def _problem(case, dtype, seed=0, offset=0.0):
    N, C, affine, track, training, m = case
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C)) * rng.uniform(0.5, 2.0, C) + offset).astype(dtype)
    w = rng.uniform(0.5, 1.5, C).astype(dtype) if affine else None
    b = rng.standard_normal(C).astype(dtype) if affine else None
    rm = rng.standard_normal(C).astype(dtype) + offset if track else None
    rv = rng.uniform(0.5, 2.0, C).astype(dtype) if track else None
    dy = rng.standard_normal((N, C)).astype(dtype)
    return x, w, b, rm, rv, dy


def _run(kernels, case, x, w, b, rm, rv, dy, eps=1e-5):
    N, C, affine, track, training, m = case
    rm = None if rm is None else rm.copy()
    rv = None if rv is None else rv.copy()
    y, saved = kernels.batchnorm_forward(x, w, b, rm, rv, training, m, eps)
    dw = None if w is None else np.full(C, 0.5, x.dtype)  # not zero: the kernels must ADD
    db = None if b is None else np.full(C, 0.25, x.dtype)
    dx = kernels.batchnorm_backward(saved, dy, dw, db)
    out = {"y": y, "dx": dx, "mean": saved.mean, "inv_std": saved.inv_std}
    for name, a in (("dweight", dw), ("dbias", db), ("running_mean", rm), ("running_var", rv)):
        if a is not None:
            out[name] = a
    return out


# ------------------------------------------------------------------ the contract
def _members(protocol):
    return sorted(name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_"))


def _parameters(fn, drop_self=False):
    return [(p.name, p.kind, p.default) for p in list(inspect.signature(fn).parameters.values())[int(drop_self):]]


@pytest.mark.parametrize("module", [f"backend:{b}" for b in BACKENDS] + ["norm_reference", "norm_numba", "norm_cpp"])
def test_modules_conform_to_the_norm_protocol(module):
    if module == "norm_cpp" and "cpp" not in BACKENDS:  # pragma: no cover - a plain install builds it
        pytest.skip("the cpp backend is not built")
    if module.startswith("backend:"):
        mod = backend_module(module.split(":")[1])
    else:
        mod = __import__(f"pyrnn.backends.{module}", fromlist=["_"])
    assert _members(contract.NormBackend) == ["batchnorm_backward", "batchnorm_forward"]
    assert isinstance(mod, contract.NormBackend)
    for member in _members(contract.NormBackend):
        assert _parameters(getattr(mod, member)) == _parameters(getattr(contract.NormBackend, member), True), member


def test_cpp_runs_its_own_kernels():
    if "cpp" not in BACKENDS:  # pragma: no cover - a plain install builds it
        pytest.skip("the cpp backend is not built")
    from pyrnn.backends import norm_cpp

    assert backend_module("cpp").batchnorm_forward is norm_cpp.batchnorm_forward
    assert backend_module("cpp").batchnorm_backward is norm_cpp.batchnorm_backward


def test_numba_kernels_take_their_flags_from_one_place():
    pytest.importorskip("numba")
    from pyrnn.backends import norm_numba

    source = inspect.getsource(norm_numba)
    jitted = re.findall(r"@numba\.(\w+)\(([^)]*)\)", source)
    assert jitted and all(kind == "njit" and args == "**JIT" for kind, args in jitted), jitted
    assert "numba.prange" not in source and "set_num_threads(" not in source


# --------------------------------------------------- reference vs finite differences
@pytest.mark.parametrize("case", [c for c in CASES if c[0] and c[0] <= 17], ids=_ids)
def test_reference_gradients_match_finite_differences(case):
    x, w, b, rm, rv, dy = _problem(case, np.float64, seed=1)
    N, C, affine, track, training, m = case
    out = _run(ref, case, x, w, b, rm, rv, dy)

    def loss():
        y, _ = ref.batchnorm_forward(x, w, b, None if rm is None else rm.copy(), None if rv is None else rv.copy(),
                                     training, m, 1e-5)
        return float(np.sum(y * dy))

    assert_grad_close(out["dx"], loss, x, "dx")
    if affine:
        assert_grad_close(out["dweight"] - 0.5, loss, w, "dweight")  # added into 0.5
        assert_grad_close(out["dbias"] - 0.25, loss, b, "dbias")


def test_reference_statistics_are_torch_definitions():
    x = np.random.default_rng(0).standard_normal((11, 4)) * 3 + 7
    rm, rv = np.zeros(4), np.ones(4)
    y, saved = ref.batchnorm_forward(x, None, None, rm, rv, True, 0.25, 1e-3)
    np.testing.assert_allclose(saved.mean, x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(saved.inv_std, 1 / np.sqrt(x.var(axis=0) + 1e-3), rtol=1e-13)  # biased
    np.testing.assert_allclose(rm, 0.25 * x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(rv, 0.75 + 0.25 * x.var(axis=0, ddof=1), rtol=1e-13)  # unbiased
    np.testing.assert_allclose(y, (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-3), rtol=1e-12)


# ------------------------------------------------------------ fast vs reference
@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_fast_backends_match_the_reference(backend, dtype, case):
    x, w, b, rm, rv, dy = _problem(case, dtype, seed=2)
    want = _run(ref, case, x, w, b, rm, rv, dy)
    got = _run(backend_module(backend), case, x, w, b, rm, rv, dy)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape, name
        scale = max(1.0, float(np.max(np.abs(want[name])))) if want[name].size else 1.0
        np.testing.assert_allclose(got[name], want[name], rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale,
                                   err_msg=f"{backend} {name}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_pass_statistics_keep_precision_with_a_large_mean(backend):
    """Data at 1e4 +- 1 in float32: the shifted float64 sums give the two-pass variance."""
    x = (np.random.default_rng(0).standard_normal((4096, 3)) + 1e4).astype(np.float32)
    y, saved = backend_module(backend).batchnorm_forward(x, None, None, None, None, True, 0.0, 1e-5)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(saved.mean, x64.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(1 / saved.inv_std**2 - 1e-5, x64.var(axis=0), rtol=1e-9)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_eval_changes_no_buffer_and_training_updates_them_in_place(backend):
    x, w, b, rm, rv, dy = _problem((8, 3, True, True, True, 0.1), np.float32)
    kernels = backend_module(backend)
    rm0, rv0 = rm.copy(), rv.copy()
    kernels.batchnorm_forward(x, w, b, rm, rv, False, 0.1, 1e-5)
    assert np.array_equal(rm, rm0) and np.array_equal(rv, rv0)
    kernels.batchnorm_forward(x, w, b, rm, rv, True, 0.1, 1e-5)
    assert not np.array_equal(rm, rm0) and not np.array_equal(rv, rv0)


# ------------------------------------------------------------------ argument checks
def _readonly(a):
    a.flags.writeable = False
    return a


def _args(**change):
    x, w, b, rm, rv, _ = _problem((6, 3, True, True, True, 0.1), np.float32)
    args = dict(x=x, weight=w, bias=b, running_mean=rm, running_var=rv, training=True, momentum=0.1, eps=1e-5)
    return args | change


@pytest.mark.parametrize(
    "change, exc, pattern",
    [
        (dict(x=[[1.0, 2.0]]), TypeError, r"x: expected a numpy.ndarray, got list"),
        (dict(x=np.ones((6, 3), np.int32)), TypeError, r"x: expected dtype float32 or float64, got int32"),
        (dict(x=np.ones((2, 3, 3), np.float32)), ValueError, r"x: expected a 2-D array \(N, C\), got shape \(2, 3, 3\)"),
        (dict(x=np.ones((3, 6), np.float32).T), ValueError, r"x: expected a C-contiguous array"),
        (dict(weight=np.ones(3)), TypeError, r"weight: expected dtype float32, got float64"),
        (dict(bias=np.ones(4, np.float32)), ValueError, r"bias: expected shape \(3,\) \(C,\), got \(4,\)"),
        (dict(running_var=None), ValueError, r"running_mean, running_var: expected both arrays or both None"),
        (dict(running_mean=_readonly(np.zeros(3, np.float32))), ValueError,
         r"running_mean: expected a writable array, got a read-only one"),
        (dict(training=1), TypeError, r"training: expected True or False, got int 1"),
        (dict(training=False, running_mean=None, running_var=None), ValueError,
         r"running_mean: expected running statistics when training=False, got None"),
        (dict(x=np.ones((1, 3), np.float32)), ValueError, r"x: expected more than 1 value per channel .*got N=1"),
        (dict(momentum=1.5), ValueError, r"momentum: expected a finite number in \[0, 1\], got 1.5"),
        (dict(momentum=None), TypeError, r"momentum: expected a real number, got NoneType"),
        (dict(eps=-1.0), ValueError, r"eps: expected a finite number in \[0, inf\], got -1.0"),
    ],
    ids=["list", "int", "3d", "strided", "weight-dtype", "bias-shape", "one-running", "readonly-running", "training-int",
         "eval-no-running", "one-row", "momentum", "momentum-none", "eps"],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_checks_are_the_contracts(backend, change, exc, pattern):
    args = _args(**change)
    rm0 = None if args["running_mean"] is None else np.array(args["running_mean"])
    with pytest.raises(exc, match=pattern):
        backend_module(backend).batchnorm_forward(**args)
    if rm0 is not None:
        assert np.array_equal(args["running_mean"], rm0)  # nothing ran


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_checks_are_the_contracts(backend):
    kernels = backend_module(backend)
    args = _args()
    y, saved = kernels.batchnorm_forward(**args)
    with pytest.raises(TypeError, match=r"saved: expected a BatchNormSaved from batchnorm_forward, got tuple"):
        kernels.batchnorm_backward(tuple(saved), y, None, None)
    with pytest.raises(ValueError, match=r"dy: expected shape \(6, 3\) \(N, C\), got \(3, 6\)"):
        kernels.batchnorm_backward(saved, np.ones((3, 6), np.float32), None, None)
    with pytest.raises(TypeError, match=r"dweight: expected dtype float32, got float64"):
        kernels.batchnorm_backward(saved, y, np.zeros(3), None)
    with pytest.raises(ValueError, match=r"dbias: expected a writable array"):
        kernels.batchnorm_backward(saved, y, None, _readonly(np.zeros(3, np.float32)))


# ------------------------------------------------------------------ the C++ bindings' own checks
def _c_args(**change):
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    C = 3
    args = dict(x=x, weight=np.ones(C, np.float32), bias=np.zeros(C, np.float32), running_mean=np.zeros(C, np.float32),
                running_var=np.ones(C, np.float32), training=True, momentum=0.1, eps=1e-5, y=np.empty_like(x),
                mean=np.empty(C), inv_std=np.empty(C))
    return args | change


@requires_cpp
@pytest.mark.parametrize(
    "change, exc, pattern",
    [
        (dict(x=np.ones((5, 3), np.int64)), TypeError, r"x: expected dtype float32 or float64, got int64"),
        (dict(x=np.ones((5, 3, 1), np.float32)), ValueError, r"x: expected a 2-D array \(N, C\), got shape \(5, 3, 1\)"),
        (dict(weight=np.ones(3)), TypeError, r"weight: expected dtype float32, got float64"),
        (dict(bias=np.ones(2, np.float32)), ValueError, r"bias: expected shape \(3,\), got \(2,\)"),
        (dict(running_mean=None), ValueError, r"running_mean, running_var: expected both arrays or both None"),
        (dict(running_var=_readonly(np.ones(3, np.float32))), ValueError, r"running_var: expected a writable array"),
        (dict(training=1), TypeError, r"training: expected True or False, got int"),
        (dict(momentum=2.0), ValueError, r"momentum: expected a finite number in \[0.*, 1.*\], got 2.0"),
        (dict(eps=float("nan")), ValueError, r"eps: expected a finite number"),
        (dict(mean=np.empty(3, np.float32)), TypeError, r"mean: expected dtype float64, got float32"),
        (dict(y=np.empty((3, 5), np.float32)), ValueError, r"y: expected shape \(5, 3\), got \(3, 5\)"),
        (dict(x=np.ones((1, 3), np.float32), y=np.empty((1, 3), np.float32)), ValueError,
         r"x: expected more than 1 value per channel to compute batch statistics, got N=1"),
        (dict(training=False, running_mean=None, running_var=None), ValueError,
         r"running_mean: expected running statistics when training=False"),
    ],
    ids=["int", "3d", "weight-dtype", "bias-shape", "one-running", "readonly", "training-int", "momentum", "eps-nan",
         "mean-dtype", "y-shape", "one-row", "eval-no-running"],
)
def test_cpp_forward_binding_checks_every_argument(change, exc, pattern):
    from pyrnn import _C

    args = _c_args(**change)
    rm0 = None if args["running_mean"] is None else args["running_mean"].copy()
    with pytest.raises(exc, match=pattern):
        _C.batchnorm_forward(**args)
    if rm0 is not None:
        assert np.array_equal(args["running_mean"], rm0)


@requires_cpp
def test_cpp_backward_binding_checks_every_argument():
    from pyrnn import _C

    x = np.ones((4, 2), np.float32)
    ok = dict(x=x, dy=x.copy(), mean=np.zeros(2), inv_std=np.ones(2), weight=None, batch_stats=True,
              dx=np.empty_like(x), dweight=np.zeros(2, np.float32), dbias=None)
    _C.batchnorm_backward(**ok)
    for change, exc, pattern in [
        (dict(dy=np.ones((4, 2))), TypeError, r"dy: expected dtype float32, got float64"),
        (dict(inv_std=np.ones(3)), ValueError, r"inv_std: expected shape \(2,\), got \(3,\)"),
        (dict(batch_stats=None), TypeError, r"batch_stats: expected True or False, got NoneType"),
        (dict(dx=_readonly(np.empty_like(x))), ValueError, r"dx: expected a writable array"),
        (dict(dbias=np.zeros(2, np.float64)), TypeError, r"dbias: expected dtype float32, got float64"),
    ]:
        with pytest.raises(exc, match=pattern):
            _C.batchnorm_backward(**(ok | change))


# --------------------------------------------------- the C++ kernels: every ISA, the team, cancellation
def _assert_close(got, want, dtype, label):
    assert got.keys() == want.keys()
    for name in want:
        scale = max(1.0, float(np.max(np.abs(want[name])))) if want[name].size else 1.0
        np.testing.assert_allclose(got[name], want[name], rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale,
                                   err_msg=f"{label} {name}")


@requires_cpp
@pytest.mark.parametrize("threads", [1, 2], ids=["1thread", "team"])
@pytest.mark.parametrize("isa", cpp_isas())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_cpp_every_isa_and_the_team_match_the_reference(case, dtype, isa, threads):
    """The team splits even these small problems (min_flops 0), in every instruction set of this CPU."""
    x, w, b, rm, rv, dy = _problem(case, dtype, seed=3)
    want = _run(ref, case, x, w, b, rm, rv, dy)
    with cpp_team(threads, isa):
        got = _run(backend_module("cpp"), case, x, w, b, rm, rv, dy)
    _assert_close(got, want, dtype, f"{isa} {threads}")


@requires_cpp
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_cpp_team_above_the_default_threshold_matches_the_reference_and_one_thread_bit_for_bit(dtype, training):
    """BatchNorm2D B=8 16x16 32 channels as (N, C) (the team at the default threshold), 2 threads: the
    reference's numbers, and the same bits as one thread (the rows are summed in fixed slices, added in order)."""
    case = (8 * 16 * 16, 32, True, True, training, 0.1)
    x, w, b, rm, rv, dy = _problem(case, dtype, seed=4, offset=3.0)
    want = _run(ref, case, x, w, b, rm, rv, dy)
    with cpp_team(2, min_flops=None):
        team = _run(backend_module("cpp"), case, x, w, b, rm, rv, dy)
    with cpp_team(1, min_flops=None):
        alone = _run(backend_module("cpp"), case, x, w, b, rm, rv, dy)
    _assert_close(team, want, dtype, "team")
    for name in team:
        np.testing.assert_array_equal(team[name], alone[name], err_msg=name)


@requires_cpp
@pytest.mark.parametrize("threads", [1, 2], ids=["1thread", "team"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_cpp_interrupted_batchnorm_leaves_buffers_and_gradients_untouched(training, threads):
    """Ctrl-C landing at the first poll (before the sums) or at a later one raises KeyboardInterrupt and changes
    neither the running buffers nor dweight, dbias; the kernels give their results afterwards. One thread polls
    before each pass and each of the 16 slices of 256 rows (one chunk each): its 18th poll starts the pass
    writing the rows (the 2nd in an eval forward, which has no sums); a team's leader may take none of the
    slices, so only the polls before each pass are sure: its 2nd is in either pass (an eval forward: the 1st)."""
    from pyrnn import _C

    case = (4096, 64, True, True, training, 0.1)
    x, w, b, rm, rv, dy = _problem(case, np.float32, seed=5)
    cpp = backend_module("cpp")
    later = (18 if training else 2, 18) if threads == 1 else (2 if training else 1, 2)
    with cpp_team(threads, min_flops=None):
        want = _run(cpp, case, x, w, b, rm, rv, dy)
        _, saved = cpp.batchnorm_forward(x, w, b, rm.copy(), rv.copy(), training, 0.1, 1e-5)
        for forward_polls, backward_polls in ((1, 1), later):
            rm1, rv1, dw, db = rm.copy(), rv.copy(), np.full(64, 0.5, np.float32), np.full(64, 0.25, np.float32)
            _C._interrupt_next_kernel(forward_polls)
            with pytest.raises(KeyboardInterrupt):
                cpp.batchnorm_forward(x, w, b, rm1, rv1, training, 0.1, 1e-5)
            _C._interrupt_next_kernel(backward_polls)
            with pytest.raises(KeyboardInterrupt):
                cpp.batchnorm_backward(saved, dy, dw, db)
            np.testing.assert_array_equal(rm1, rm)
            np.testing.assert_array_equal(rv1, rv)
            assert np.all(dw == 0.5) and np.all(db == 0.25)
        _C._interrupt_next_kernel(10**9)  # more polls than the kernel has: nothing interrupted
        after = _run(cpp, case, x, w, b, rm, rv, dy)
    for name in want:
        np.testing.assert_array_equal(after[name], want[name], err_msg=name)


# ------------------------------------------ the cpp backend's BatchNorm -> ReLU (graph fusion)
@pytest.mark.parametrize("isa", cpp_isas())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N,C", [(1, 1), (7, 3), (300, 16), (129, 70)])
def test_cpp_fused_relu_forward_is_the_reference_then_a_relu(N, C, dtype, isa):
    """max(reference eval forward, 0), NaN kept; every ISA and the team."""
    if "cpp" not in BACKENDS:  # pragma: no cover - a plain install builds it
        pytest.skip("the cpp backend is not built")
    from pyrnn.backends import norm_cpp

    rng = np.random.default_rng(N * 100 + C)
    x = rng.standard_normal((N, C)).astype(dtype)
    x[rng.random(x.shape) < 0.02] = np.nan
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    rm, rv = rng.standard_normal(C).astype(dtype), rng.random(C).astype(dtype) + 0.5
    want = ref.batchnorm_forward(x, w, b, rm.copy(), rv.copy(), False, 0.1, 1e-5)[0]
    want = np.where(want < 0, 0, want)  # NaN stays NaN
    for threads in (1, 2):
        with cpp_team(threads, isa):
            got = norm_cpp.batchnorm_relu_forward(x, w, b, rm, rv, False, 0.1, 1e-5)[0]
        assert got.dtype == dtype and got.shape == x.shape
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-6, atol=2e-6)
        np.testing.assert_allclose(np.nan_to_num(got), np.nan_to_num(want), **tol)
    with pytest.raises(ValueError, match="running_mean"):
        norm_cpp.batchnorm_relu_forward(x, w, b, None, None, False, 0.1, 1e-5)


@pytest.mark.parametrize("isa", cpp_isas())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("N,C", [(2, 1), (7, 3), (300, 16), (129, 70)])
def test_cpp_fused_relu_training_is_the_two_kernels_bit_for_bit(N, C, training, dtype, isa):
    """Forward (batch or running statistics, the running update) and backward through the ReLU: the same bits
    as the cpp BatchNorm, then its ReLU, then their backwards (the ReLU's dy [y > 0] read in the kernel's
    passes), with NaN in x and dy too; the reference's numbers without NaN; every ISA and the team."""
    if "cpp" not in BACKENDS:  # pragma: no cover - a plain install builds it
        pytest.skip("the cpp backend is not built")
    from pyrnn.backends import activation_cpp, activation_reference, norm_cpp

    rng = np.random.default_rng(N * 10 + C)
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    rm, rv = rng.standard_normal(C).astype(dtype), rng.random(C).astype(dtype) + 0.5
    names = ("y", "dx", "dweight", "dbias", "running_mean", "running_var")

    def two_layers(bn, act, x, dy):
        m, v, dw, db = rm.copy(), rv.copy(), np.zeros_like(w), np.zeros_like(b)
        y, saved = bn.batchnorm_forward(x, w, b, m, v, training, 0.1, 1e-5)
        r, rsaved = act.activation_forward("relu", y, 0.0)
        return r, bn.batchnorm_backward(saved, act.activation_backward("relu", rsaved, dy, 0.0), dw, db), dw, db, m, v

    def fused(x, dy):
        m, v, dw, db = rm.copy(), rv.copy(), np.zeros_like(w), np.zeros_like(b)
        y, saved = norm_cpp.batchnorm_relu_forward(x, w, b, m, v, training, 0.1, 1e-5)
        return y, norm_cpp.batchnorm_relu_backward(saved, y, dy, dw, db), dw, db, m, v

    for nan in (False, True):
        x, dy = rng.standard_normal((N, C)).astype(dtype), rng.standard_normal((N, C)).astype(dtype)
        if nan:
            x[rng.random(x.shape) < 0.02] = np.nan
            dy[rng.random(dy.shape) < 0.02] = np.nan
        for threads in (1, 2):
            with cpp_team(threads, isa):
                got, want = fused(x, dy), two_layers(norm_cpp, activation_cpp, x, dy)
            for name, a, e in zip(names, got, want):
                np.testing.assert_array_equal(a, e, err_msg=f"{name}, {threads} thread(s), NaN {nan}")
        if not nan:
            tol = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-4)
            for name, a, e in zip(names, got, two_layers(ref, activation_reference, x, dy)):
                np.testing.assert_allclose(a, e, err_msg=name, **tol)
    saved = norm_cpp.batchnorm_relu_forward(x, w, b, rm.copy(), rv.copy(), training, 0.1, 1e-5)[1]
    with pytest.raises(ValueError, match=r"y: expected the fused forward's output"):
        norm_cpp.batchnorm_relu_backward(saved, x[:1], dy, None, None)
