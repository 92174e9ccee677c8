"""bfloat16 mixed precision (pyrnn.backends.bfloat16): the rounding, the error bound it implies, the
reference recurrent kernels against that bound, and the compiled bf16 paths (TDPBF16PS tiles where the CPU
has AMX-BF16, VDPBF16PS where it has AVX512-BF16, the float32 emulation and the AMX kernel on a software
model of the tiles everywhere) against the specification.

Tolerances are derived, not chosen: U = 2**-8 per rounded operand (bf16's unit roundoff), gamma_K =
K 2**-24 / (1 - K 2**-24) for a float32 sum of K exact products (pyrnn.backends.bfloat16's docstring).
"""

import numpy as np
import pytest

import pyrnn
from pyrnn.backends import reference
from pyrnn.backends.bfloat16 import FLOAT32_ROUNDOFF, UNIT_ROUNDOFF, bf16_matmul, matmul_error_bound, round_bf16
from pyrnn.backends.contract import Weights

from helpers import CELLS, cpp_isas, cpp_team

U, u = UNIT_ROUNDOFF, FLOAT32_ROUNDOFF


def gamma(K):
    return K * u / (1 - K * u)


def bf16_paths():
    try:
        from pyrnn import _C
    except ImportError:  # pragma: no cover - a plain install builds it
        return []
    return _C.supported_bf16_paths()


ALL_PATHS = ("emulated", "amx_emulated", "avx512_bf16", "amx")
NEEDS = {"avx512_bf16": "AVX512-BF16", "amx": "AMX-BF16 granted by the OS (arch_prctl ARCH_REQ_XCOMP_PERM)"}


@pytest.fixture(params=ALL_PATHS)
def bf16_path(request):
    """Each compiled bf16 path; the ones this CPU lacks are skipped, saying why."""
    if "cpp" not in pyrnn.available_backends():  # pragma: no cover
        pytest.skip("the cpp backend is not built")
    from pyrnn import _C

    if request.param not in _C.supported_bf16_paths():
        pytest.skip(f"bf16 path {request.param!r} needs {NEEDS[request.param]}: not on this machine "
                    f"(cpu_features {_C.cpu_features()})")
    before = _C.bf16_path()
    _C.set_bf16_path(request.param)
    try:
        yield request.param
    finally:
        _C.set_bf16_path(before)


# ------------------------------------------------------------------------------------- rounding
def test_round_bf16_ties_to_even_and_specials():
    one = np.float32(1)
    a = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -(1 + 2**-8), np.inf, -np.inf, 0.0, -0.0,
                  3.4e38, 2**-126], np.float32)
    r = round_bf16(a)
    np.testing.assert_array_equal(r[:4], [one, 1 + 2**-6, 1 + 2**-7, -one])  # ties to the even mantissa
    assert np.isposinf(r[4]) and np.isneginf(r[5]) and r[6] == 0 and np.signbit(r[7])
    assert np.isposinf(r[8])  # beyond the largest bf16 (~3.39e38): infinity, as IEEE rounding
    assert r[9] == np.float32(2**-126)
    assert np.isnan(round_bf16(np.array([np.nan], np.float32))).all()
    assert (round_bf16(a).view(np.uint32) & 0xFFFF == 0).all()  # bf16 values: the low 16 bits are zero


def test_round_bf16_matches_torch():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal(100_000).astype(np.float32) * np.float32(10) ** np.random.default_rng(1).integers(-30, 30, 100_000).astype(np.float32)
    np.testing.assert_array_equal(round_bf16(a), torch.from_numpy(a).to(torch.bfloat16).float().numpy())


def test_unit_roundoff_is_the_tight_bound():
    """|round(a) - a| <= 2**-8 |a|, and the ratio comes within 1 % of it: 2**-9 would not be a bound."""
    a = np.random.default_rng(2).uniform(1, 2, 1_000_000).astype(np.float32)
    rel = np.abs(round_bf16(a).astype(np.float64) - a) / a
    assert rel.max() <= U
    assert rel.max() > 0.99 * U


