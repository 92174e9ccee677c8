"""The compiled module checks its own arguments: nothing reachable from Python crashes the interpreter."""

import itertools
import os
import sys
import time

import numpy as np
import pytest

import pyrnn

from helpers import CELLS, cpp_team, in_forked_child, make_layer, random_problem, run, state_parts

if "cpp" not in pyrnn.available_backends():  # pragma: no cover - a plain `pip install .` always builds it
    pytest.skip("the cpp backend is not built", allow_module_level=True)

from pyrnn import _C  # noqa: E402
from pyrnn.backends import cpp  # noqa: E402

LSTM = 2
T, B, I, H = 3, 2, 4, 5


def _args(dtype=np.float32):
    z = lambda *s: np.zeros(s, dtype)  # noqa: E731
    x = z(T, B, I)
    state0 = (z(B, H), z(B, H))
    params = [z(4 * H, I), z(4 * H, H), z(4 * H), z(4 * H)]
    cache = [z(T, B, H), z(T, B, H), z(T, B, 4 * H), None, None]  # hs, cs, gates, tanh_cs (recomputed), hn
    return x, state0, params, cache


def _forward(x, state0, params, out, cell=LSTM):
    _C.recurrent_forward(cell, False, x, None, tuple(state0), tuple(params), tuple(out))


def test_valid_call_runs():
    x, s, p, o = _args()
    _forward(x, s, p, o)


@pytest.mark.parametrize(
    "edit, exc, pattern",
    [
        (lambda a: a.__setitem__(0, a[0].astype(np.int64)), TypeError, r"x: expected dtype float32 or float64, got int64"),
        (lambda a: a.__setitem__(0, a[0][0]), ValueError, r"x: expected a 3-D array \(T, B, I\), got \(2, 4\)"),
        (lambda a: a.__setitem__(0, [[[0.0]]]), TypeError, r"x: expected a numpy.ndarray, got list"),
        (lambda a: a.__setitem__(1, (np.zeros((3, H), np.float32), a[1][1])), ValueError, r"h0: expected shape \(B, H\) with B = 2, got \(3, 5\)"),
        (lambda a: a.__setitem__(1, (a[1][0], None)), TypeError, r"c0: expected a numpy.ndarray, got NoneType"),
        (lambda a: a[2].__setitem__(0, np.zeros((4 * H, I + 1), np.float32)), ValueError, r"w_ih: expected shape \(20, 4\), got \(20, 5\)"),
        (lambda a: a[2].__setitem__(1, np.zeros((4 * H, H))), TypeError, r"w_hh: expected dtype float32, got float64"),
        (lambda a: a[2].__setitem__(3, np.zeros(4 * H + 1, np.float32)), ValueError, r"b_hh: expected shape \(20,\), got \(21,\)"),
        (lambda a: a[2].pop(), ValueError, r"params: expected a tuple of 4 arrays, got 3"),
        (lambda a: a.__setitem__(0, np.zeros((T, B, 2 * I), np.float32)[:, :, ::2]), ValueError,
         r"x: expected aligned rows of unit stride, whole-element strides >= 0 between them, got strides \(64, 32, 8\)"),
        (lambda a: a[3].__setitem__(0, np.zeros((T, H, B), np.float32).transpose(0, 2, 1)), ValueError,
         r"hs: expected aligned rows of unit stride, whole-element strides >= 0 between them, got strides \(40, 4, 8\)"),
        (lambda a: a[3].__setitem__(0, np.zeros((T, B, 2 * H), np.float32)[:, :, ::2]), ValueError,
         r"hs: expected aligned rows of unit stride"),
        (lambda a: a[3][2].setflags(write=False), ValueError, r"gates: expected a writable array, got a read-only one"),
        (lambda a: a[3].__setitem__(1, np.zeros((T, B, H + 1), np.float32)), ValueError, r"cs: expected shape \(3, 2, 5\), got \(3, 2, 6\)"),
    ],
    ids=["x-int", "x-2d", "x-list", "h0-batch", "c0-none", "w_ih-shape", "w_hh-dtype", "b_hh-shape", "params-len",
         "x-columns", "hs-columns-apart", "hs-every-other-column", "gates-readonly", "cs-shape"],
)
def test_forward_refuses_bad_arguments(edit, exc, pattern):
    x, s, p, o = _args()
    a = [x, s, p, o]
    edit(a)
    with pytest.raises(exc, match=pattern):
        _forward(*a)


def test_unknown_cell_code_and_non_tuple_are_refused():
    x, s, p, o = _args()
    with pytest.raises(ValueError, match=r"cell: expected a code 0..3 .*got 7"):
        _forward(x, s, p, o, cell=7)
    with pytest.raises(TypeError, match=r"params: expected a tuple, got list"):
        _C.recurrent_forward(LSTM, False, x, None, s, p, tuple(o))


def test_backward_refuses_bad_arguments():
    x, s, p, o = _args(np.float64)
    _forward(x, s, p, o)
    z = lambda *sh: np.zeros(sh)  # noqa: E731
    grads = (z(4 * H, I), z(4 * H, H), z(4 * H), z(4 * H))
    dout = (z(T, B, H), z(B, H), z(B, H))
    dres = (z(T, B, I), z(B, H), z(B, H))
    _C.recurrent_backward(LSTM, False, x, None, s, tuple(o), tuple(p), dout, grads, dres)
    with pytest.raises(ValueError, match=r"cache: expected a tuple of 5 arrays, got 4"):
        _C.recurrent_backward(LSTM, False, x, None, s, tuple(o[:4]), tuple(p), dout, grads, dres)
    with pytest.raises(ValueError, match=r"dhs: expected shape \(3, 2, 5\), got \(3, 2, 4\)"):
        _C.recurrent_backward(LSTM, False, x, None, s, tuple(o), tuple(p), (z(T, B, H - 1),) + dout[1:], grads, dres)
    with pytest.raises(ValueError, match=r"dw_hh: expected shape \(20, 5\), got \(5, 20\)"):
        _C.recurrent_backward(LSTM, False, x, None, s, tuple(o), tuple(p), dout, (grads[0], z(H, 4 * H)) + grads[2:], dres)
    with pytest.raises(TypeError, match=r"dc0: expected a numpy.ndarray, got NoneType"):
        _C.recurrent_backward(LSTM, False, x, None, s, tuple(o), tuple(p), dout, grads, dres[:2] + (None,))


def test_the_kernels_share_numpys_blas():
    """NumPy's matmuls and the kernels use one OpenBLAS (one thread pool): two pools
    busy-waiting against each other cost small models several times their run time."""
    assert _C.blas_interface() == "ilp64"


@pytest.mark.parametrize("interface", ["lp64", "loops"])
@pytest.mark.parametrize("cell", CELLS)
def test_every_gemm_provider_matches_reference(cell, interface):
    """SciPy's BLAS (LP64) and the kernels' own loop GEMM (no BLAS at all) must be exact too."""
    layer = make_layer(cell, 3, 4, num_layers=2, bidirectional=True)
    x, state, dy, dstate = random_problem(layer, 2, 5, np.random.default_rng(11))
    want = run(layer, x, state, dy, dstate, "numpy")
    try:
        if interface == "lp64":
            _C._set_blas64(0, 0)
        else:
            _C.set_blas(None, None)
        assert _C.blas_interface() == interface
        got = run(layer, x, state, dy, dstate, "cpp")
    finally:
        cpp.register_blas()
    assert _C.blas_interface() == "ilp64"
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-12, err_msg=k)


