"""The window gather (compiled and NumPy) against windows built by hand, element by element."""

import sys

import numpy as np
import pytest

from pyrnn.timeseries import gather as gather_module
from pyrnn.timeseries import gather_windows
from pyrnn.timeseries.gather import gather_impl

COMPILED = gather_impl() == "cython"
IMPLS = ["numpy", pytest.param("cython", marks=pytest.mark.skipif(not COMPILED, reason="_gather not built"))]


def naive_windows(series, starts, L, H, cols):
    """x[b, l, c] = series[s + l, c], y[b, h, k] = series[s + L + h, cols[k]], with plain loops."""
    s2 = series.reshape(len(series), -1)
    x = np.zeros((len(starts), L, s2.shape[1]), s2.dtype)
    y = np.zeros((len(starts), H, len(cols)), s2.dtype)
    for b, s in enumerate(starts):
        for l in range(L):
            for c in range(s2.shape[1]):
                x[b, l, c] = s2[s + l, c]
        for h in range(H):
            for k, col in enumerate(cols):
                y[b, h, k] = s2[s + L + h, col]
    return x, y


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_windows_equal_a_naive_construction(impl, dtype):
    rng = np.random.default_rng(0 if dtype == np.float32 else 1)
    for _ in range(40):
        T, C = int(rng.integers(1, 60)), int(rng.integers(1, 5))
        L = int(rng.integers(1, T + 1))
        H = int(rng.integers(0, T - L + 1))
        B = int(rng.integers(0, 9))
        series = rng.standard_normal((T, C)).astype(dtype)
        if rng.integers(2):  # the same values as a strided view: the kernel's element-by-element path
            series = np.repeat(series, 2, axis=0)[::2]
        starts = rng.integers(0, T - L - H + 1, size=B)
        cols = rng.choice(C, size=int(rng.integers(1, C + 1)), replace=bool(rng.integers(2)))
        x, y = gather_windows(series, starts, L, H, cols, impl=impl)
        ex, ey = naive_windows(series, starts, L, H, cols)
        assert x.dtype == y.dtype == dtype and x.flags.c_contiguous and y.flags.c_contiguous
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layout", ["reversed", "every_other_row", "column_slice", "fortran", "readonly",
                                    "1d", "1d_strided"])
def test_any_memory_layout_is_read_in_place(impl, layout):
    rng = np.random.default_rng(2)
    base = rng.standard_normal((50, 3))
    series = {"reversed": base[::-1], "every_other_row": base[::2, ::-1], "fortran": np.asfortranarray(base),
              "readonly": base.copy(), "column_slice": base[:, :2], "1d": base[:, 1].copy(), "1d_strided": base[:, 1]}[layout]
    if layout == "readonly":
        series.setflags(write=False)
    starts = np.array([0, 7, 3, len(series) - 6])
    x, y = gather_windows(series, starts, 4, 2, target_cols=-1, impl=impl)
    ex, ey = naive_windows(np.asarray(series), starts, 4, 2, [np.asarray(series).reshape(len(series), -1).shape[1] - 1])
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)


def test_target_cols_forms():
    s = np.arange(30.0).reshape(10, 3)
    starts = np.array([1, 4])
    all_cols = gather_windows(s, starts, 2, 1)[1]
    np.testing.assert_array_equal(all_cols, s[[3, 6]][:, None, :])
    np.testing.assert_array_equal(gather_windows(s, starts, 2, 1, 1)[1], s[[3, 6]][:, None, [1]])
    np.testing.assert_array_equal(gather_windows(s, starts, 2, 1, [-1, 0])[1], s[[3, 6]][:, None, [2, 0]])


def test_fallback_to_numpy_warns_once_and_agrees(monkeypatch):
    rng = np.random.default_rng(3)
    series = rng.standard_normal((40, 2)).astype(np.float32)
    starts = rng.integers(0, 30, size=7)
    monkeypatch.setattr(gather_module, "_compiled", gather_module._UNSET)
    monkeypatch.setitem(sys.modules, "pyrnn.timeseries._gather", None)  # the import now fails
    with pytest.warns(RuntimeWarning, match="compiled window gather is unavailable"):
        x, y = gather_windows(series, starts, 5, 3, 0)
    ex, ey = naive_windows(series, starts, 5, 3, [0])
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)
    assert gather_impl() == "numpy"
    gather_windows(series, starts, 5, 3, 0)  # no second warning (warnings are errors here)
    with pytest.raises(RuntimeError, match="expected the compiled module"):
        gather_windows(series, starts, 5, 3, impl="cython")


S = np.zeros((20, 2), np.float32)


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(series=S.astype(np.int64)), TypeError, r"series: expected a float32 or float64 array, got dtype int64"),
        (dict(series=np.zeros((4, 5, 2))), ValueError, r"series: expected a 1-D \(T,\) or 2-D \(T, C\) array, got 3-D"),
        (dict(series=np.zeros((20, 0))), ValueError, r"series: expected at least one column, got shape \(20, 0\)"),
        (dict(starts=[0, 16]), ValueError, r"starts\[1\]: expected a start in \[0, 15\] .*got 16"),
        (dict(starts=[-1]), ValueError, r"starts\[0\]: expected a start in \[0, 15\]"),
        (dict(starts=[0.0]), TypeError, r"starts: expected integer start indices, got dtype float64"),
        (dict(starts=[[0]]), ValueError, r"starts: expected a 1-D array \(B,\), got 2-D"),
        (dict(input_len=0), ValueError, r"input_len: expected an integer >= 1, got 0"),
        (dict(input_len=2.0), TypeError, r"input_len: expected an integer, got float"),
        (dict(horizon=-1), ValueError, r"horizon: expected an integer >= 0, got -1"),
        (dict(input_len=19, horizon=2), ValueError, r"series: expected at least input_len \+ horizon = 21 steps, got 20"),
        (dict(target_cols=2), ValueError, r"target_cols\[0\]: expected a column index in \[-2, 2\), got 2"),
        (dict(target_cols=[]), ValueError, r"target_cols: expected at least one column"),
        (dict(target_cols=[0.5]), TypeError, r"target_cols: expected None, an int or a 1-D sequence of ints"),
        (dict(impl="fortran"), ValueError, r"impl: expected 'auto', 'cython' or 'numpy', got 'fortran'"),
    ],
)
def test_bad_arguments_are_refused_before_any_copy(kwargs, exc, pattern):
    args = dict(series=S, starts=[0, 3], input_len=4, horizon=1, target_cols=None, impl="auto") | kwargs
    with pytest.raises(exc, match=pattern):
        gather_windows(**args)


def test_the_compiled_gather_is_built():
    """`pip install .` compiles the Cython gather (Cython is a declared build requirement)."""
    assert gather_impl() == "cython"