def test_matmul_bound_holds_and_is_not_vacuous():
    rng = np.random.default_rng(3)
    for M, K, N in [(7, 1, 5), (16, 64, 33), (40, 1000, 24)]:
        a, b = rng.standard_normal((M, K)).astype(np.float32), rng.standard_normal((K, N)).astype(np.float32)
        err = np.abs(bf16_matmul(a, b) - a.astype(np.float64) @ b)
        bound = matmul_error_bound(a, b)
        assert (err <= bound).all()
        assert (err / bound).max() > 0.05  # the rounding happened: far above float32's error


# --------------------------------------------------------------------- the compiled general GEMM
# AMX blocks of 32 rows and steps of 32 k: (17, 33, 32) a block of 16 + 1 rows and a step of 1 pair after a
# full one, in place; (40, 1031, 64) K over two packing blocks (the second adds to C in place), rows 32 + 8
@pytest.mark.parametrize("M, K, N", [(1, 1, 1), (8, 2, 32), (9, 3, 31), (17, 33, 32), (37, 1031, 45), (40, 1031, 64),
                                     (64, 512, 64), (5, 0, 3)])
@pytest.mark.parametrize("trans_b", [False, True])
def test_compiled_matmul_matches_specification(bf16_path, M, K, N, trans_b):
    """_C.matmul_bf16 rounds as round_bf16 does: they differ only in the order of the float32 sums."""
    from pyrnn import _C

    rng = np.random.default_rng(M * 1000 + K + N)
    a, b = rng.standard_normal((M, K)).astype(np.float32), rng.standard_normal((K, N)).astype(np.float32)
    got = _C.matmul_bf16(a, np.ascontiguousarray(b.T) if trans_b else b, trans_b=trans_b)
    ra, rb = round_bf16(a).astype(np.float64), round_bf16(b).astype(np.float64)
    exact = ra @ rb  # the sum of the exact products
    assert got.shape == (M, N) and got.dtype == np.float32
    assert (np.abs(got - exact) <= gamma(K) * (np.abs(ra) @ np.abs(rb)) + 1e-30).all()


def test_compiled_rounding_is_round_bf16(bf16_path):
    """The kernels' conversion (VCVTNE2PS2BF16, or the scalar one) is round_bf16 bit for bit, ties, infinities
    and overflow included: a (n, 1) @ [[1]] is bf(a) exactly, through both packings (a as A, a as B)."""
    from pyrnn import _C

    rng = np.random.default_rng(13)
    ties = (rng.integers(0x3F800000, 0x40000000, 4000, dtype=np.uint32) & np.uint32(0xFFFF0000)) | np.uint32(0x8000)
    a = np.concatenate([rng.standard_normal(4000).astype(np.float32), ties.view(np.float32),
                        np.array([np.inf, -np.inf, 3.4e38, -3.4e38, 0.0, -0.0, 2**-126], np.float32)])
    one = np.ones((1, 1), np.float32)
    np.testing.assert_array_equal(_C.matmul_bf16(a[:, None], one)[:, 0], round_bf16(a))
    np.testing.assert_array_equal(_C.matmul_bf16(one, a[None, :])[0], round_bf16(a))
    # and as a B whose columns are contiguous (trans_b: the W^T of a row-major W, packed 16 columns at a time)
    pair = np.stack([a, np.zeros_like(a)], axis=1)  # (n, 2): op(B) = pair.T
    np.testing.assert_array_equal(_C.matmul_bf16(np.array([[1, 0]], np.float32), pair, trans_b=True)[0], round_bf16(a))
    assert np.isnan(_C.matmul_bf16(np.full((3, 1), np.nan, np.float32), one)).all()
    # denormals are flushed to zero, as VDPBF16PS reads its inputs (DAZ); round_bf16 keeps them
    np.testing.assert_array_equal(_C.matmul_bf16(np.full((2, 1), 1e-39, np.float32), one), 0)


