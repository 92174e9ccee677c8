"""The Numba backend's Winograd F(2x2, 3x3) path (forward, dx, dw) and its team:
against the reference in float64 and float32, on the shapes that make partial tiles, padding that
reaches past the kernel, one pixel, batch 1; the same bits for one and two threads; a forked child.

Legend: B = batch, H/W = height/width, C = input channels, O = output channels, p = (top, bottom, left,
right) padding.
"""

import zlib

import numpy as np
import pytest

pytest.importorskip("numba")

import pyrnn  # noqa: E402
from pyrnn.backends import conv2d_numba as nb  # noqa: E402
from pyrnn.backends import conv2d_numba_winograd as wg  # noqa: E402
from pyrnn.backends import conv2d_reference as ref  # noqa: E402

from helpers import conv2d_close, conv2d_step, in_forked_child  # noqa: E402

# (B, H, W, C, O, p, bias): 3x3, stride 1, one group, > 8 channels
CASES = [
    (2, 7, 9, 9, 37, (1, 1, 1, 1), True),  # odd sizes: partial tiles in both directions
    (1, 6, 5, 12, 10, (0, 2, 1, 0), False),  # batch 1, asymmetric padding
    (3, 3, 3, 10, 9, (0, 0, 0, 0), True),  # padding 0, one output pixel
    (2, 8, 8, 16, 24, (0, 0, 0, 0), True),  # padding 0, whole tiles
    (1, 1, 1, 9, 11, (1, 1, 1, 1), True),  # a 1x1 image: every tap but the centre in the padding
    (2, 4, 5, 10, 11, (3, 2, 4, 3), False),  # padding past the kernel: dx's padding 2 - p is negative
    (5, 40, 37, 16, 12, (1, 1, 1, 1), True),  # several chunks of tile lines: the team, per member
    (1, 70, 6, 9, 9, (2, 0, 1, 1), True),  # a tall image: many lines of few tiles
]


def _ids(c):
    return "B{}H{}W{}C{}O{}-p{}".format(*c[:6]).replace(" ", "") + ("" if c[6] else "-nobias")


def _problem(case, dtype):
    B, H, W, C, O, p, bias = case
    rng = np.random.default_rng(zlib.crc32(str(case).encode()))
    x = rng.standard_normal((B, H, W, C)).astype(dtype)
    w = rng.standard_normal((O, C, 3, 3)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype) if bias else None
    HO, WO = ref.conv2d_output_size(H, W, (3, 3), (1, 1), p, (1, 1))
    dy = rng.standard_normal((B, HO, WO, O)).astype(dtype)
    return x, w, b, dy, ((1, 1), p, (1, 1), 1)


