"""The conv2d kernels: the reference by finite differences (float64), every fast backend against the
reference (data gradient alone, weight gradient alone, empty sizes, chunks and the thread team),
the contract's argument checks on every backend, the Protocol, and the C++ binding's own checks.

Legend: B = batch, H/W = height/width, C = input channels, O = output channels, G = groups,
k = (KH, KW) kernel, s = stride, p = (top, bottom, left, right) padding, d = dilation.
"""

import zlib

import numpy as np
import pytest

import pyrnn
from pyrnn.backends import backend_module, contract
from pyrnn.backends import conv2d_reference as ref
from pyrnn.backends.contract import Conv2dSaved

from gradcheck import assert_grad_close
from helpers import conv2d_close, conv2d_step, cpp_team

FAST = [b for b in ("cpp", "numba") if b in pyrnn.available_backends()]


pytestmark = pytest.mark.usefixtures("cpp_team_on_small_shapes")  # tests/conftest.py


# (B, H, W, C, O, k, s, p, d, G, bias)
CASES = [
    (2, 5, 6, 3, 4, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
    (2, 7, 5, 2, 3, (3, 2), (2, 1), (1, 2, 0, 1), (2, 1), 1, True),
    (1, 4, 4, 4, 6, (2, 2), (1, 2), (1, 0, 1, 1), (1, 1), 2, False),
    (2, 5, 4, 3, 3, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 3, True),  # depthwise
    (2, 4, 3, 4, 2, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 2, True),  # pointwise, grouped
    (3, 3, 5, 3, 2, (1, 1), (1, 1), (0, 0, 0, 0), (2, 2), 1, False),  # pointwise (dilation changes nothing)
    (1, 3, 2, 2, 2, (2, 3), (3, 2), (2, 2, 3, 1), (2, 2), 1, True),  # windows mostly in the padding
    (2, 6, 8, 3, 5, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 1, True),  # the taps tile x (U-Net's upsampling)
    (1, 6, 4, 4, 2, (3, 2), (3, 2), (0, 0, 0, 0), (1, 1), 1, False),  # tiles of 3x2
    (2, 7, 8, 3, 5, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 1, True),  # a row no tap reads: not tiles
]


def _ids(c):
    return "B{}H{}W{}C{}O{}-k{}-s{}-p{}-d{}-G{}".format(*c[:10]).replace(" ", "") + ("" if c[10] else "-nobias")


def _problem(case, dtype, rng):
    B, H, W, C, O, k, s, p, d, G, bias = case
    x = rng.standard_normal((B, H, W, C)).astype(dtype)
    w = rng.standard_normal((O, C // G) + tuple(k)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype) if bias else None
    HO, WO = ref.conv2d_output_size(H, W, k, s, p, d)
    dy = rng.standard_normal((B, HO, WO, O)).astype(dtype)
    return x, w, b, dy, (s, p, d, G)


# --------------------------------------------------- reference vs finite differences
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_reference_gradients_match_finite_differences(case):
    x, w, b, dy, geom = _problem(case, np.float64, np.random.default_rng(zlib.crc32(str(case).encode())))
    out = conv2d_step(ref, x, w, b, dy, geom)
    loss = lambda: float(np.sum(ref.conv2d_forward(x, w, b, *geom)[0] * dy))  # noqa: E731
    assert_grad_close(out["dx"], loss, x, "dx")
    assert_grad_close(out["dw"] - 0.5, loss, w, "dw")  # added into 0.5
    if b is not None:
        assert_grad_close(out["db"] - 0.25, loss, b, "db")


def test_reference_on_a_worked_example():
    """Hand-computed: a 3x3 image, a 2x2 kernel of ones, padding 1 on the top and the left only."""
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    y, saved = ref.conv2d_forward(x, np.ones((1, 1, 2, 2)), np.array([10.0]), (1, 1), (1, 0, 1, 0), (1, 1), 1)
    assert y[0, :, :, 0].tolist() == [[11, 13, 15], [15, 22, 26], [21, 34, 38]]
    dx = ref.conv2d_backward(saved, np.ones((1, 3, 3, 1)), None, None)
    assert dx[0, :, :, 0].tolist() == [[4, 4, 2], [4, 4, 2], [2, 2, 1]]  # how many windows read each pixel


# --------------------------------------------------- fast backends vs the reference
EDGE = [
    (1, 1, 1, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
    (1, 5, 5, 1, 1, (5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1, False),  # kernel = image
    (2, 0, 3, 2, 3, (2, 2), (1, 1), (1, 1, 0, 0), (1, 1), 1, True),  # H = 0: the padding alone is read
    (3, 6, 7, 6, 6, (3, 3), (1, 1), (2, 0, 0, 2), (1, 1), 6, True),  # depthwise, asymmetric padding
    (2, 9, 9, 4, 8, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 4, True),  # depthwise, multiplier 2, strided
]
DEPTHWISE = [  # one input channel per group: the C++ and Numba backends' direct loop over the taps
    (2, 7, 6, 5, 5, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 5, False),
    (1, 9, 8, 3, 9, (3, 2), (2, 1), (0, 2, 1, 0), (2, 2), 3, True),  # multiplier 3, strided, dilated
    (3, 5, 5, 4, 4, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 4, True),  # 1x1
    (2, 6, 6, 2, 4, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 2, True),  # multiplier 2, "same"
]
CHUNKED = [  # more lines than one chunk of im2col (2**18 elements), and per member
    (5, 40, 37, 16, 12, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    (3, 30, 33, 8, 10, (5, 3), (1, 2), (2, 2, 1, 1), (1, 2), 2, True),
    (4, 50, 48, 40, 24, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # pointwise
    (2, 12, 10, 2, 3000, (2, 2), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # chunks sized by the output channels
]


def _random_cases(n=10):
    rng = np.random.default_rng(7)
    for i in range(n):
        G = int(rng.integers(1, 4))
        k = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        d = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        p = tuple(int(v) for v in rng.integers(0, 3, 4))
        H = max(1, d[0] * (k[0] - 1) + 1 - p[0] - p[1]) + int(rng.integers(0, 6))
        W = max(1, d[1] * (k[1] - 1) + 1 - p[2] - p[3]) + int(rng.integers(0, 6))
        yield (int(rng.integers(1, 4)), H, W, G * int(rng.integers(1, 4)), G * int(rng.integers(1, 4)), k,
               (int(rng.integers(1, 4)), int(rng.integers(1, 4))), p, d, G, bool(i % 3))


ALL_CASES = [(dt, c) for dt in (np.float64, np.float32) for c in CASES + list(_random_cases()) + EDGE + DEPTHWISE] + \
    [(np.float32, c) for c in CHUNKED] + [(np.float64, CHUNKED[1])]


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype,case", ALL_CASES, ids=lambda p: np.dtype(p).name if isinstance(p, type) else _ids(p))
def test_backend_matches_reference(backend, dtype, case):
    x, w, b, dy, geom = _problem(case, dtype, np.random.default_rng(zlib.crc32(f"{backend}{case}".encode())))
    want = conv2d_step(ref, x, w, b, dy, geom)
    got = conv2d_step(backend_module(backend), x, w, b, dy, geom)
    assert got.keys() == want.keys()
    for name in want:
        conv2d_close(got[name], want[name], dtype, f"{backend} {name}")


@pytest.mark.parametrize("backend", FAST + ["numpy"])
@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[4], DEPTHWISE[1], CHUNKED[1]], ids=_ids)
def test_data_gradient_alone_and_weight_gradient_alone(backend, case):
    """What ConvTranspose2D asks for: dx from a Conv2dSaved without x (dw None), and dw alone (need_dx=False)."""
    dtype = np.float64
    x, w, b, dy, geom = _problem(case, dtype, np.random.default_rng(zlib.crc32(f"alone{case}".encode())))
    want = conv2d_step(ref, x, w, b, dy, geom)
    kernels = backend_module(backend)
    dx = kernels.conv2d_backward(Conv2dSaved(None, x.shape, w, *geom), dy, None, None)
    conv2d_close(dx, want["dx"], dtype, "dx alone")
    _, saved = kernels.conv2d_forward(x, w, b, *geom)
    dw, db = np.full(w.shape, 0.5), np.full(w.shape[0], 0.25)
    assert kernels.conv2d_backward(saved, dy, dw, db, need_dx=False) is None
    conv2d_close(dw, want["dw"], dtype, "dw alone")
    conv2d_close(db, 0.25 + dy.sum(axis=(0, 1, 2)), dtype, "db alone")
    db2 = np.zeros(w.shape[0])
    assert kernels.conv2d_backward(saved, dy, None, db2, need_dx=False) is None  # only db
    conv2d_close(db2, dy.sum(axis=(0, 1, 2)), dtype, "db only")


@pytest.mark.skipif("numba" not in FAST, reason="numba is not installed")
@pytest.mark.parametrize("case", DEPTHWISE[:2], ids=_ids)
def test_numba_depthwise_is_a_direct_loop(monkeypatch, case):
    """A depthwise convolution runs the loop over the taps, not the GEMM path (G GEMMs of inner size KH*KW)."""
    from pyrnn.backends import conv2d_numba

    calls = []
    for name in ("_depthwise_forward_kernel", "_depthwise_backward_kernel"):
        kernel = getattr(conv2d_numba, name)
        monkeypatch.setattr(conv2d_numba, name, lambda *a, kernel=kernel, name=name: calls.append(name) or kernel(*a))
    monkeypatch.setattr(conv2d_numba, "_conv2d_forward_chunks", None)  # the GEMM path would fail
    monkeypatch.setattr(conv2d_numba, "_conv2d_backward_chunks", None)
    x, w, b, dy, geom = _problem(case, np.float32, np.random.default_rng(3))
    want, got = conv2d_step(ref, x, w, b, dy, geom), conv2d_step(conv2d_numba, x, w, b, dy, geom)
    assert calls == ["_depthwise_forward_kernel", "_depthwise_backward_kernel"]
    for name in want:
        conv2d_close(got[name], want[name], np.float32, name)


@pytest.mark.parametrize("backend", FAST + ["numpy"])
@pytest.mark.parametrize("B,C,O", [(0, 3, 2), (2, 0, 2), (2, 3, 0)])
def test_empty_sizes(backend, B, C, O):
    kernels = backend_module(backend)
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((B, 6, 5, C)), rng.standard_normal((O, C, 3, 2)), rng.standard_normal(O)
    dy = rng.standard_normal((B, 4, 4, O))
    out = conv2d_step(kernels, x, w, b, dy, ((1, 1), (0, 0, 0, 0), (1, 1), 1))
    assert out["y"].shape == (B, 4, 4, O) and out["dx"].shape == (B, 6, 5, C) and out["dw"].shape == w.shape
    np.testing.assert_allclose(out["y"], np.broadcast_to(b, (B, 4, 4, O)))  # C = 0: only the bias remains
    np.testing.assert_allclose(out["db"], 0.25 + dy.sum(axis=(0, 1, 2)))
    np.testing.assert_array_equal(out["dw"], 0.5)  # no sample or no channel: nothing added
    if O == 0:
        assert not out["dx"].any()


@pytest.mark.skipif("numba" not in FAST, reason="numba is not installed")
def test_numba_scratch_is_bounded_by_the_output_channels_too():
    """Found by the API fuzz (numba, Conv2D#256 of seed 1202): Conv2D(2, 2**20, 2, dilation=(2, 1)) on a
    (3, 5, 3, 2) image asked Numba for a (rows, Og) block of 128 GiB ("Allocation failed"), the chunk of
    output lines being sized by the im2col columns (KH*KW*C per row) alone."""
    from pyrnn.backends import conv2d_numba as nb

    for O, C, G in ((2**20, 2, 1), (3000, 2, 1), (8, 64, 1), (4096, 8, 4)):
        w = np.zeros((O, C // G, 2, 2), np.float32)
        (_, WO, *_), nl, _ = nb._plan((3, 5, 300, C), w, (1, 1), (0, 0, 0, 0), (2, 1), G, (3, 299))
        per_row = max(2 * 2 * (C // G) * G, O // G)
        assert nl * WO * per_row <= max(nb.CHUNK_ELEMENTS, WO * per_row), (O, C, G, nl)


@pytest.mark.skipif("cpp" not in FAST, reason="the cpp backend is not built")
def test_cpp_one_thread_and_the_team_agree():
    from pyrnn import _C

    case = CHUNKED[0]
    x, w, b, dy, geom = _problem(case, np.float64, np.random.default_rng(11))
    cpp = backend_module("cpp")
    _C._set_others_running(0)  # the team even on a busy machine
    try:
        team = conv2d_step(cpp, x, w, b, dy, geom)
    finally:
        _C._set_others_running(-1)
    threads = _C.get_num_threads()
    _C.set_num_threads(1)
    try:
        alone = conv2d_step(cpp, x, w, b, dy, geom)
    finally:
        _C.set_num_threads(threads)
    for name in team:
        conv2d_close(team[name], alone[name], np.float64, name)



TEAM_CASES = [  # a weight gradient of each kind, large enough for many chunks per member
    (8, 16, 16, 32, 32, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),  # Winograd
    (32, 14, 14, 6, 16, (5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # the output channels in the lanes (LeNet's)
    (16, 32, 32, 1, 6, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1, True),  # planar (a first layer)
    (6, 20, 21, 16, 12, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, True),  # strided: columns, col2im (whole samples)
    CHUNKED[1],  # groups, dilated: the columns and the BLAS
]


@pytest.mark.skipif("cpp" not in FAST, reason="the cpp backend is not built")
@pytest.mark.parametrize("case", TEAM_CASES, ids=_ids)
def test_cpp_team_gradients_are_the_same_bits_every_call(case):
    """The team's members take chunks from a queue, so who computes what changes from call to call; the weight
    and bias gradients are summed per slot (a fixed range of chunks) and the slots added in order, so every call
    gives the same bits (float32: the order of the sums shows in the last bits)."""
    x, w, b, dy, geom = _problem(case, np.float32, np.random.default_rng(13))
    cpp = backend_module("cpp")
    with cpp_team(2):  # the team even on a busy machine
        first = conv2d_step(cpp, x, w, b, dy, geom)
        for _ in range(15):
            again = conv2d_step(cpp, x, w, b, dy, geom)
            for name, want in first.items():
                np.testing.assert_array_equal(again[name], want, err_msg=name)


ISA_CASES = [  # the indirect GEMM's tails: rows past a tile, columns past a panel (8/16/32 floats), groups
    (2, 6, 7, 5, 37, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    (1, 5, 9, 6, 70, (2, 3), (1, 1), (0, 1, 2, 0), (2, 1), 2, False),
    (3, 4, 4, 3, 9, (2, 2), (1, 1), (3, 2, 2, 3), (1, 1), 1, True),  # padding > (k-1)d: the adjoint's is negative
    (2, 8, 6, 4, 12, (3, 1), (2, 1), (1, 1, 0, 0), (1, 1), 2, True),  # strided: dx through col2im
    (2, 3, 11, 33, 17, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # pointwise
    (2, 40, 41, 16, 2, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # pointwise to few outputs: the BLAS, two chunks of rows
    # few input channels, stride 1: the planar kernels (planar.h), forward for few outputs, the weight gradient always
    (3, 9, 11, 1, 6, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1, True),  # LeNet's first layer
    (2, 8, 13, 3, 20, (3, 3), (1, 1), (1, 0, 2, 1), (2, 1), 1, True),  # many outputs (forward: the GEMM), dilated
    (1, 17, 19, 4, 7, (2, 4), (1, 1), (0, 0, 0, 0), (1, 3), 1, False),  # output tiles' tails, taps' tails
    (2, 30, 33, 1, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),  # many blocks of positions per plane
    (2, 9, 10, 1, 12, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),  # dx of a first layer: the planar adjoint, 12 -> 1
    (2, 5, 40, 2, 3, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # pointwise
    (3, 11, 9, 2, 5, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, True),  # strided: the pixels as lanes (not planar)
    (2, 7, 6, 3, 5, (3, 3), (2, 1), (1, 0, 1, 1), (1, 2), 1, False),  # few channels, strided, dilated
    # Winograd F(2x2, 3x3) (3x3, stride 1, one group, > 8 channels in and out), forward, dx and dw:
    (2, 7, 9, 9, 37, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),  # odd output sizes: partial tiles
    (1, 6, 5, 12, 10, (3, 3), (1, 1), (0, 2, 1, 0), (1, 1), 1, False),  # asymmetric padding
    (3, 3, 3, 10, 9, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # one output pixel
    (2, 30, 21, 16, 24, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),  # several chunks of tiles per member
]


@pytest.mark.skipif("cpp" not in FAST, reason="the cpp backend is not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 8, 12, 16])
def test_cpp_planar_copies_of_every_channel_count_match_reference(k, dtype):
    """The planar kernels copy x's C and dy's O channels into planes and the output's O channels back a line at a
    time (planar.cpp planes_of_line, line_of_planes: a constant count for 1-4, 6, 8, 12 and 16, a loop otherwise):
    each count as C (up to the planar kernels' 8) and as O, lines of 7 and 9 pixels, padded or not, with and
    without a bias."""
    for H, W, pad, bias in ((9, 11, (1, 1, 2, 2), True), (7, 9, (0, 0, 0, 0), False)):
        case = (2, H, W, min(k, 8), k, (3, 3), (1, 1), pad, (1, 1), 1, bias)
        x, w, b, dy, geom = _problem(case, dtype, np.random.default_rng(zlib.crc32(f"planes{case}".encode())))
        want = conv2d_step(ref, x, w, b, dy, geom)
        got = conv2d_step(backend_module("cpp"), x, w, b, dy, geom)
        for name in want:
            conv2d_close(got[name], want[name], dtype, f"{case} {name}")


# the gradients with the output channels in the lanes (out_lanes.inc): 6 or 8 input channels (the weight gradient also
# 1 or 3, to four registers too), stride 1, one group, O of one or two registers, which is 2-32 channels depending on
# the ISA and dtype (generic: 4 floats or 2 doubles a register; AVX2 8 or 4; AVX-512 16 or 8); other O take the other
# paths, the same answer
OUT_LANES = [
    (2, 14, 14, 6, 16, (5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # LeNet-5's second layer
    (2, 9, 7, 8, 32, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, False),
    (1, 8, 11, 6, 8, (3, 2), (1, 1), (2, 0, 1, 3), (2, 3), 1, True),  # dilated, asymmetric padding past the kernel
    (3, 5, 6, 8, 4, (2, 3), (1, 1), (0, 1, 2, 0), (1, 1), 1, False),
    (2, 6, 5, 6, 2, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # 1x1
    (1, 4, 4, 6, 16, (4, 4), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # one output pixel
    (2, 12, 10, 1, 16, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),  # a first layer (the U-Net's 1 -> 16)
    (1, 9, 13, 3, 8, (3, 3), (1, 1), (2, 0, 1, 3), (2, 1), 1, False),  # 3 channels, dilated, padding past the kernel
    (2, 7, 5, 1, 4, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1, True),  # 25 taps: tiles of 12, 12 and 1; one inner column
    (1, 6, 6, 3, 32, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # 1 or 3 channels: O of four registers too
    (1, 5, 6, 3, 64, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, False),
]


@pytest.mark.skipif("cpp" not in FAST, reason="the cpp backend is not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", OUT_LANES, ids=_ids)
def test_cpp_out_lanes_gradients_on_every_isa_match_reference(dtype, case):
    """The output-channel-lane data and weight gradients (and the forward, bias gradient) on every instruction set,
    on a team of 2 (the lines split), with NaN and infinity in dy reaching exactly the dx pixels whose taps read
    them."""
    import pyrnn
    from pyrnn import _C

    x, w, b, dy, geom = _problem(case, dtype, np.random.default_rng(zlib.crc32(f"outlanes{case}".encode())))
    want = conv2d_step(ref, x, w, b, dy, geom)
    bad = dy.copy()
    bad[0, 0, 0, 1], bad[-1, -1, -1, 0] = np.nan, np.inf
    with np.errstate(invalid="ignore", over="ignore"):  # the reference's sums meet inf - inf
        want_bad = conv2d_step(ref, x, w, b, bad, geom)["dx"]
    before, threads = _C.isa(), pyrnn.get_num_threads()
    try:
        pyrnn.set_num_threads(2)
        for isa in _C.supported_isas():
            _C.set_isa(isa)
            got = conv2d_step(backend_module("cpp"), x, w, b, dy, geom)
            for name in want:
                conv2d_close(got[name], want[name], dtype, f"{isa} {name}")
            with np.errstate(invalid="ignore", over="ignore"):
                got_bad = conv2d_step(backend_module("cpp"), x, w, b, bad, geom)["dx"]
            np.testing.assert_array_equal(np.isfinite(got_bad), np.isfinite(want_bad), err_msg=isa)
    finally:
        _C.set_isa(before)
        pyrnn.set_num_threads(threads)


@pytest.mark.skipif("cpp" not in FAST, reason="the cpp backend is not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ISA_CASES, ids=_ids)
def test_cpp_every_isa_matches_reference(dtype, case):
    """Every instruction set's kernels, with Winograd on (where the layer fits it) and off."""
    from pyrnn import _C

    x, w, b, dy, geom = _problem(case, dtype, np.random.default_rng(zlib.crc32(f"isa{case}".encode())))
    want = conv2d_step(ref, x, w, b, dy, geom)
    before = _C.isa(), _C._winograd()
    try:
        for isa in _C.supported_isas():
            for winograd in (True, False):
                _C.set_isa(isa)
                _C._set_winograd(winograd)
                got = conv2d_step(backend_module("cpp"), x, w, b, dy, geom)
                for name in want:
                    conv2d_close(got[name], want[name], dtype, f"{isa} winograd={winograd} {name}")
    finally:
        _C.set_isa(before[0])
        _C._set_winograd(before[1])


# ------------------------------------------------------------- the activation post-op
@pytest.mark.parametrize("backend", FAST + ["numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_post_op_is_the_activation_of_the_output(backend, dtype):
    """activation="relu" gives exactly the plain output with its negative values zeroed (y < 0 ? 0 : y: a NaN
    stays, -0.0 stays), "tanh" its tanh (the activation kernels' own: cpp float32's is a rational approximation,
    3.6e-7 from np.tanh), on every convolution path (ISA_CASES: the indirect GEMM, Winograd, planar, the pixels
    as lanes, pointwise to few outputs; depthwise) and, for cpp, every instruction set."""
    from pyrnn import _C

    k = backend_module(backend)
    isas = _C.supported_isas() if backend == "cpp" else [None]
    before = _C.isa() if backend == "cpp" else None
    try:
        for isa in isas:
            if isa is not None:
                _C.set_isa(isa)
            for case in ISA_CASES + DEPTHWISE[:2] + CHUNKED[:1]:
                x, w, b, _, geom = _problem(case, dtype, np.random.default_rng(zlib.crc32(f"relu{case}".encode())))
                x[0, 0, 0, :] = np.nan  # NaN in every output pixel whose window holds x[0, 0, 0]
                plain, _ = k.conv2d_forward(x, w, b, *geom)
                got, _ = k.conv2d_forward(x, w, b, *geom, activation="relu")
                want = np.where(plain < 0, 0, plain).astype(dtype)
                assert np.isnan(want).any(), case
                np.testing.assert_array_equal(got, want, err_msg=f"{isa} {_ids(case)}")
                np.testing.assert_array_equal(np.signbit(got), np.signbit(want), err_msg=f"{isa} {_ids(case)}")
                got, _ = k.conv2d_forward(x, w, b, *geom, activation="tanh")
                tol = 1e-6 if dtype == np.float32 else 1e-14
                np.testing.assert_allclose(got, np.tanh(plain), rtol=tol, atol=tol, err_msg=f"{isa} {_ids(case)}")
                np.testing.assert_array_equal(np.isnan(got), np.isnan(plain))
    finally:
        if before is not None:
            _C.set_isa(before)


@pytest.mark.skipif("cpp" not in FAST, reason="the cpp backend is not built")
def test_cpp_activation_argument_is_checked():
    from pyrnn import _C

    args = _cpp_args()
    for activation in (None, "relu", "tanh"):
        _C.conv2d_forward(*args, activation=activation)
    with pytest.raises(ValueError, match=r"activation: expected None, 'relu' or 'tanh', got 'gelu'"):
        _C.conv2d_forward(*args, activation="gelu")
    with pytest.raises(TypeError, match=r"activation: expected None, 'relu' or 'tanh', got bool"):
        _C.conv2d_forward(*args, activation=True)


@pytest.mark.skipif("cpp" not in FAST, reason="the cpp backend is not built")
def test_cpp_winograd_switch_is_checked():
    from pyrnn import _C

    with pytest.raises(TypeError, match=r"on: expected a bool, got int"):
        _C._set_winograd(1)
    assert _C._winograd() is True  # the default


@pytest.mark.skipif("cpp" not in FAST, reason="the cpp backend is not built")
def test_cpp_loop_gemm_fallback_matches_reference():
    from pyrnn import _C
    from pyrnn.backends import cpp

    for case in (CASES[1], CASES[2], CASES[4]):
        x, w, b, dy, geom = _problem(case, np.float64, np.random.default_rng(3))
        want = conv2d_step(ref, x, w, b, dy, geom)
        _C.set_blas(None, None)
        try:
            got = conv2d_step(cpp, x, w, b, dy, geom)
        finally:
            cpp.register_blas()
        for name in want:
            conv2d_close(got[name], want[name], np.float64, name)


# --------------------------------------------------- the contract, every backend
def test_the_protocol_names_the_two_functions():
    members = sorted(n for n, v in vars(contract.Conv2dBackend).items() if callable(v) and not n.startswith("_"))
    assert members == ["conv2d_backward", "conv2d_forward"]


@pytest.mark.parametrize("module", ["pyrnn.backends.reference", "pyrnn.backends.numba_jit", "pyrnn.backends.cpp",
                                    "pyrnn.backends.conv2d_reference", "pyrnn.backends.conv2d_numba", "pyrnn.backends.conv2d_cpp"])
def test_modules_conform_to_the_protocol(module):
    import importlib
    import inspect

    if "cpp" in module and "cpp" not in FAST:  # pragma: no cover - a plain install builds it
        pytest.skip("the cpp backend is not built")
    mod = importlib.import_module(module)
    assert isinstance(mod, contract.Conv2dBackend)
    for name in ("conv2d_forward", "conv2d_backward"):
        want = [(p.name, p.kind, p.default) for p in list(inspect.signature(getattr(contract.Conv2dBackend, name)).parameters.values())[1:]]
        assert [(p.name, p.kind, p.default) for p in inspect.signature(getattr(mod, name)).parameters.values()] == want, name


@pytest.mark.parametrize("backend", FAST + ["numpy"])
def test_contract_checks_run_before_any_kernel(backend):
    k = backend_module(backend)
    x, w = np.zeros((2, 5, 6, 4)), np.zeros((6, 2, 3, 2))
    geom = ((1, 1), (0, 0, 0, 0), (1, 1), 2)
    _, saved = k.conv2d_forward(x, w, None, *geom)
    dy = np.zeros((2, 3, 5, 6))
    for call, exc, pattern in [
        (lambda: k.conv2d_forward(x[0], w, None, *geom), ValueError, r"x: expected a 4-D array \(B, H, W, C_in\), got shape \(5, 6, 4\)"),
        (lambda: k.conv2d_forward(x.astype(np.int64), w, None, *geom), TypeError, r"x: expected dtype float32 or float64, got int64"),
        (lambda: k.conv2d_forward(x.transpose(0, 2, 1, 3), w, None, *geom), ValueError, r"x: expected a C-contiguous array"),
        (lambda: k.conv2d_forward(x, w.astype(np.float32), None, *geom), TypeError, r"w: expected dtype float64, got float32"),
        (lambda: k.conv2d_forward(x, w[0], None, *geom), ValueError, r"w: expected a 4-D array \(C_out, C_in/groups, kH, kW\), got shape \(2, 3, 2\)"),
        (lambda: k.conv2d_forward(x, np.zeros((6, 4, 3, 2)), None, *geom), ValueError,
         r"w: expected shape \(6, 2, 3, 2\) \(C_out, C_in/groups, kH, kW\), got \(6, 4, 3, 2\)"),
        (lambda: k.conv2d_forward(x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 3), ValueError, r"groups: expected a divisor of C_in=4 and C_out=6, got 3"),
        (lambda: k.conv2d_forward(x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 0), ValueError, r"groups: expected an integer >= 1, got 0"),
        (lambda: k.conv2d_forward(x, w, np.zeros(5), *geom), ValueError, r"b: expected shape \(6,\) \(C_out,\), got \(5,\)"),
        (lambda: k.conv2d_forward(x, w, None, *geom, activation="sigmoid"), ValueError,
         r"activation: expected None, 'relu' or 'tanh', got 'sigmoid'"),
        (lambda: k.conv2d_forward(x, w, None, (1, 0), (0, 0, 0, 0), (1, 1), 2), ValueError, r"stride: expected a tuple of 2 integers >= 1, got \(1, 0\)"),
        (lambda: k.conv2d_forward(x, w, None, 1, (0, 0, 0, 0), (1, 1), 2), ValueError, r"stride: expected a tuple of 2 integers >= 1, got 1"),
        (lambda: k.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 2), ValueError, r"padding: expected a tuple of 4 integers >= 0, got \(0, 0\)"),
        (lambda: k.conv2d_forward(x, w, None, (1, 1), (0, 0, 0, 0), (True, 1), 2), ValueError, r"dilation: expected a tuple of 2 integers >= 1"),
        (lambda: k.conv2d_forward(x, w, None, (1, 1), (0, 0, 0, 0), (3, 1), 2), ValueError,
         r"expected H \+ padding >= dilation\*\(kernel-1\) \+ 1 = 7 \(H=5, kernel=3, dilation=3, padding=\(0, 0\)\), got an output size of 0"),
        (lambda: k.conv2d_backward(saved, np.zeros((2, 3, 4, 6)), None, None), ValueError,
         r"dy: expected shape \(2, 3, 5, 6\) \(B, H_out, W_out, C_out\), got \(2, 3, 4, 6\)"),
        (lambda: k.conv2d_backward(saved, dy, np.zeros((6, 2, 3, 3)), None), ValueError, r"dw: expected shape \(6, 2, 3, 2\)"),
        (lambda: k.conv2d_backward(saved, dy, None, np.zeros(3)), ValueError, r"db: expected shape \(6,\) \(C_out,\), got \(3,\)"),
        (lambda: k.conv2d_backward(saved, dy, np.zeros(w.shape, np.float32), None), TypeError, r"dw: expected dtype float64, got float32"),
        (lambda: k.conv2d_backward(saved._replace(x=None), dy, np.zeros(w.shape), None), ValueError,
         r"saved.x: expected the forward's input for a weight gradient \(dw given\), got None"),
        (lambda: k.conv2d_backward(saved._replace(x_shape=(2, 5, 6)), dy, None, None), ValueError, r"saved.x_shape: expected \(B, H, W, C_in\)"),
        (lambda: k.conv2d_backward(tuple(saved), dy, None, None), TypeError, r"saved: expected a Conv2dSaved, got tuple"),
        (lambda: k.conv2d_backward(saved, dy, None, None, need_dx=1), TypeError, r"need_dx: expected True or False, got int"),
    ]:
        with pytest.raises(exc, match=pattern):
            call()


# --------------------------------------------------- the C++ binding checks everything itself
def _cpp_args(dtype=np.float32):
    z = lambda *s: np.zeros(s, dtype)  # noqa: E731
    # x (B=2, H=6, W=5, C=4), w (O=6, C/G=2, 3, 2), b, y (2, 4, 4, 6); stride, padding, dilation, groups
    return [z(2, 6, 5, 4), z(6, 2, 3, 2), z(6), z(2, 4, 4, 6), (1, 1), (0, 0, 0, 0), (1, 1), 2]


def _ro(a):
    a.setflags(write=False)
    return a


CPP_BAD = [
    ("x-int", 0, lambda a: a.astype(np.int32), TypeError, r"x: expected dtype float32 or float64, got int32"),
    ("x-none", 0, lambda a: None, TypeError, r"x: expected a numpy.ndarray, got NoneType"),
    ("x-3d", 0, lambda a: a[0], ValueError, r"x: expected a 4-D array \(B, H, W, C_in\), got shape \(6, 5, 4\)"),
    ("x-strided", 0, lambda a: np.zeros((2, 5, 6, 4), np.float32).transpose(0, 2, 1, 3), ValueError, r"x: expected a C-contiguous array"),
    ("w-shape", 1, lambda a: np.zeros((6, 4, 3, 2), np.float32), ValueError, r"w: expected shape \(6, 2, 3, 2\), got \(6, 4, 3, 2\)"),
    ("w-dtype", 1, lambda a: a.astype(np.float64), TypeError, r"w: expected dtype float32, got float64"),
    ("w-none", 1, lambda a: None, ValueError, r"w: expected a 4-D array \(C_out, C_in/groups, kH, kW\), got NoneType"),
    ("w-k0", 1, lambda a: np.zeros((6, 2, 0, 2), np.float32), ValueError, r"w: expected a kernel of at least 1x1, got shape \(6, 2, 0, 2\)"),
    ("b-shape", 2, lambda a: np.zeros(5, np.float32), ValueError, r"b: expected shape \(6,\), got \(5,\)"),
    ("y-shape", 3, lambda a: np.zeros((2, 4, 5, 6), np.float32), ValueError, r"y: expected shape \(2, 4, 4, 6\), got \(2, 4, 5, 6\)"),
    ("y-readonly", 3, _ro, ValueError, r"y: expected a writable array, got a read-only one"),
    ("stride-list", 4, lambda a: [1, 1], TypeError, r"stride: expected a tuple of 2 integers, got list"),
    ("stride-len", 4, lambda a: (1, 1, 1), ValueError, r"stride: expected a tuple of 2 integers, got 3"),
    ("stride-0", 4, lambda a: (1, 0), ValueError, r"stride\[1\]: expected an integer >= 1 and <= 2147483647, got 0"),
    ("stride-float", 4, lambda a: (1.0, 1), TypeError, r"stride\[0\]: expected an integer >= 1, got float"),
    ("pad-negative", 5, lambda a: (0, 0, -1, 0), ValueError, r"padding\[2\]: expected an integer >= 0 and <= 2147483647, got -1"),
    ("pad-huge", 5, lambda a: (1 << 70, 0, 0, 0), ValueError, r"padding\[0\]: expected an integer >= 0 .*got 1180591620717411303424"),
    ("dilation-bool", 6, lambda a: (True, 1), TypeError, r"dilation\[0\]: expected an integer >= 1, got bool"),
    ("groups-3", 7, lambda a: 3, ValueError, r"groups: expected a divisor of C_in=4 and C_out=6, got 3"),
    ("groups-none", 7, lambda a: None, TypeError, r"groups: expected an integer >= 1, got NoneType"),
    ("too-small", 6, lambda a: (3, 1), ValueError, r"expected H \+ padding >= dilation\*\(kernel-1\) \+ 1 = 7 \(H=6, kernel=3, dilation=3\), got an output size of 0"),
]


@pytest.mark.skipif("cpp" not in FAST, reason="the cpp backend is not built")
@pytest.mark.parametrize("name,pos,edit,exc,pattern", CPP_BAD, ids=[c[0] for c in CPP_BAD])
def test_cpp_conv2d_forward_refuses_bad_arguments(name, pos, edit, exc, pattern):
    from pyrnn import _C

    args = _cpp_args()
    _C.conv2d_forward(*args)  # the unedited call is valid
    args[pos] = edit(args[pos])
    with pytest.raises(exc, match=pattern):
        _C.conv2d_forward(*args)


@pytest.mark.skipif("cpp" not in FAST, reason="the cpp backend is not built")
def test_cpp_conv2d_backward_refuses_bad_arguments():
    from pyrnn import _C

    z = lambda *s: np.zeros(s)  # noqa: E731
    x, w = z(2, 6, 5, 4), z(6, 2, 3, 2)
    geom = ((1, 1), (0, 0, 0, 0), (1, 1), 2)
    good = dict(dy=z(2, 4, 4, 6), dx=z(2, 6, 5, 4), dw=z(6, 2, 3, 2), db=z(6))
    _C.conv2d_backward(x, w, *good.values(), *geom)
    _C.conv2d_backward(None, w, good["dy"], good["dx"], None, None, *geom)  # the data gradient alone: x not needed
    _C.conv2d_backward(x, w, good["dy"], None, good["dw"], None, *geom)  # the weight gradient alone
    for key, bad, exc, pattern in [
        ("dy", z(2, 4, 4, 5), ValueError, r"dy: expected shape \(2, 4, 4, 6\), got \(2, 4, 4, 5\)"),
        ("dx", _ro(z(2, 6, 5, 4)), ValueError, r"dx: expected a writable array, got a read-only one"),
        ("dw", z(6, 2, 3, 2).astype(np.float32), TypeError, r"dw: expected dtype float64, got float32"),
        ("db", z(12)[::2], ValueError, r"db: expected a C-contiguous array"),
    ]:
        with pytest.raises(exc, match=pattern):
            _C.conv2d_backward(x, w, *(good | {key: bad}).values(), *geom)
    with pytest.raises(TypeError, match=r"x: expected a numpy.ndarray for the weight gradient \(dw given\), got NoneType"):
        _C.conv2d_backward(None, w, good["dy"], good["dx"], good["dw"], None, *geom)
    with pytest.raises(TypeError, match=r"x: expected a numpy.ndarray \(or dx, whose shape is the input's\), got NoneType"):
        _C.conv2d_backward(None, w, good["dy"], None, None, good["db"], *geom)
    with pytest.raises(ValueError, match=r"dx: expected a 4-D array \(B, H, W, C_in\), got shape \(2, 6, 5\)"):
        _C.conv2d_backward(None, w, good["dy"], z(2, 6, 5), None, None, *geom)