def test_float32_activations_are_accurate():
    """The kernels' branch-free float32 tanh/sigmoid against float64 truth, over the whole range."""
    x = np.concatenate([np.linspace(-30, 30, 600_001), [-np.inf, np.inf, 0.0, 1e-30, -1e-30]]).astype(np.float32)
    x64 = x.astype(np.float64)
    tanh_err = np.abs(_C.tanh_f32(x) - np.tanh(x64))
    sig_err = np.abs(_C.sigmoid_f32(x) - 0.5 * (np.tanh(0.5 * x64) + 1))
    assert tanh_err.max() < 5e-7 and sig_err.max() < 5e-7, (tanh_err.max(), sig_err.max())
    small = (x != 0) & (np.abs(x) < 1e-2)  # relative accuracy where tanh(x) ~ x
    assert np.max(tanh_err[small] / np.abs(np.tanh(x64[small]))) < 1e-6
    assert _C.tanh_f32(np.array([-np.inf, np.inf], np.float32)).tolist() == [-1.0, 1.0]
    assert np.isnan(_C.tanh_f32(np.array([np.nan], np.float32))).all()  # NaN propagates, as in PyTorch
    assert np.isnan(_C.sigmoid_f32(np.array([np.nan], np.float32))).all()
    assert np.all(np.abs(_C.tanh_f32(x)) <= 1) and np.all((_C.sigmoid_f32(x) >= 0) & (_C.sigmoid_f32(x) <= 1))
    with pytest.raises(ValueError, match="expected a 1-D float32 array"):
        _C.tanh_f32(np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError, match="x: expected dtype float32, got float64"):
        _C.tanh_f32(np.zeros(3))