def test_compiled_matmul_refuses_bad_arguments():
    pytest.importorskip("pyrnn._C")
    from pyrnn import _C

    a = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"b: expected shape \(3, 4\), got \(2, 4\)"):
        _C.matmul_bf16(a, np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="a: expected dtype float32, got float64"):
        _C.matmul_bf16(a.astype(np.float64), np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="expected 2-D a and b"):
        _C.matmul_bf16(a[0], np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="bf16 path: expected one of 'emulated', 'amx_emulated', 'avx512_bf16', "
                                         "'amx', got 'tiles'"):
        _C.set_bf16_path("tiles")
    for name in {"avx512_bf16", "amx"} - set(_C.supported_bf16_paths()):
        with pytest.raises(ValueError, match=f"bf16 path: expected one this CPU supports, got '{name}'"):
            _C.set_bf16_path(name)


def test_cpu_features_agree_with_the_kernel_paths():
    pytest.importorskip("pyrnn._C")
    from pyrnn import _C

    feats, paths = _C.cpu_features(), _C.supported_bf16_paths()
    assert ("avx512_bf16" in paths) == feats["avx512_bf16"]
    assert ("amx" in paths) <= feats["amx_bf16"]  # and the OS must grant the tiles
    assert paths[:2] == ["emulated", "amx_emulated"]
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read().split()
    except OSError:  # pragma: no cover - not Linux
        return
    assert feats["avx512_bf16"] == ("avx512_bf16" in flags and "avx512f" in flags)
    assert feats["amx_bf16"] == ("amx_bf16" in flags and "amx_tile" in flags)


def test_default_path_is_the_fastest_supported():
    """TDPBF16PS where the tiles are granted, else VDPBF16PS, else the emulation; never the tile model."""
    pytest.importorskip("pyrnn._C")
    import subprocess
    import sys

    from pyrnn import _C

    paths = _C.supported_bf16_paths()
    expected = "amx" if "amx" in paths else "avx512_bf16" if "avx512_bf16" in paths else "emulated"
    fresh = subprocess.run([sys.executable, "-c", "from pyrnn import _C; print(_C.bf16_path())"], check=True,
                           capture_output=True, text=True).stdout.strip()
    assert fresh == expected


def test_amx_path():
    """Where the CPU has AMX-BF16 and Linux grants the tile state, the AMX path is there."""
    pytest.importorskip("pyrnn._C")
    from pyrnn import _C

    if not _C.cpu_features()["amx_bf16"]:
        pytest.skip("this CPU has no AMX-BF16: the amx path is tested through its tile model (amx_emulated)")
    import platform  # pragma: no cover - an AMX machine

    release = tuple(int(v) for v in platform.release().split(".")[:2])  # pragma: no cover
    if platform.system() == "Linux" and release >= (5, 16):  # pragma: no cover - kernels that grant AMX
        assert "amx" in _C.supported_bf16_paths()


# ------------------------------------------------------- the reference recurrent kernels, bounded
def _weights(rng, G, I, H, scale=1.0, dtype=np.float32):
    k = scale / np.sqrt(H)
    return Weights(*(rng.uniform(-k, k, s).astype(dtype) for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]))