def test_the_rule_is_the_cpp_backends():
    w = np.zeros((9, 9, 3, 3))
    assert wg.fits(w, (1, 1), (1, 1), 1)
    assert not wg.fits(np.zeros((8, 9, 3, 3)), (1, 1), (1, 1), 1)  # 8 outputs
    assert not wg.fits(np.zeros((9, 8, 3, 3)), (1, 1), (1, 1), 1)  # 8 inputs
    assert not wg.fits(np.zeros((9, 9, 3, 2)), (1, 1), (1, 1), 1)
    assert not wg.fits(w, (1, 2), (1, 1), 1)
    assert not wg.fits(w, (1, 1), (2, 1), 1)
    assert not wg.fits(np.zeros((9, 3, 3, 3)), (1, 1), (1, 1), 3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_winograd_matches_reference(monkeypatch, case, dtype):
    calls = []
    for name in ("convolve", "data_gradient", "weight_gradient"):
        fn = getattr(wg, name)
        monkeypatch.setattr(wg, name, lambda *a, fn=fn, name=name: calls.append(name) or fn(*a))
    x, w, b, dy, geom = _problem(case, dtype)
    want, got = conv2d_step(ref, x, w, b, dy, geom), conv2d_step(nb, x, w, b, dy, geom)
    assert calls == ["convolve", "data_gradient", "convolve", "weight_gradient"]  # dx: a convolution of dy
    assert got.keys() == want.keys()
    for name in want:
        conv2d_close(got[name], want[name], dtype, name)


@pytest.mark.parametrize("case", [(0, 5, 6, 9, 10, (1, 1, 1, 1), True),  # batch 0: no output pixel
                                  (2, 0, 3, 9, 10, (2, 1, 1, 1), True)],  # H = 0: every tap in the padding
                         ids=_ids)
def test_empty_sizes(case):
    """Winograd writes every pixel of what it computes (its outputs start uninitialised): nothing left out."""
    x, w, b, dy, geom = _problem(case, np.float64)
    got, want = conv2d_step(nb, x, w, b, dy, geom), conv2d_step(ref, x, w, b, dy, geom)
    for name in want:
        conv2d_close(got[name], want[name], np.float64, name)


def test_data_gradient_alone():
    """dx without x (as ConvTranspose2D asks), through Winograd."""
    from pyrnn.backends.contract import Conv2dSaved

    x, w, b, dy, geom = _problem(CASES[0], np.float64)
    dx = nb.conv2d_backward(Conv2dSaved(None, x.shape, w, *geom), dy, None, None)
    conv2d_close(dx, conv2d_step(ref, x, w, b, dy, geom)["dx"], np.float64, "dx")


def test_the_weight_transform():
    """U[xi, c, o] = (G w[o, c] G^T)[xi], on a kernel whose transform is worked out by hand: w = a single 1 at
    (kh, kw) = (1, 1) gives G[:, 1] G[:, 1]^T = [0, 1/2, -1/2, 0] outer itself."""
    w = np.zeros((9, 9, 3, 3))
    w[2, 3, 1, 1] = 1.0
    U = wg.weights(w)
    g = np.array([0.0, 0.5, -0.5, 0.0])
    np.testing.assert_array_equal(U[:, 3, 2], np.outer(g, g).ravel())
    assert np.count_nonzero(U) == np.count_nonzero(np.outer(g, g))


@pytest.mark.skipif(pyrnn.threads._cpu_count() < 2, reason="one CPU: no team")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_the_team_gives_the_same_bits_as_one_thread(monkeypatch, dtype):
    """Forward and dx (tiles split over members) and dw (partial sums over fixed runs of chunks) do not
    depend on the thread count."""
    members = []
    run = wg.run_team
    monkeypatch.setattr(wg, "run_team", lambda P, *a: members.append(P) or run(P, *a))
    x, w, b, dy, geom = _problem((4, 30, 45, 16, 24, (1, 1, 1, 1), True), dtype)
    out = {}
    try:
        for threads in (1, 2):
            pyrnn.set_num_threads(threads)
            out[threads] = conv2d_step(nb, x, w, b, dy, geom)
    finally:
        pyrnn.set_num_threads(None)
    assert members == [1, 1, 1, 2, 2, 2]  # forward, dx, dw on one member, then on two
    for name in out[1]:
        np.testing.assert_array_equal(out[1][name], out[2][name], err_msg=name)
    want = conv2d_step(ref, x, w, b, dy, geom)
    for name in want:
        conv2d_close(out[2][name], want[name], dtype, name)


def _child_forward(x, w, q):
    q.put(nb.conv2d_forward(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), 1)[0])


@pytest.mark.skipif(pyrnn.threads._cpu_count() < 2, reason="one CPU: no team")
def test_a_forked_child_runs_the_layer_on_one_thread():
    """GNU OpenMP's pool does not survive fork(): a child of a process that ran the team would be
    terminated ("fork() called from a process already using GNU OpenMP") if it ran the team too."""
    x, w, _, _, _ = _problem(CASES[6], np.float32)
    want = nb.conv2d_forward(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), 1)[0]  # the parent's team has run
    got, exitcode = in_forked_child(_child_forward, x, w)
    assert exitcode == 0
    np.testing.assert_array_equal(got, want)


def test_the_partial_sums_of_dw_are_bounded_in_bytes(monkeypatch):
    """DW_SLOT_BYTES below one slot: one partial sum, so one member, and dw still right."""
    members = []
    run = wg.run_team
    monkeypatch.setattr(wg, "run_team", lambda P, *a: members.append(P) or run(P, *a))
    monkeypatch.setattr(wg, "DW_SLOT_BYTES", 1)
    x, w, b, dy, geom = _problem(CASES[6], np.float64)
    _, saved = ref.conv2d_forward(x, w, b, *geom)
    got, want = np.zeros_like(w), np.zeros_like(w)
    wg.weight_gradient(x, dy, 1, 1, got)
    ref.conv2d_backward(saved, dy, want, None, need_dx=False)
    assert members == [1]
    conv2d_close(got, want, np.float64, "dw")


@pytest.mark.skipif(pyrnn.threads._cpu_count() < 2, reason="one CPU: no team")
def test_under_the_workqueue_layer_only_the_main_thread_runs_a_team(monkeypatch):
    """Numba's workqueue layer aborts the process on two concurrent launches: other threads run serially."""
    import threading

    import numba

    from pyrnn.backends import _numba_config

    monkeypatch.setattr(numba, "threading_layer", lambda: "workqueue")
    seen = []
    t = threading.Thread(target=lambda: seen.append(_numba_config.team_size(4)))
    t.start()
    t.join()
    assert seen == [1] and _numba_config.team_size(4) == 2
    monkeypatch.setattr(numba, "threading_layer", lambda: "omp")
    t = threading.Thread(target=lambda: seen.append(_numba_config.team_size(4)))
    t.start()
    t.join()
    assert seen == [1, 2]