def test_forward_takes_no_gate_cache_for_inference_but_backward_needs_it():
    x, s, p, o = _args()
    _forward(x, s, p, [o[0], o[1], None, None, None])  # inference: gates (and GRU's hn) None
    gru_params = tuple(np.zeros((3 * a.shape[0] // 4,) + a.shape[1:], np.float32) for a in p)
    with pytest.raises(TypeError, match=r"gates: expected a numpy.ndarray, got NoneType"):  # GRU: hn without gates
        _forward(x, (s[0], None), gru_params, [o[0], None, None, None, np.zeros((T, B, H), np.float32)], cell=3)
    z = lambda *sh: np.zeros(sh, np.float32)  # noqa: E731
    grads = (z(4 * H, I), z(4 * H, H), z(4 * H), z(4 * H))
    with pytest.raises(TypeError, match=r"gates: expected a numpy.ndarray, got NoneType"):
        _C.recurrent_backward(LSTM, False, x, None, s, (o[0], o[1], None, None, None), tuple(p),
                              (z(T, B, H), z(B, H), z(B, H)), grads, (z(T, B, I), z(B, H), z(B, H)))


def test_fields_a_cell_does_not_have_must_be_none():
    x, s, p, o = _args()
    with pytest.raises(ValueError, match=r"hn: expected None for lstm, got ndarray"):
        _forward(x, s, p, o[:4] + [o[0]])
    z = lambda *sh: np.zeros(sh, np.float32)  # noqa: E731
    gru_params = (z(3 * H, I), z(3 * H, H), z(3 * H), z(3 * H))
    gru_cache = [z(T, B, H), None, z(T, B, 3 * H), None, z(T, B, H)]
    _forward(x, (s[0], None), gru_params, gru_cache, cell=3)
    with pytest.raises(ValueError, match=r"c0: expected None for gru, got ndarray"):
        _forward(x, s, gru_params, gru_cache, cell=3)
    with pytest.raises(ValueError, match=r"tanh_cs: expected None \(the backward recomputes tanh\(c_t\) from cs\), got ndarray"):
        _forward(x, (s[0], None), gru_params, gru_cache[:3] + [z(T, B, H), gru_cache[4]], cell=3)
    with pytest.raises(ValueError, match=r"tanh_cs: expected None \(the backward recomputes"):
        _forward(x, s, p, o[:3] + [z(T, B, H), None])


def test_lengths_are_checked():
    x, s, p, o = _args()
    with pytest.raises(TypeError, match=r"lengths: expected dtype int64, got float64"):
        _C.recurrent_forward(LSTM, False, x, np.zeros(B), s, tuple(p), tuple(o))
    with pytest.raises(ValueError, match=r"lengths: expected shape \(2,\), got \(3,\)"):
        _C.recurrent_forward(LSTM, False, x, np.zeros(B + 1, np.int64), s, tuple(p), tuple(o))
    with pytest.raises(ValueError, match=r"lengths\[1\]: expected a value in \[0, 3\], got 4"):
        _C.recurrent_forward(LSTM, False, x, np.array([1, 4]), s, tuple(p), tuple(o))


# --- the fast paths: every instruction set, one thread and the team, denormals, BLAS threads ---

FAST_SHAPES = [  # (B, T, I, H): H off the panel widths (8/16/32 floats) and B off the tile heights (6/8)
    (1, 4, 3, 1),
    (5, 6, 7, 37),
    (13, 5, 4, 70),
    (9, 3, 2, 96),
    (19, 5, 3, 40),  # a team splits the batch (recurrent.cpp loop_team): rows 0-8 and 9-18
    (11, 80, 3, 70),  # dW_hh over chunks of >= 33 steps: gemm_tn (microkernel.inc) overwrites over several row blocks
    # (and the second layer's I = 2H: dX by gemm_packed over several blocks of rows, the last panel partial)
    (7, 9, 1, 33),  # one input feature: I <= 4 (and 2, 3, 4 above) takes the narrow dW_ih/dX products (microkernel.inc)
]


@pytest.fixture(params=_C.supported_isas())
def isa(request):
    before = _C.isa()
    _C.set_isa(request.param)
    yield request.param
    _C.set_isa(before)


@pytest.fixture(params=[1, 2], ids=["1thread", "team"])
def threads(request):
    """1: one thread; 2: a team of two even on tiny shapes (the split and the barrier run)."""
    before, min_flops = _C.get_num_threads(), _C._parallel_min_flops()
    _C.set_num_threads(request.param)
    _C._set_parallel_min_flops(0)
    _C._set_others_running(0)  # a team of two even on a busy machine
    yield request.param
    _C._set_others_running(-1)
    _C.set_num_threads(before)
    _C._set_parallel_min_flops(min_flops)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", FAST_SHAPES, ids=lambda s: "B{}T{}I{}H{}".format(*s))
def test_every_isa_and_team_match_the_reference(isa, threads, dtype, cell, shape):
    B, T, I_, H_ = shape
    rng = np.random.default_rng(B * 1000 + H_)
    layer = make_layer(cell, I_, H_, num_layers=2, bidirectional=True, dtype=dtype, seed=3)
    x, state, dy, dstate = random_problem(layer, B, T, rng)
    lengths = rng.integers(0, T + 1, size=B)
    want = run(layer, x, state, dy, dstate, "numpy")
    got = run(layer, x, state, dy, dstate, "cpp")
    tol = dict(rtol=1e-10, atol=1e-11) if dtype == np.float64 else dict(rtol=1e-5, atol=2e-5)
    long_sums = dtype == np.float32 and T * B > 200  # float32 rounding of long sums scales with the array (T=80: ~50)
    for k in want:
        atol = tol["atol"] * max(1.0, float(np.abs(want[k]).max())) if long_sums else tol["atol"]
        np.testing.assert_allclose(got[k], want[k], err_msg=f"{isa} {k}", rtol=tol["rtol"], atol=atol)
    with pyrnn.use_backend("numpy"), pyrnn.no_grad():  # variable lengths: carried steps split over the team too
        want = layer.forward(x, state, lengths=lengths)[0]
    with pyrnn.use_backend("cpp"), pyrnn.no_grad():
        got = layer.forward(x, state, lengths=lengths)[0]
    np.testing.assert_allclose(got, want, err_msg=f"{isa} lengths", **tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_large_weights_match_the_reference(threads, dtype, cell):
    """G*H*(I+H) past 4 MiB (recurrent.cpp kPostSpillBytes): the GEMMs after the backward loop in chunks of at
    least 640 rows and dW_hh by the BLAS instead of gemm_tn; the last panels partial (H = 400)."""
    B, T, I_, H_ = 5, 3, 400, 400
    rng = np.random.default_rng(41)
    layer = make_layer(cell, I_, H_, dtype=dtype, seed=5)
    x, state, dy, dstate = random_problem(layer, B, T, rng)
    want = run(layer, x, state, dy, dstate, "numpy")
    got = run(layer, x, state, dy, dstate, "cpp")
    tol = dict(rtol=1e-10, atol=1e-11) if dtype == np.float64 else dict(rtol=1e-5, atol=2e-5)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], err_msg=k, **tol)


STREAM_GATES_BYTES = 16 << 20  # recurrent.cpp kStreamGatesBytes


@pytest.mark.parametrize("cell,T", [("lstm", 66), ("gru", 90)])
def test_streamed_gate_cache_matches_the_reference(isa, threads, cell, T):
    """A float32 training forward whose gate cache (T*B*G*H) passes kStreamGatesBytes stores it with non-temporal
    stores on AVX-512 (loop.inc store_gates); the backward reads it, with and without variable lengths (whose
    carried steps zero their gates after the stores)."""
    B, I_, H_ = 64, 3, 256
    G = 4 if cell == "lstm" else 3
    assert T * B * G * H_ * 4 > STREAM_GATES_BYTES
    rng = np.random.default_rng(T)
    layer = make_layer(cell, I_, H_, dtype=np.float32, seed=7)
    x, state, dy, dstate = random_problem(layer, B, T, rng)
    lengths = rng.integers(1, T + 1, size=B)
    for kw in ({}, {"lengths": lengths}):
        got, want = {}, {}
        for backend, out in (("numpy", want), ("cpp", got)):
            layer.zero_grad()
            with pyrnn.use_backend(backend):
                out["y"], _ = layer.forward(x, state, **kw)
                out["dx"], _ = layer.backward(dy, dstate)
            out.update({name: g.copy() for name, g in layer.grads.items()})
        for k in want:  # float32 sums over T*B = 4224+ rows: the tolerance scales with the array
            atol = 2e-5 * max(1.0, float(np.abs(want[k]).max()))
            np.testing.assert_allclose(got[k], want[k], err_msg=f"{isa} {kw.keys()} {k}", rtol=1e-5, atol=atol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELLS)
def test_a_team_splitting_the_batch_gives_one_threads_bits(isa, dtype, cell):
    """Each member runs the whole loop on its rows (recurrent.cpp loop_team): every row's arithmetic is one
    thread's, so the outputs and final states are the same bits, variable lengths and reverse directions
    included; the gradients match one thread's to rounding (the GEMMs after the loop are cut by team size)."""
    B, T, I_, H_ = 21, 6, 5, 40
    rng = np.random.default_rng(17)
    layer = make_layer(cell, I_, H_, num_layers=2, bidirectional=True, dtype=dtype, seed=3)
    x, state, dy, dstate = random_problem(layer, B, T, rng)
    lengths = rng.integers(0, T + 1, size=B)
    got = {}
    before, min_flops = _C.get_num_threads(), _C._parallel_min_flops()
    _C._set_parallel_min_flops(0)
    _C._set_others_running(0)
    try:
        for threads in (1, 2):
            _C.set_num_threads(threads)
            with pyrnn.use_backend("cpp"), pyrnn.no_grad():
                y, hT = layer.forward(x, state, lengths=lengths)
            got[threads] = (y, *(hT if isinstance(hT, tuple) else (hT,)), run(layer, x, state, dy, dstate, "cpp"))
    finally:
        _C._set_others_running(-1)
        _C.set_num_threads(before)
        _C._set_parallel_min_flops(min_flops)
    for a, b in zip(got[1][:-1], got[2][:-1]):
        np.testing.assert_array_equal(a, b)
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for k, v in got[1][-1].items():
        np.testing.assert_allclose(got[2][-1][k], v, err_msg=k, **tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELLS)
def test_wide_and_default_tiles_give_the_same_bits(isa, threads, dtype, cell):
    """The packed micro-kernels' tile height (microkernel.inc gemm_panel: AVX-512's 12 rows where wide_tiles(), on
    Intel by default, else 8) changes which rows share a tile, never the order of a sum: outputs, final states and
    every gradient are the same bits either way, and match the reference. B = 37: full tiles and tails of both
    heights; a second layer and the reverse direction read the first's outputs."""
    B, T, I_, H_ = 37, 5, 20, 40
    rng = np.random.default_rng(23)
    layer = make_layer(cell, I_, H_, num_layers=2, bidirectional=True, dtype=dtype, seed=4)
    x, state, dy, dstate = random_problem(layer, B, T, rng)
    lengths = rng.integers(0, T + 1, size=B)
    got, before = {}, _C._wide_tiles()
    try:
        for wide in (False, True):
            _C._set_wide_tiles(wide)
            assert _C._wide_tiles() is wide
            with pyrnn.use_backend("cpp"), pyrnn.no_grad():
                y = layer.forward(x, state, lengths=lengths)[0]
            got[wide] = dict(run(layer, x, state, dy, dstate, "cpp"), y_lengths=y)
    finally:
        _C._set_wide_tiles(before)
    for k, v in got[False].items():
        np.testing.assert_array_equal(got[True][k], v, err_msg=k)
    want = run(layer, x, state, dy, dstate, "numpy")
    tol = dict(rtol=1e-10, atol=1e-11) if dtype == np.float64 else dict(rtol=1e-5, atol=2e-5)
    for k in want:
        np.testing.assert_allclose(got[True][k], want[k], err_msg=k, **tol)


def test_measured_clock_is_a_cpus_and_its_arguments_are_checked():
    ghz = _C.measured_clock_ghz(2, 20)
    if ghz == 0:
        pytest.skip("the clock cannot be measured here (not x86-64 with GCC or clang)")
    assert 0.3 < ghz < 8.0, f"expected the clock of a CPU, got {ghz} GHz (the add chain was not timed as written)"
    with pytest.raises(ValueError, match="expected threads >= 1 and ms >= 1, got 0 and 10"):
        _C.measured_clock_ghz(0, 10)


def test_isa_choice_is_checked_and_reported():
    assert _C.isa() in _C.supported_isas() and _C.supported_isas()[0] == "generic"
    assert _C.isa() == _C.supported_isas()[-1], "expected the widest supported instruction set by default"
    with pytest.raises(ValueError, match=r"isa: expected 'generic', 'avx2' or 'avx512', got 'sse9'"):
        _C.set_isa("sse9")
    with pytest.raises(ValueError, match="set_num_threads: expected n >= 1, got 0"):
        _C.set_num_threads(0)


def test_activations_are_accurate_in_every_isa(isa):
    """The vectorised tanh/sigmoid of each instruction set's loops, against float64 truth."""
    x = np.concatenate([np.linspace(-30, 30, 200_003), [-np.inf, np.inf, 0.0, 1e-30, -1e-30, np.nan]]).astype(np.float32)
    x64 = x.astype(np.float64)
    t, s = _C.tanh_f32(x, isa), _C.sigmoid_f32(x, isa)
    ok = ~np.isnan(x)
    assert np.abs(t - np.tanh(x64))[ok].max() < 5e-7
    assert np.abs(s - 0.5 * (np.tanh(0.5 * x64) + 1))[ok].max() < 5e-7
    assert np.isnan(t[~ok]).all() and np.isnan(s[~ok]).all()
    # one formula everywhere; wider ISAs fuse multiply-adds, so only the last bits differ
    np.testing.assert_allclose(t, _C.tanh_f32(x, "generic"), rtol=0, atol=1e-6)


def test_kernels_restore_the_callers_float_mode(threads):
    """FTZ/DAZ are set inside the kernels only: the caller's MXCSR comes back unchanged."""
    before = _C._float_mode()
    layer = make_layer("lstm", 3, 40, dtype=np.float32)
    x, state, dy, dstate = random_problem(layer, 4, 5, np.random.default_rng(0))
    run(layer, x, state, dy, dstate, "cpp")
    assert _C._float_mode() == before
    tiny = np.float32(1e-39)  # a denormal: the interpreter's own arithmetic still keeps it
    assert tiny * np.float32(1) != 0


def test_blas_thread_count_is_restored(threads):
    from threadpoolctl import threadpool_info

    def blas():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas()
    layer = make_layer("gru", 8, 64, dtype=np.float32)
    x, state, dy, dstate = random_problem(layer, 16, 6, np.random.default_rng(1))
    run(layer, x, state, dy, dstate, "cpp")
    assert blas() == before


def test_concurrent_callers_get_the_same_results(threads):
    """Two Python threads in the kernels at once: one gets the team, the other runs alone."""
    import threading

    layer = make_layer("lstm", 6, 48, dtype=np.float64, seed=5)
    problems = [random_problem(layer, 7, 9, np.random.default_rng(k)) for k in range(4)]
    with pyrnn.use_backend("cpp"), pyrnn.no_grad():
        want = [layer.forward(p[0], p[1])[0] for p in problems]
    got = [None] * len(problems)

    def work(k):
        with pyrnn.no_grad():
            for _ in range(20):
                got[k] = layer.forward(problems[k][0], problems[k][1])[0]

    with pyrnn.use_backend("cpp"):
        ts = [threading.Thread(target=work, args=(k,)) for k in range(len(problems))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-13)


def test_a_forked_child_runs_the_team():
    """fork() after the team started: the child gets a fresh team and does not hang."""
    layer = make_layer("rnn_tanh", 4, 64, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((8, 10, 4))
    min_flops = _C._parallel_min_flops()
    _C._set_parallel_min_flops(0)
    try:
        with pyrnn.use_backend("cpp"), pyrnn.no_grad():
            want = layer.forward(x)[0]  # the parent's team exists now
        got, exitcode = in_forked_child(_child_forward, layer, x, timeout=60)
    finally:
        _C._set_parallel_min_flops(min_flops)
    assert exitcode == 0
    np.testing.assert_array_equal(got, want)


def _child_forward(layer, x, q):
    with pyrnn.use_backend("cpp"), pyrnn.no_grad():
        q.put(layer.forward(x)[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("stride,dilation,padding", [(1, 1, 0), (2, 1, "causal"), (1, 2, (3, 1))])
def test_conv1d_team_matches_the_reference(threads, dtype, stride, dilation, padding):
    """Output rows split over the team (each member its own dW part, summed after) equal the reference."""
    from pyrnn.layers import Conv1D

    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 23, 6)).astype(dtype)
    conv = Conv1D(6, 9, 4, stride=stride, dilation=dilation, padding=padding, dtype=dtype, seed=2)
    out = {}
    for backend in ("numpy", "cpp"):
        conv.zero_grad()
        with pyrnn.use_backend(backend):
            y = conv.forward(x)
            dx = conv.backward(np.cos(y))
        out[backend] = [y, dx] + [g.copy() for g in conv.grads.values()]
    tol = dict(rtol=1e-10, atol=1e-11) if dtype == np.float64 else dict(rtol=1e-5, atol=2e-5)
    for got, want in zip(out["cpp"], out["numpy"]):
        np.testing.assert_allclose(got, want, **tol)


def test_regions_of_different_team_sizes_alternate_safely():
    """Regression: a worker that sat out a small region must not run the next, larger one under
    the old ticket (it ran it twice, the second time after its barrier was gone: a crash)."""
    before, min_flops = _C.get_num_threads(), _C._parallel_min_flops()
    small = make_layer("rnn_tanh", 3, 12, dtype=np.float64, seed=1)  # 1-3 panels: a team of 1-3
    big = make_layer("rnn_tanh", 3, 64, dtype=np.float64, seed=2)  # 4+ panels: a team of 4
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 3))
    try:
        _C._set_parallel_min_flops(0)
        with pyrnn.use_backend("cpp"), pyrnn.no_grad():
            _C.set_num_threads(1)
            want = small.forward(x)[0], big.forward(x)[0]
            _C.set_num_threads(4)  # more threads than this machine may have cores: still correct
            for _ in range(1500):
                got = small.forward(x)[0], big.forward(x)[0]
                for g, w in zip(got, want):
                    np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
    finally:
        _C.set_num_threads(before)
        _C._set_parallel_min_flops(min_flops)


def test_conv_size_check_does_not_overflow():
    """kH * kW * C_in beyond 2**31 is refused by a check that itself cannot overflow (empty arrays: legal)."""
    big = 2**16  # kH*kW*C_in = 2**48
    x, w = np.zeros((0, 1, 0, big), np.float32), np.zeros((0, big, big, big), np.float32)
    with pytest.raises(ValueError, match=r"w: expected C_out and kH\*kW\*C_in < 2\*\*31 \(the 32-bit BLAS interface\), "
                                         r"got shape \(0, 65536, 65536, 65536\)"):
        _C.conv2d_forward(x, w, None, np.zeros((0, 1, 0, 0), np.float32), (1, 1), (0, 0, 0, 0), (1, 1), 1)


def test_conv1d_output_length_beyond_the_blas_interface_is_named():
    """Found by the long API fuzz (cpp, Conv1D#258 of seed 1101: padding=2**31 - 1 on an empty batch):
    the message said what was wrong but not what was expected and what came. (Conv1D runs on conv2d_*.)"""
    x, w = np.zeros((0, 1, 5, 2), np.float32), np.zeros((3, 2, 1, 2), np.float32)
    with pytest.raises(ValueError, match=r"x: expected an output width < 2\*\*31 \(the 32-bit BLAS interface\), got 4294967298"):
        _C.conv2d_forward(x, w, None, np.zeros((0, 1, 4294967298, 3), np.float32), (1, 1), (0, 0, 2**31 - 1, 2**31 - 1),
                          (1, 1), 1)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_relu"])
def test_backward_gemms_in_chunks_match_the_reference(cell):
    """Shapes whose post-loop GEMMs run in several chunks of time steps (a Ctrl-C lands between
    two; recurrent.cpp: LSTM 10 steps, GRU 14, RNN 8 here, the last chunk partial), forward and reverse,
    the chunk holding h0 first or last, with ragged lengths."""
    layer = make_layer(cell, 512, 512, bidirectional=True, dtype=np.float64, seed=4)
    rng = np.random.default_rng(3)
    x, state, dy, dstate = random_problem(layer, 32, 45, rng)
    lengths = rng.integers(0, 46, size=32)
    out = {}
    for backend in ("numpy", "cpp"):
        layer.zero_grad()
        with pyrnn.use_backend(backend):
            y, _ = layer.forward(x, state, lengths=lengths)
            dx, ds0 = layer.backward(dy, dstate)
        out[backend] = [y, dx] + state_parts(ds0) + [g.copy() for g in layer.grads.values()]
    for got, want in zip(out["cpp"], out["numpy"]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_backward_gemms_in_cache_sized_chunks_match_the_reference_for_any_team():
    """A long sequence: the post-loop GEMMs run in chunks of at most ~1 MiB of dA, H_prev and X rows
    (recurrent.cpp kPostChunkBytes; here 93 of the 200 steps: two full chunks and a partial one), on one
    thread and on a team of two."""
    layer = make_layer("lstm", 64, 128, dtype=np.float32, seed=5)
    x, state, dy, dstate = random_problem(layer, 4, 200, np.random.default_rng(8))
    ref = make_layer("lstm", 64, 128, dtype=np.float64)
    ref.load_state_dict(layer.state_dict())  # the float32 weights, exactly
    want = run(ref, x.astype(np.float64), None, dy.astype(np.float64), None, "numpy")
    got = {}
    for n in (1, 2):
        before, min_flops = _C.get_num_threads(), _C._parallel_min_flops()
        _C.set_num_threads(n), _C._set_parallel_min_flops(0), _C._set_others_running(0)
        try:
            got[n] = run(layer, x, None, dy, None, "cpp")
        finally:
            _C._set_others_running(-1), _C.set_num_threads(before), _C._set_parallel_min_flops(min_flops)
    for n, k in itertools.product(got, want):
        np.testing.assert_allclose(got[n][k], want[k], rtol=1e-4, atol=1e-4, err_msg=f"{k}, {n} thread(s)")


def test_the_type_stub_matches_the_module():
    """_C.pyi names every function of pyrnn._C, with the parameters the bindings declare."""
    import ast
    import pathlib
    import re

    stub = ast.parse(pathlib.Path(_C.__file__).with_name("_C.pyi").read_text())
    declared = {f.name: [a.arg for a in f.args.args] for f in stub.body if isinstance(f, ast.FunctionDef)}
    compiled = {}
    for name in dir(_C):
        fn = getattr(_C, name)
        if callable(fn) and not name.startswith("__") and fn.__doc__:
            params = re.match(rf"{name}\((.*?)\) ->", fn.__doc__).group(1)
            compiled[name] = [p.split(":")[0].strip() for p in params.split(",") if p.strip()]
    assert declared == compiled


# ------------------------------------------------------------ a busy machine
def test_free_threads_leave_the_cores_other_threads_take():
    before = _C.get_num_threads()
    try:
        _C.set_num_threads(2)
        _C._set_others_running(0)
        assert _C._free_threads() == min(2, os.cpu_count())
        _C._set_others_running(10**4)
        assert _C._free_threads() == 1
    finally:
        _C._set_others_running(-1)
        _C.set_num_threads(before)
    assert 1 <= _C._free_threads() <= _C.get_num_threads()


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_do_not_depend_on_the_machines_load(cell):
    """Two threads allowed: on a quiet machine the team runs, on a busy one (no core free) one thread does, and
    the weight-gradient units after the loop are cut alike, so every gradient is the same bits (the BLAS's bias
    sums had changed in their last bits with the cut)."""
    layer = make_layer(cell, 130, 200, dtype=np.float32, seed=3)
    x, state, dy, dstate = random_problem(layer, 9, 20, np.random.default_rng(5))
    got = []
    before, min_flops = _C.get_num_threads(), _C._parallel_min_flops()
    try:
        _C.set_num_threads(2)
        _C._set_parallel_min_flops(0)
        for others in (0, 10**4):  # no other runnable thread; more than the cores
            _C._set_others_running(others)
            got.append(run(layer, x, state, dy, dstate, "cpp"))
    finally:
        _C._set_others_running(-1)
        _C.set_num_threads(before)
        _C._set_parallel_min_flops(min_flops)
    assert got[0].keys() == got[1].keys()
    for name in got[0]:
        np.testing.assert_array_equal(got[1][name], got[0][name], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("I_", [3, 24], ids=["narrow", "wide"])
@pytest.mark.parametrize("cell", CELLS)
def test_small_weight_gradients_summed_in_two_halves_of_time_are_one_threads_bits(cell, I_, dtype):
    """Weight gradients of at most kPostSplitBytes (recurrent.cpp) are summed over two fixed halves of the time
    chunks, each half by units of its own, and added in order: one thread and a team of two give the same bits,
    which match the reference. B*T = 6400 rows make 2-6 chunks of at most ~1 MiB of dA, H_prev and X rows here."""
    B, T, H_ = 32, 200, 24
    layer = make_layer(cell, I_, H_, dtype=dtype, seed=11)
    x, state, dy, dstate = random_problem(layer, B, T, np.random.default_rng(12))
    lengths = np.random.default_rng(13).integers(1, T + 1, size=B)
    for kw in ({}, {"lengths": lengths}):
        got = []
        for threads in (1, 2):
            with cpp_team(threads):
                layer.zero_grad()
                with pyrnn.use_backend("cpp"):
                    layer.forward(x, state, **kw)
                    layer.backward(dy, dstate)
                got.append({name: g.copy() for name, g in layer.grads.items()})
        layer.zero_grad()
        with pyrnn.use_backend("numpy"):
            layer.forward(x, state, **kw)
            layer.backward(dy, dstate)
        for name, want in layer.grads.items():
            np.testing.assert_array_equal(got[1][name], got[0][name], err_msg=f"{kw.keys()} {name}")
            atol = (2e-5 if dtype == np.float32 else 1e-10) * max(1.0, float(np.abs(want).max()))
            rtol = 1e-5 if dtype == np.float32 else 1e-10
            np.testing.assert_allclose(got[0][name], want, rtol=rtol, atol=atol, err_msg=f"{kw.keys()} {name}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
def test_every_output_and_gradient_is_the_same_bits_on_one_thread_and_two(cell, dtype):
    """The bias gradients are summed in gemm_tn's pack (microkernel.inc), each column's rows in order whatever the
    units' cut (the BLAS's product with a ones vector summed a column in an order that depended on its place in the
    unit, so the settings' 1 thread and 2 differed in their last bits), and the split along time is fixed: every
    output and gradient is the same bits on one thread and a team of two. Shapes: one chunk and several, narrow
    and wide I, units of a few gate rows (B=7 T=30 I=5 H=33: the example benchmarks/README.md had noted)."""
    for B, T, I_, H_ in [(7, 30, 5, 33), (9, 20, 130, 200), (16, 40, 24, 70), (32, 200, 3, 24)]:
        layer = make_layer(cell, I_, H_, dtype=dtype, seed=3)
        x, state, dy, dstate = random_problem(layer, B, T, np.random.default_rng(5))
        got = []
        for threads in (1, 2):
            with cpp_team(threads):
                got.append(run(layer, x, state, dy, dstate, "cpp"))
        for name in got[0]:
            np.testing.assert_array_equal(got[1][name], got[0][name], err_msg=f"{(B, T, I_, H_)} {name}")


def test_the_spin_budget_is_settable_and_results_do_not_depend_on_it():
    """Waiting threads spin ~0.5 ms by default before they sleep; none, or sleeping at once, changes no number."""
    layer = make_layer("lstm", 5, 40, num_layers=2, dtype=np.float64, seed=3)
    x, state, dy, dstate = random_problem(layer, 6, 9, np.random.default_rng(4))
    assert _C._spin_budget() == 20000
    results = []
    try:
        for spins in (0, 1, 20000):
            _C._set_spin_budget(spins)
            assert _C._spin_budget() == spins
            with cpp_team(2):
                results.append(run(layer, x, state, dy, dstate, "cpp"))
    finally:
        _C._set_spin_budget(-1)
    assert _C._spin_budget() == 20000
    for got in results[1:]:
        assert got.keys() == results[0].keys()
        for name in got:
            np.testing.assert_array_equal(got[name], results[0][name], err_msg=name)


def _sampled_free_threads(attempts=10):
    """free_threads() over `attempts` fresh pairs of load samples (it takes the smaller of the last two)."""
    seen = []
    for _ in range(attempts):
        _C._set_others_running(-1)
        _C._free_threads()
        time.sleep(0.012)  # the next sample is 10 ms later
        seen.append(_C._free_threads())
    return seen


@pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2, reason="the load sample reads Linux's /proc on 2+ cores")
def test_the_load_sample_counts_other_programs_not_this_ones_threads():
    """A thread of this process that computes (as OpenBLAS' or PyTorch's pools spin after their work) leaves
    the team its cores; a busy process takes one."""
    import subprocess
    import threading

    from threadpoolctl import threadpool_limits

    before = _C.get_num_threads()
    stop = threading.Event()

    def compute():  # NumPy products release the GIL: this thread runs while the main one samples
        a = np.ones((200, 200))
        while not stop.is_set():
            a @ a

    try:
        _C.set_num_threads(2)
        quiet = _sampled_free_threads()  # nothing of ours computing: other programs' load alone
        if quiet.count(2) < 7:
            pytest.skip(f"other programs keep this machine's cores busy (free threads sampled: {quiet}): the test "
                        "needs a quiet machine to tell this process's threads from theirs")
        with threadpool_limits(1):
            worker = threading.Thread(target=compute)
            worker.start()
            try:
                mine = _sampled_free_threads()
            finally:
                stop.set()
                worker.join()
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.2)
            theirs = _sampled_free_threads()
        finally:
            busy.kill()
            busy.wait()
    finally:
        _C._set_others_running(-1)
        _C.set_num_threads(before)
    assert mine.count(2) >= 7, f"this process's own computing thread shrank the team: {mine}"
    assert theirs.count(1) >= 7, f"a busy process left the team both cores: {theirs}"


@pytest.mark.parametrize("cell", CELLS)
def test_a_busy_machine_runs_the_team_code_on_one_thread_with_the_same_results(cell):
    """Every other core taken: the team's regions get one member (the time loop and the GEMMs after it)."""
    layer = make_layer(cell, 5, 40, num_layers=2, bidirectional=True, dtype=np.float64, seed=7)
    x, state, dy, dstate = random_problem(layer, 6, 9, np.random.default_rng(8))
    want = run(layer, x, state, dy, dstate, "numpy")
    with cpp_team(2, min_flops=0):
        _C._set_others_running(10**4)
        got = run(layer, x, state, dy, dstate, "cpp")
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-11, err_msg=k)


@pytest.mark.parametrize("cell", CELLS)
def test_a_one_thread_loop_then_a_team_for_the_gemms_after_it_matches_the_reference(cell):
    """A step too small for the team's meetings, but GEMMs after the loop worth a team: those run as
    units of a WorkQueue in a region of their own (whoever comes takes them)."""
    B, T, I_, H_ = 3, 20, 8, 64
    layer = make_layer(cell, I_, H_, dtype=np.float64, seed=9)
    G = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}[cell]
    x, state, dy, dstate = random_problem(layer, B, T, np.random.default_rng(10))
    want = run(layer, x, state, dy, dstate, "numpy")
    with cpp_team(2, min_flops=2 * B * G * H_ * H_ + 1):  # the loop: one thread; the GEMMs after it: 4x more
        _C._set_others_running(0)
        got = run(layer, x, state, dy, dstate, "cpp")
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-11, err_msg=k)


