"""Every fast backend against the NumPy reference, on random shapes and the edge sizes 1."""

import zlib

import numpy as np
import pytest

import pyrnn

from helpers import CELLS, make_layer, random_problem, run

FAST = [b for b in ("cpp", "numba") if b in pyrnn.available_backends()]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}

SHAPES = [  # (B, T, I, H, num_layers, bidirectional)
    (1, 1, 1, 1, 1, False),
    (1, 1, 1, 1, 2, True),
    (3, 7, 5, 4, 1, False),
    (2, 5, 3, 6, 2, True),
    (4, 9, 1, 3, 3, False),
    (1, 12, 8, 1, 1, True),
    (5, 3, 16, 17, 2, False),
]


def _close(got, want, dtype, name):
    tol = TOL[dtype]
    # relative to the array's scale: gradients summed over T*B can be large
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=name)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}L{}{}".format(*s[:5], "bi" if s[5] else ""))
def test_backend_matches_reference(backend, dtype, cell, shape):
    B, T, I, H, L, bi = shape
    rng = np.random.default_rng(zlib.crc32(f"{backend}{dtype}{cell}{shape}".encode()))
    layer = make_layer(cell, I, H, L, bi, dtype=dtype, seed=rng.integers(1 << 30))
    x, state, dy, dstate = random_problem(layer, B, T, rng)
    want = run(layer, x, state, dy, dstate, "numpy")
    got = run(layer, x, state, dy, dstate, backend)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name].dtype == dtype, name
        _close(got[name], want[name], dtype, f"{backend} {name}")


@pytest.mark.parametrize("backend", FAST + ["numpy"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("B,T", [(0, 4), (3, 0), (0, 0)])
def test_empty_batch_or_sequence(backend, cell, B, T):
    """B = 0 or T = 0 returns correctly shaped empty results; the state passes through."""
    layer = make_layer(cell, 3, 2, num_layers=2, bidirectional=True, dtype=np.float32)
    x, state, dy, dstate = random_problem(layer, B, T, np.random.default_rng(0))
    out = run(layer, x, state, dy, dstate, backend)
    assert out["y"].shape == (B, T, 4)
    assert out["dx"].shape == (B, T, 3)
    parts = list(state) if isinstance(state, tuple) else [state]
    dparts = list(dstate) if isinstance(dstate, tuple) else [dstate]
    for k, (s0, ds) in enumerate(zip(parts, dparts)):
        assert out[f"state_T[{k}]"].shape == s0.shape
        if T == 0:  # the empty recurrence is the identity on the state
            np.testing.assert_array_equal(out[f"state_T[{k}]"], s0)
            np.testing.assert_array_equal(out[f"dstate_0[{k}]"], ds)
    for name, g in out.items():
        if name.startswith("grad "):
            assert not g.any(), name


def test_reference_is_not_compared_with_itself():
    assert "numpy" not in FAST