def test_reference_rnn_within_propagated_bound():
    """tanh RNN, T steps: |h_bf16 - h_exact| <= e_t with e_t = c_K (|x||W_ih| + (|h| + e_{t-1})|W_hh|)
    + e_{t-1}|W_hh| + float32 slack (tanh is 1-Lipschitz); the float64 run is the exact one."""
    rng = np.random.default_rng(4)
    T, B, I, H = 12, 5, 9, 16
    w = _weights(rng, 1, I, H, scale=2.0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(np.float32)
    hs, *_ = reference.recurrent_forward("rnn_tanh", x, h0, None, w, bf16=True)
    w64 = Weights(*(a.astype(np.float64) for a in w))
    ex, *_ = reference.recurrent_forward("rnn_tanh", x.astype(np.float64), h0.astype(np.float64), None, w64)
    cK = 2 * U + U * U + gamma(I + H + 2) * (1 + U) ** 2
    Wi, Wh = np.abs(w64.w_ih.T), np.abs(w64.w_hh.T)
    e, h_prev = np.zeros((B, H)), np.abs(h0.astype(np.float64))
    worst = 0.0
    for t in range(T):
        e = cK * (np.abs(x[t]) @ Wi + (h_prev + e) @ Wh + np.abs(w64.b_ih) + np.abs(w64.b_hh)) + e @ Wh + 4 * u
        err = np.abs(hs[t] - ex[t])
        assert (err <= e).all(), t
        worst = max(worst, (err / e).max())
        h_prev = np.abs(ex[t])
    assert worst > 0.01  # the bound is not vacuous


def _lstm_step_bound(x, h0, c0, w, a_exact, c_exact):
    """Bound on |h_bf16 - h_exact| for one LSTM step from |delta a| <= c_K S (S = |x||W_ih| + |h0||W_hh|):
    s' <= 1/4, tanh' <= 1, so |di|,|df|,|do| <= da/4, |dg| <= da; c = f c0 + i g; h = o tanh(c)."""
    I, H = x.shape[1], h0.shape[1]
    cK = 2 * U + U * U + gamma(I + H + 2) * (1 + U) ** 2
    S = np.abs(x) @ np.abs(w.w_ih.T) + np.abs(h0) @ np.abs(w.w_hh.T) + np.abs(w.b_ih) + np.abs(w.b_hh)
    da = cK * S + 8 * u * (np.abs(a_exact) + 1)
    dai, daf, dag, dao = np.split(da, 4, axis=-1)
    ai, af, ag, ao = np.split(a_exact, 4, axis=-1)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    i, g, o = sig(ai), np.tanh(ag), sig(ao)
    di, df, dg, do = dai / 4, daf / 4, dag, dao / 4
    dc = np.abs(c0) * df + (np.abs(g) + dg) * di + i * dg
    return (np.abs(np.tanh(c_exact)) + dc) * do + o * dc + 8 * u


def test_reference_lstm_step_within_bound():
    rng = np.random.default_rng(5)
    B, I, H = 6, 11, 20
    w = _weights(rng, 4, I, H, scale=3.0)
    x = rng.standard_normal((1, B, I)).astype(np.float32)
    h0, c0 = (rng.standard_normal((2, B, H)) * 0.8).astype(np.float32)
    hs, _, _, saved = reference.recurrent_forward("lstm", x, h0, c0, w, bf16=True)
    w64 = Weights(*(a.astype(np.float64) for a in w))
    x64, h64, c64 = x[0].astype(np.float64), h0.astype(np.float64), c0.astype(np.float64)
    a = x64 @ w64.w_ih.T + w64.b_ih + h64 @ w64.w_hh.T + w64.b_hh
    ex, exc, _ = reference.lstm_forward_step("lstm", a, 0 * a, h64, c64)
    bound = _lstm_step_bound(x64, h64, c64, w64, a, exc)
    err = np.abs(hs[0] - ex)
    assert (err <= bound).all()
    assert (err / bound).max() > 0.01


def test_reference_backward_products_are_bf16():
    """The backward GEMMs take bf16 operands: dW_ih = bf(dA)^T bf(x) exactly as the specification
    (float64 sums of the rounded operands, float32 accumulation bound), while the bias gradient sums
    the float32 dA unrounded. dA is recomputed in float64 from the bf16 forward's own cache."""
    rng = np.random.default_rng(6)
    T, B, I, H = 4, 3, 7, 10
    w = _weights(rng, 1, I, H, scale=2.0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    _, _, _, saved = reference.recurrent_forward("rnn_tanh", x, h0, None, w, bf16=True)
    dhs = rng.standard_normal((T, B, H)).astype(np.float32)
    grads = Weights(*(np.zeros_like(a) for a in w))
    dx, dh0, _ = reference.recurrent_backward(saved, w, dhs, np.zeros((B, H), np.float32), None, grads)
    # replay the backward in float64 with the kernel's own rounding of dA (dA from float32 dh)
    wh = round_bf16(w.w_hh).astype(np.float64)
    dh = np.zeros((B, H), np.float32)
    das = np.zeros((T, B, H), np.float32)
    for t in range(T - 1, -1, -1):
        da = ((dh + dhs[t]) * (1 - saved.cache.hs[t] ** 2)).astype(np.float32)
        das[t] = da
        dh = (round_bf16(da).astype(np.float64) @ wh).astype(np.float32)
    # dA is float32 in both, computed from float32 values: rounding flips are possible, bounded by U each
    rda, rx = round_bf16(das.reshape(-1, H)).astype(np.float64), round_bf16(x.reshape(-1, I)).astype(np.float64)
    S = np.abs(das.reshape(-1, H)).T.astype(np.float64) @ np.abs(x.reshape(-1, I))
    assert (np.abs(grads.w_ih - rda.T @ rx) <= (2 * U + gamma(T * B)) * S + 1e-6).all()
    np.testing.assert_allclose(grads.b_ih, das.reshape(-1, H).sum(0), rtol=0, atol=T * B * 4 * u * np.abs(das).max())
    # and it is not the float32 product: the rounding is visible
    assert np.abs(grads.w_ih - das.reshape(-1, H).T.astype(np.float64) @ x.reshape(-1, I)).max() > 100 * u * S.max()


# ----------------------------------------------- the compiled recurrent kernels vs the specification
def _problem(cell, T, B, I, H, seed):
    rng = np.random.default_rng(seed)
    G = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}[cell]
    w = _weights(rng, G, I, H, scale=2.0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(np.float32)
    c0 = (0.5 * rng.standard_normal((B, H))).astype(np.float32) if cell == "lstm" else None
    return x, h0, c0, w


def _replay_bound(cell, x, h0, c0, w, hs, cs, lengths):
    """Each step of a bf16 forward recomputed from the run's OWN previous state, in float64 with the
    operands rounded by round_bf16 (bit-identical to the kernels' conversion of the same float32): so the
    only difference is the order of the float32 sums (gamma_K per GEMM, through Lipschitz constants <= 3 +
    |c_prev|) and float32's pointwise ops. Returns the largest |kernel - replay| / tolerance."""
    T, B, I = x.shape
    H = h0.shape[1]
    w64 = Weights(*(a.astype(np.float64) for a in w))
    wi, wh = round_bf16(w.w_ih).astype(np.float64), round_bf16(w.w_hh).astype(np.float64)
    step = reference._FORWARD_STEP[cell]
    worst, h, c = 0.0, h0, c0
    for t in range(T):
        xi = round_bf16(x[t]).astype(np.float64)
        hi = round_bf16(h).astype(np.float64)
        xproj, hproj = xi @ wi.T + w64.b_ih, hi @ wh.T + w64.b_hh
        h_ref, c_ref, _ = step(cell, xproj, hproj, h.astype(np.float64), None if c is None else c.astype(np.float64))
        S = np.abs(xi) @ np.abs(wi.T) + np.abs(hi) @ np.abs(wh.T) + np.abs(w64.b_ih) + np.abs(w64.b_hh)
        lip = 3 + (0 if c is None else np.abs(c).max())
        tol = lip * (2 * gamma(I + H + 2) * S.max(axis=-1, keepdims=True)) + 64 * u * (1 + np.abs(h_ref))
        active = np.ones((B, 1), bool) if lengths is None else (t < lengths)[:, None]
        h_ref = np.where(active, h_ref, h)
        worst = max(worst, (np.abs(hs[t] - h_ref) / tol).max())
        h = hs[t]
        c = None if cs is None else cs[t]
    return worst


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("isa", ["avx512", "generic"])  # generic: panels of 8 units, the emulation's other width
@pytest.mark.parametrize("threads", [1, 2])
def test_cpp_forward_replays_the_specification(bf16_path, cell, isa, threads):
    if isa not in cpp_isas():
        pytest.skip(f"isa {isa!r}: not on this CPU")
    from pyrnn.backends import cpp

    T, B, I, H = 6, 9, 13, 37  # odd I and H: the pad column of the pairs; H not a multiple of a panel
    x, h0, c0, w = _problem(cell, T, B, I, H, seed=7)
    lengths = np.array([6, 0, 3, 6, 1, 5, 6, 2, 4], np.int64)
    for lens in (None, lengths):
        with cpp_team(threads, isa):
            hs, hT, cT, saved = cpp.recurrent_forward(cell, x, h0, c0, w, lengths=lens, save=True, bf16=True)
        assert saved.bf16
        cs = saved.cache.cs
        assert _replay_bound(cell, x, h0, c0, w, hs, cs, lens) <= 1


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_cpp_team_splitting_the_batch_gives_one_threads_bits(bf16_path, cell, reverse):
    """B >= 16: a team of two splits the loop by rows of the batch (recurrent.cpp loop_team), each member
    converting its own rows of h_t (forward) and dA (backward) to bf16: the outputs, the final state and dh0/dc0
    are one thread's bits, variable lengths included; dX and the weight gradients match one thread's to float32
    rounding (the GEMMs after the loop are cut by team size)."""
    from pyrnn.backends import cpp

    T, B, I, H = 5, 21, 13, 37
    x, h0, c0, w = _problem(cell, T, B, I, H, seed=11)
    dhs, dhT, dcT = _upstream(cell, T, B, H, seed=11)
    lengths = np.random.default_rng(3).integers(0, T + 1, size=B)
    got = {}
    for threads in (1, 2):
        with cpp_team(threads):
            hs, hT, cT, saved = cpp.recurrent_forward(cell, x, h0, c0, w, reverse=reverse, lengths=lengths, save=True,
                                                      bf16=True)
            g = Weights(*(np.zeros_like(a) for a in w))
            dx, dh0, dc0 = cpp.recurrent_backward(saved, w, dhs, dhT, dcT, g)
        got[threads] = dict(hs=hs, hT=hT, cT=cT, dh0=dh0, dc0=dc0), dict(dx=dx, **g._asdict())
    for k, v in got[1][0].items():
        if v is not None:
            np.testing.assert_array_equal(got[2][0][k], v, err_msg=k)
    for k, v in got[1][1].items():
        np.testing.assert_allclose(got[2][1][k], v, rtol=1e-5, atol=1e-5 * np.abs(v).max(), err_msg=k)


def _upstream(cell, T, B, H, seed):
    rng = np.random.default_rng(seed + 1)
    dhs = rng.standard_normal((T, B, H)).astype(np.float32)
    dhT = rng.standard_normal((B, H)).astype(np.float32)
    dcT = rng.standard_normal((B, H)).astype(np.float32) if cell == "lstm" else None
    return dhs, dhT, dcT


def _both_backends(cell, T, B, I, H, reverse, seed):
    """Forward and backward of the cpp bf16 kernels and of the NumPy specification; the cpp backward runs
    on a copy of the reference's cache (the same forward), so only the backward's own products differ."""
    from pyrnn.backends import cpp

    x, h0, c0, w = _problem(cell, T, B, I, H, seed)
    dhs, dhT, dcT = _upstream(cell, T, B, H, seed)
    out = {}
    hs_r, _, _, saved_r = reference.recurrent_forward(cell, x, h0, c0, w, reverse=reverse, bf16=True)
    hs_c, _, _, saved_c = cpp.recurrent_forward(cell, x, h0, c0, w, reverse=reverse, bf16=True)
    fields = {k: getattr(saved_r.cache, k).copy() for k in saved_c.cache._fields if getattr(saved_c.cache, k) is not None}
    saved_c = saved_c._replace(cache=saved_c.cache._replace(**fields))
    for name, saved, fw, hs in (("ref", saved_r, reference, hs_r), ("cpp", saved_c, cpp, hs_c)):
        g = Weights(*(np.zeros_like(a) for a in w))
        dx, dh0, dc0 = fw.recurrent_backward(saved, w, dhs, dhT, dcT, g)
        out[name] = dict(hs=hs, dx=dx, dh0=dh0, **g._asdict())
    upstream = np.abs(dhs).max() + np.abs(dhT).max() + (0.0 if dcT is None else np.abs(dcT).max())
    return x, h0, w, saved_r, out, upstream


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_cpp_backward_one_step_within_rounding_flips(bf16_path, cell, reverse):
    """T = 1: dA is float32 from the same cache in both, equal up to float32's last bits, which may round
    to neighbouring bf16 values: each such flip moves a term of a product by at most 2U of it, so
    |cpp - ref| <= (2U + 2 gamma_K) (|dA| @ |B|) for every product (dx = dA W_ih, dh0 = direct + dA W_hh,
    dW = dA^T [x | h0]); the biases sum float32 dA (float32 agreement)."""
    B, I, H = 6, 7, 19
    x, h0, w, saved, out, upstream = _both_backends(cell, 1, B, I, H, reverse, seed=8)
    r, c = out["ref"], out["cpp"]
    G = w.w_ih.shape[0] // H
    step = Weights(*(np.abs(a.astype(np.float64)) for a in w))
    dA = _abs_da(cell, saved, upstream)
    k = 2 * U + 2 * gamma(G * H + B)
    assert (np.abs(c["dx"] - r["dx"]) <= k * (dA @ step.w_ih)[0] + 4 * u * np.abs(r["dx"])).all()
    assert (np.abs(c["dh0"] - r["dh0"]) <= k * (dA @ step.w_hh)[0] + 8 * u * (np.abs(r["dh0"]) + 1)).all()
    assert (np.abs(c["w_ih"] - r["w_ih"]) <= k * dA[0].T @ np.abs(x[0].astype(np.float64)) + 1e-30).all()
    assert (np.abs(c["w_hh"] - r["w_hh"]) <= k * dA[0].T @ np.abs(h0.astype(np.float64)) + 1e-30).all()
    for name in ("b_ih", "b_hh"):
        np.testing.assert_allclose(c[name], r[name], rtol=8 * u, atol=8 * u * dA.max())
    # the bound above would also pass an unrounded backward: the products must differ from float32 ones
    g32 = Weights(*(np.zeros_like(a) for a in w))
    dx32, dh32, _ = reference.recurrent_backward(saved._replace(bf16=False), w, *_upstream(cell, 1, B, H, 8), g32)
    f32 = dict(dx=dx32, dh0=dh32, w_ih=g32.w_ih, w_hh=g32.w_hh)
    for name, a in f32.items():
        assert np.linalg.norm(c[name] - a) > 50 * u * np.linalg.norm(a), name


def _abs_da(cell, saved, upstream):
    """An upper bound on |dA| (T=1, B, G*H) from the cells' formulas (reference.py): every gate derivative
    s(1-s) <= 1/4, 1 - tanh^2 <= 1, relu' in {0, 1}, so with d = |dhs| + |dhT| (+ |dcT|): RNN |da| <= d;
    LSTM dc_t <= d, da_i, da_g <= d, da_f <= d |c_prev|, da_o <= d; GRU da_n <= d, da_z <= d (|h_prev| + 1),
    da_r <= d |hn|."""
    T, B, H = saved.cache.hs.shape
    G = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}[cell]
    scale = max(1.0, np.abs(saved.h0).max() + 1)
    if saved.c0 is not None:
        scale = max(scale, np.abs(saved.c0).max())
    if saved.cache.hn is not None:
        scale = max(scale, np.abs(saved.cache.hn).max())
    return np.full((T, B, G * H), upstream * scale)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_cpp_matches_reference_bf16_over_steps(bf16_path, cell, reverse):
    """T = 5: the loop's bf16 buffers by step parity (h_t forward, dA_hh backward), checked against the
    specification in norm: a rounding flip is rare (a float32 last-bit difference landing on a bf16 tie)
    and moves one term by <= 2U of it, while a wrong step (a stale parity buffer, a missed unit) moves the
    results by O(1): ||cpp - ref|| <= 4U ||ref|| for every output and gradient."""
    out = _both_backends(cell, 5, 6, 9, 21, reverse, seed=12)[4]
    for name, ref in out["ref"].items():
        diff = np.linalg.norm(out["cpp"][name] - ref)
        assert diff <= 4 * U * np.linalg.norm(ref), name


def test_cpp_paths_agree_on_one_step(bf16_path):
    """One step (no feedback through h): the VDPBF16PS kernel and the emulation differ only in the order of
    the float32 sums (gamma_K); both equal the specification within that."""
    from pyrnn.backends import cpp

    x, h0, c0, w = _problem("rnn_relu", 1, 17, 33, 70, seed=10)
    hs, *_ = cpp.recurrent_forward("rnn_relu", x, h0, c0, w, bf16=True)
    xi, hi = round_bf16(x[0]).astype(np.float64), round_bf16(h0).astype(np.float64)
    wi, wh = round_bf16(w.w_ih).astype(np.float64), round_bf16(w.w_hh).astype(np.float64)
    a = xi @ wi.T + hi @ wh.T + w.b_ih + w.b_hh
    S = np.abs(xi) @ np.abs(wi.T) + np.abs(hi) @ np.abs(wh.T) + np.abs(w.b_ih) + np.abs(w.b_hh)
    assert (np.abs(hs[0] - np.maximum(a, 0)) <= gamma(33 + 70 + 2) * S + 1e-30).all()


@pytest.mark.parametrize("B", [32, 40])
@pytest.mark.parametrize("threads", [1, 2])
def test_cpp_bf16_runs_between_other_amx_code_on_its_thread(bf16_path, threads, B):
    """The AMX tiles stay configured across the panel calls of one loop or GEMM (Bf16TileScope) and no longer:
    PyTorch's bf16 autocast (oneDNN, which configures and releases the tiles on this same thread where the CPU
    has AMX) and pyrnn's own bf16 matmul, run between pyrnn's recurrent calls, leave those calls' bits
    unchanged. A configuration believed kept past its scope would fault (#UD) or read stale tiles here. B = 32:
    one tile shape, the same in every call; B = 40: blocks of 32 and 8 rows, two shapes a call."""
    torch = pytest.importorskip("torch")
    from pyrnn import _C
    from pyrnn.backends import cpp

    x, h0, c0, w = _problem("lstm", 6, B, 33, 70, seed=13)
    lstm, xt = torch.nn.LSTM(64, 64), torch.randn(7, 8, 64)
    a, b = np.ones((B, 50), np.float32), np.ones((50, 70), np.float32)

    def ours():
        hs, hT, cT, saved = cpp.recurrent_forward("lstm", x, h0, c0, w, bf16=True)
        grads = Weights(*(np.zeros_like(v) for v in w))
        dx, dh0, dc0 = cpp.recurrent_backward(saved, w, np.ones_like(hs), np.ones_like(hT), np.ones_like(cT), grads)
        return hs, dx, dh0, grads.w_hh.copy()

    with cpp_team(threads):
        first = ours()
        for _ in range(3):
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                lstm(xt)
            _C.matmul_bf16(a, b, False)
            for got, want in zip(ours(), first):
                np.testing.assert_array_equal(got, want)


def test_cpp_bf16_refuses_float64():
    from pyrnn import _C
    from pyrnn.backends.contract import CELL_CODES, new_cache

    x, h0, c0, w = _problem("gru", 2, 3, 4, 5, seed=11)
    w64 = tuple(a.astype(np.float64) for a in w)
    cache = new_cache("gru", 2, 3, 5, np.float64)
    with pytest.raises(TypeError, match="x: expected dtype float32 with bf16=True, got float64"):
        _C.recurrent_forward(CELL_CODES["gru"], False, x.astype(np.float64), None, (h0.astype(np.float64), None), w64,
                             tuple(cache), bf16=True)