def test_a_backward_too_small_for_a_team_runs_the_blas_on_one_thread():
    """Regression: recurrent_backward on small shapes called a multi-threaded BLAS (the team was not
    engaged, so neither was the single-thread section). Fake get/set_num_threads record what the kernel
    asks of the BLAS."""
    import ctypes

    from pyrnn.backends import cpp as cpp_backend

    calls = []
    get = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 2)
    put = ctypes.CFUNCTYPE(None, ctypes.c_int)(calls.append)
    _C._set_blas_threads(*(ctypes.cast(f, ctypes.c_void_p).value for f in (get, put)))
    try:
        layer = make_layer("gru", 4, 8, dtype=np.float32)
        x, state, dy, dstate = random_problem(layer, 3, 5, np.random.default_rng(11))
        with cpp_team(2, min_flops=None):  # the default cost model: far too little work for a team
            run(layer, x, state, dy, dstate, "cpp")
    finally:
        cpp_backend.register_blas()
    assert calls == [1, 2], "expected the BLAS on one thread during the backward, then its count restored"


# ---------------------------------------------------------------- the team GEMM (_C.matmul, Dense's products)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("M,N,K", [(64, 120, 400), (300, 7, 200), (5, 1000, 900), (1, 1, 1), (33, 70, 0), (4, 3, 65)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_matmul_is_the_product_with_the_same_bits_on_any_team(dtype, trans_a, trans_b, M, N, K, accumulate):
    """op(a) @ op(b) (+ out) to the float64 product's rounding, and bitwise the same on 1 and 2 threads: the
    output's blocks depend on the shape alone (min_flops 0: the team even where the default would not)."""
    rng = np.random.default_rng(M * N + K)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    start = rng.standard_normal((M, N)).astype(dtype)
    want = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    if accumulate:
        want += start
    got = {}
    for threads in (1, 2):
        out = start.copy() if accumulate else np.full((M, N), np.nan, dtype)
        with cpp_team(threads):
            _C.matmul(a, b, out, trans_a, trans_b, accumulate)
        got[threads] = out
    np.testing.assert_array_equal(got[1], got[2])
    tol = (1e-4 if dtype == np.float32 else 1e-12) * max(1, K)
    np.testing.assert_allclose(got[1], want, rtol=tol, atol=tol)


@pytest.mark.parametrize("args,exc,pattern", [
    ((np.zeros((2, 3), np.float32), np.zeros((4, 5), np.float32), np.zeros((2, 5), np.float32)), ValueError,
     r"b: expected shape \(3, 5\), got \(4, 5\)"),
    ((np.zeros((2, 3), np.float32), np.zeros((3, 5), np.float32), np.zeros((5, 2), np.float32)), ValueError,
     r"out: expected shape \(2, 5\), got \(5, 2\)"),
    ((np.zeros((2, 3), np.float32), np.zeros((3, 5), np.float64), np.zeros((2, 5), np.float32)), TypeError,
     r"b: expected dtype float32, got float64"),
    ((np.zeros((2, 3), np.int64), np.zeros((3, 5), np.int64), np.zeros((2, 5), np.int64)), TypeError,
     r"a: expected dtype float32 or float64, got int64"),
    ((np.zeros((3, 2), np.float32).T, np.zeros((3, 5), np.float32), np.zeros((2, 5), np.float32)), ValueError,
     r"a: expected a C-contiguous array"),
    ((np.zeros(3, np.float32), np.zeros((3, 5), np.float32), np.zeros((1, 5), np.float32)), ValueError,
     r"expected 2-D a and b, got shapes \(3,\) and \(3, 5\)"),
    ((np.zeros((2, 3), np.float32), np.zeros((3, 5), np.float32), np.zeros((2, 5), np.float32)[::-1]), ValueError,
     r"out: expected a C-contiguous array"),
])
def test_matmul_bad_arguments_are_named(args, exc, pattern):
    with pytest.raises(exc, match=pattern):
        _C.matmul(*args)


def test_matmul_runs_the_blas_on_one_thread_and_restores_its_count():
    """Every block is one single-threaded BLAS call, on a team or on the caller alone (a small product: OpenBLAS
    would wake its own pool beside the kernels' team); fake get/set_num_threads record what is asked."""
    import ctypes

    from pyrnn.backends import cpp as cpp_backend

    calls = []
    get = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 2)
    put = ctypes.CFUNCTYPE(None, ctypes.c_int)(calls.append)
    _C._set_blas_threads(*(ctypes.cast(f, ctypes.c_void_p).value for f in (get, put)))
    try:
        a, b = np.ones((64, 120), np.float32), np.ones((120, 84), np.float32)
        out = np.empty((64, 84), np.float32)
        for threads in (1, 2):
            with cpp_team(threads, min_flops=None):
                _C.matmul(a, b, out)
    finally:
        cpp_backend.register_blas()
    assert calls == [1, 2, 1, 2]
    np.testing.assert_array_equal(out, np.full((64, 84), 120, np.float32))


def _layer_problem(cell, seed, B_=19, T_=5, I_=3, H_=40):
    """rng, x (T, B, I), h0, c0 (LSTM, else None) and float32 Weights of one layer-direction."""
    from pyrnn.backends.contract import GATES, Weights

    rng = np.random.default_rng(seed)
    G = GATES[cell]
    x = rng.standard_normal((T_, B_, I_)).astype(np.float32)
    h0 = rng.standard_normal((B_, H_)).astype(np.float32)
    c0 = rng.standard_normal((B_, H_)).astype(np.float32) if cell == "lstm" else None
    w = Weights(*(0.3 * rng.standard_normal(s).astype(np.float32) for s in [(G * H_, I_), (G * H_, H_), (G * H_,), (G * H_,)]))
    return rng, x, h0, c0, w


def _backward_with(cell, dhs, seed=5, B_=19, T_=5, H_=40):
    """dx, dh0, dc0 and the weight gradients of one cpp forward + backward whose dhs is ``dhs(T, B, H, rng)``."""
    rng, x, h0, c0, w = _layer_problem(cell, seed, B_, T_, 3, H_)
    grads = type(w)(*(np.zeros_like(a) for a in w))
    _, _, _, saved = cpp.recurrent_forward(cell, x, h0, c0, w)
    dhT = rng.standard_normal((B_, H_)).astype(np.float32)
    dcT = rng.standard_normal((B_, H_)).astype(np.float32) if cell == "lstm" else None
    dx, dh0, dc0 = cpp.recurrent_backward(saved, w, dhs(T_, B_, H_, rng), dhT, dcT, grads)
    return [dx, dh0] + ([dc0] if dc0 is not None else []) + list(grads)


@pytest.mark.parametrize("cell", CELLS)
def test_dhs_is_read_in_place_at_its_strides(isa, threads, cell):
    """The backward reads dhs at its strides (the layers pass a view of a batch-first dy, a direction's
    columns): the same bits as from a C-order copy of it, a broadcast row (strides 0) included."""
    views = {
        "batch-first columns": lambda T_, B_, H_, rng: rng.standard_normal((B_, T_, 2 * H_), np.float32).transpose(1, 0, 2)[:, :, H_:],
        "broadcast": lambda T_, B_, H_, rng: np.broadcast_to(rng.standard_normal(H_, np.float32), (T_, B_, H_)),
    }
    for name, view in views.items():
        assert not view(5, 19, 40, np.random.default_rng(0)).flags.c_contiguous
        got = _backward_with(cell, view)
        want = _backward_with(cell, lambda *a, view=view: np.ascontiguousarray(view(*a)))
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w, err_msg=f"{isa} {name}")


@pytest.mark.parametrize(
    "view",
    [lambda a: a[::-1], lambda a: np.concatenate([a, a], axis=2)[:, :, ::2]],
    ids=["time-reversed", "every-other-column"],
)
def test_dhs_strides_the_kernel_cannot_read_are_refused(view):
    with pytest.raises(ValueError, match=r"dhs: expected aligned rows of unit stride, whole-element strides >= 0 "
                                         r"between them, got strides \(-?\d+, \d+, \d+\) \(bytes\)"):
        _backward_with("lstm", lambda T_, B_, H_, rng: view(rng.standard_normal((T_, B_, H_), np.float32)))


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
@pytest.mark.parametrize("I_", [3, 37], ids=["narrow", "wide"])  # dX in the loop (I <= kNarrowInputs), or after it
@pytest.mark.parametrize("B_", [5, 19], ids=["units", "rows"])  # a team of two splits 5 rows by units, 19 by rows
@pytest.mark.parametrize("cell", CELLS)
def test_dx_is_written_at_its_strides(isa, threads, cell, B_, I_, bf16):
    """backward's out (dx): the kernels write dx into it, at its strides (the layers pass a time-major view of a
    batch-first dx), a step's rows at a time: the same bits as the C-order dx, the other columns untouched, and the
    same weight gradients; with lengths too, both directions."""
    T_, H_ = 6, 40
    rng, x, h0, c0, w = _layer_problem(cell, 8, B_, T_, I_, H_)
    dhs = rng.standard_normal((T_, B_, H_)).astype(np.float32)
    dhT = rng.standard_normal((B_, H_)).astype(np.float32)
    dcT = rng.standard_normal((B_, H_)).astype(np.float32) if cell == "lstm" else None
    lengths = rng.integers(0, T_ + 1, size=B_)
    for reverse, lens in [(False, None), (True, None), (False, lengths)]:
        results = []
        for wide in (None, np.full((B_, T_, I_ + 2), np.nan, np.float32)):  # dx in columns 1..I_ of a batch-first array
            grads = type(w)(*(np.zeros_like(a) for a in w))
            _, _, _, saved = cpp.recurrent_forward(cell, x, h0, c0, w, reverse=reverse, lengths=lens, bf16=bf16)
            out = None if wide is None else wide.transpose(1, 0, 2)[:, :, 1 : I_ + 1]
            dx, dh0, _ = cpp.recurrent_backward(saved, w, dhs, dhT, dcT, grads, out=out)
            if wide is not None:
                assert dx is out and np.shares_memory(dx, wide)
                assert np.isnan(wide[:, :, 0]).all() and np.isnan(wide[:, :, -1]).all(), "expected the other columns untouched"
            results.append([np.array(dx), dh0, *grads])
        for got, want in zip(results[1], results[0]):
            np.testing.assert_array_equal(got, want, err_msg=f"{isa} reverse={reverse} lengths={lens is not None}")


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
@pytest.mark.parametrize("B_", [5, 19], ids=["units", "rows"])
@pytest.mark.parametrize("cell", CELLS)
def test_training_reads_a_view_of_x_and_saves_its_copy(isa, threads, cell, B_, bf16, monkeypatch):
    """A training forward on a view of x (a batch-first input's columns): the kernel reads it in place and writes
    the C-order copy the backward reads (the saved x), each member its share of the rows: the saved x equals x, and
    the outputs, the cache and every gradient hold the same bits as from a C-order x; lengths and both directions."""
    from pyrnn.backends import driver

    def poisoned(shape, dtype):  # a row the kernel failed to copy stays NaN, whatever memory it gets
        a = np.empty(shape, dtype)
        a.fill(np.nan)
        return a

    monkeypatch.setattr(driver._buffers, "empty", poisoned)
    T_, I_, H_ = 6, 37, 40
    rng, x, h0, c0, w = _layer_problem(cell, 10, B_, T_, I_, H_)
    wide = np.full((B_, T_, I_ + 2), np.nan, np.float32)  # batch-first, x in columns 1..I_
    wide[:, :, 1 : I_ + 1] = x.transpose(1, 0, 2)
    view = wide.transpose(1, 0, 2)[:, :, 1 : I_ + 1]
    dhs = rng.standard_normal((T_, B_, H_)).astype(np.float32)
    dhT = rng.standard_normal((B_, H_)).astype(np.float32)
    lengths = rng.integers(0, T_ + 1, size=B_)
    for reverse, lens in [(False, None), (True, None), (True, lengths)]:
        results = []
        for xin in (x, view):
            hs, hT, cT, saved = cpp.recurrent_forward(cell, xin, h0, c0, w, reverse=reverse, lengths=lens, bf16=bf16)
            assert saved.x.flags.c_contiguous and not np.shares_memory(saved.x, wide)
            np.testing.assert_array_equal(saved.x, x)
            cache = [np.array(a) for a in saved.cache if a is not None]
            grads = type(w)(*(np.zeros_like(a) for a in w))
            dx, dh0, _ = cpp.recurrent_backward(saved, w, dhs, dhT, None if c0 is None else dhT, grads)
            results.append([np.array(hs), hT, *cache, dx, dh0, *grads] + ([cT] if cT is not None else []))
        for got, want in zip(results[1], results[0]):
            np.testing.assert_array_equal(got, want, err_msg=f"{isa} reverse={reverse} lengths={lens is not None}")


def test_dx_strides_the_kernel_cannot_write_are_refused():
    rng, x, h0, c0, w = _layer_problem("gru", 9)
    _, _, _, saved = cpp.recurrent_forward("gru", x, h0, c0, w)
    dhs, dhT = np.zeros((5, 19, 40), np.float32), np.zeros((19, 40), np.float32)
    grads = type(w)(*(np.zeros_like(a) for a in w))
    with pytest.raises(ValueError, match=r"out: expected a float32 array of shape \(5, 19, 3\) \(T, B, I\), got float32 \(19, 5, 3\)"):
        cpp.recurrent_backward(saved, w, dhs, dhT, None, grads, out=np.zeros((19, 5, 3), np.float32))
    overlapping = np.lib.stride_tricks.as_strided(np.zeros(64, np.float32), (5, 19, 3), (12, 0, 4))  # one row per step
    with pytest.raises(ValueError, match=r"dx: expected rows that do not overlap"):
        cpp.recurrent_backward(saved, w, dhs, dhT, None, grads, out=overlapping)
    with pytest.raises(ValueError, match=r"dx: expected a writable array, got a read-only one"):
        cpp.recurrent_backward(saved, w, dhs, dhT, None, grads, out=np.broadcast_to(np.zeros(3, np.float32), (5, 19, 3)))


def _forward_with(cell, out, seed=6, lengths=None):
    """(hs, hT) of one cpp forward (training: the cache is kept) with ``out``."""
    _, x, h0, c0, w = _layer_problem(cell, seed)
    hs, hT, _, _ = cpp.recurrent_forward(cell, x, h0, c0, w, lengths=lengths, out=out)
    return hs, hT


@pytest.mark.parametrize("cell", CELLS)
def test_y_gets_hs_at_its_strides(isa, threads, cell):
    """forward's out (y): the kernels write hs into it as they go, at its strides (the layers pass a
    direction's columns of a batch-first output); it holds the same bits as hs, carried steps included."""
    lengths = np.random.default_rng(1).integers(0, 6, size=19)
    for lens in (None, lengths):
        want, hT = _forward_with(cell, None, lengths=lens)
        y = np.full((19, 5, 80), np.nan, np.float32)  # (B, T, D*H): the second direction's columns
        got, hT2 = _forward_with(cell, y.transpose(1, 0, 2)[:, :, 40:], lengths=lens)
        assert np.shares_memory(got, y)
        np.testing.assert_array_equal(y[:, :, 40:].transpose(1, 0, 2), want, err_msg=f"{isa} lengths={lens is not None}")
        np.testing.assert_array_equal(hT2, hT)
        assert np.isnan(y[:, :, :40]).all(), "expected the other columns untouched"


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
@pytest.mark.parametrize("B_", [5, 19], ids=["units", "rows"])  # a team of two splits 5 rows by units, 19 by rows
@pytest.mark.parametrize("cell", CELLS)
def test_inference_reads_x_and_writes_hs_and_c_in_place(isa, threads, cell, B_, bf16):
    """At inference the forward reads x at its strides (the layers pass a view of a batch-first input), writes hs at
    its strides (a direction's columns of a batch-first output) and, for LSTM, only the latest c, in place in one (B, H)
    array: the same bits as the C-order call, both directions."""
    from pyrnn.backends.contract import CELL_CODES

    T_, H_ = 5, 40
    _, x, h0, c0, w = _layer_problem(cell, 7, B_, T_, 3, H_)
    lstm = cell == "lstm"
    for reverse in (False, True):
        hs = np.empty((T_, B_, H_), np.float32)
        cs = np.empty((T_, B_, H_), np.float32) if lstm else None
        _C.recurrent_forward(CELL_CODES[cell], reverse, x, None, (h0, c0), tuple(w), (hs, cs, None, None, None), bf16)
        wide = np.full((B_, T_, 5), np.nan, np.float32)  # batch-first, x in columns 1..3
        wide[:, :, 1:4] = x.transpose(1, 0, 2)
        y = np.full((B_, T_, 2 * H_), np.nan, np.float32)  # (B, T, D*H): the second direction's columns
        c = np.full((B_, H_), np.nan, np.float32) if lstm else None
        _C.recurrent_forward(CELL_CODES[cell], reverse, wide.transpose(1, 0, 2)[:, :, 1:4], None, (h0, c0), tuple(w),
                             (y.transpose(1, 0, 2)[:, :, H_:], c, None, None, None), bf16)
        np.testing.assert_array_equal(y[:, :, H_:].transpose(1, 0, 2), hs, err_msg=f"{isa} reverse={reverse}")
        assert np.isnan(y[:, :, :H_]).all(), "expected the other columns untouched"
        if lstm:
            np.testing.assert_array_equal(c, cs[0 if reverse else -1], err_msg=f"{isa} reverse={reverse}")


def test_one_c_with_lengths_and_strided_x_in_backward_are_refused():
    """One (B, H) c cannot carry a sample's c past its length (the step writes c_t over c_{t-1} before the carry
    reads it); the backward's GEMMs read x as one (T*B, I) matrix."""
    x, s, p, o = _args()
    o[2:4] = None, None  # inference
    o[1] = np.zeros((B, H), np.float32)
    with pytest.raises(ValueError, match=r"cs: expected shape \(3, 2, 5\) with lengths, got \(2, 5\)"):
        _C.recurrent_forward(LSTM, False, x, np.array([1, 3]), s, tuple(p), tuple(o))
    with pytest.raises(ValueError, match=r"cs: expected shape \(3, 2, 5\), got \(2, 5\)"):  # training keeps every c
        _C.recurrent_forward(LSTM, False, x, None, s, tuple(p), (o[0], o[1], np.zeros((T, B, 4 * H), np.float32),
                                                                 None, None))
    x, s, p, o = _args()
    _forward(x, s, p, o)
    z = lambda *sh: np.zeros(sh, np.float32)  # noqa: E731
    grads, dout, dres = (z(4 * H, I), z(4 * H, H), z(4 * H), z(4 * H)), (z(T, B, H), z(B, H), z(B, H)), (z(T, B, I), z(B, H), z(B, H))
    batch_first = np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2)
    with pytest.raises(ValueError, match=r"x: expected a C-contiguous array"):
        _C.recurrent_backward(LSTM, False, batch_first, None, s, tuple(o), tuple(p), dout, grads, dres)


@pytest.mark.parametrize(
    "make, exc, pattern",
    [
        (lambda: np.zeros((5, 19, 80), np.float32)[:, :, ::2], ValueError, r"y: expected aligned rows of unit stride"),
        (lambda: np.lib.stride_tricks.as_strided(np.zeros(2000, np.float32), (5, 19, 40), (4 * 19 * 20, 80, 4)),
         ValueError, r"y: expected rows that do not overlap, got strides \(1520, 80, 4\) \(bytes\) for shape \(5, 19, 40\)"),
        (lambda: np.lib.stride_tricks.as_strided(np.zeros(40, np.float32), (5, 19, 40), (0, 0, 4)), ValueError,
         r"y: expected rows that do not overlap, got strides \(0, 0, 4\)"),
        (lambda: np.zeros((5, 19, 40), np.float64), TypeError, r"y: expected dtype float32, got float64"),
        (lambda: np.zeros((5, 19, 41), np.float32), ValueError, r"y: expected shape \(5, 19, 40\), got \(5, 19, 41\)"),
    ],
    ids=["every-other-column", "overlapping-rows", "broadcast", "dtype", "shape"],
)
def test_y_the_kernel_cannot_write_is_refused(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        _forward_with("lstm", make())
    y = np.zeros((5, 19, 40), np.float32)
    y.setflags(write=False)
    with pytest.raises(ValueError, match=r"y: expected a writable array, got a read-only one"):
        _forward_with("lstm", y)
