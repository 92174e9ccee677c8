"""One rule for constructor arguments everywhere: a wrong type raises TypeError, a wrong value
ValueError, each naming the argument; no silent coercion; sizes bounded."""

import time

import numpy as np
import pytest

import pyrnn
from pyrnn.layers import AvgPool1D, Conv1D, Dense, Dilated, Dropout, Embedding, MaxPool1D

RECURRENT = [pyrnn.RNN, pyrnn.LSTM, pyrnn.GRU]


@pytest.mark.parametrize("cls", RECURRENT)
@pytest.mark.parametrize("value", ["False", "True", 0.5, float("nan"), [3], 1, None])
def test_bool_arguments_take_only_bools(cls, value):
    """Regression: bidirectional="False" (any non-empty string, 0.5, NaN, [3]) built a bidirectional layer."""
    for name in ("bidirectional", "bias", "skip"):
        with pytest.raises(TypeError, match=rf"{name}: expected True or False, got"):
            cls(3, 4, **{name: value})
    assert cls(3, 4, bidirectional=np.bool_(True)).bidirectional is True


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_float_arguments_must_be_finite(value):
    """Regression: forget_bias=nan gave NaN outputs."""
    with pytest.raises(ValueError, match=r"forget_bias: expected a finite number, got"):
        pyrnn.LSTM(3, 4, forget_bias=value)
    with pytest.raises(ValueError, match=r"dropout: expected a finite number in \[0, 1\), got"):
        pyrnn.GRU(3, 4, dropout=value)
    with pytest.raises(ValueError, match=r"p: expected a finite number in \[0, 1\), got"):
        Dropout(value)
    with pytest.raises(TypeError, match=r"forget_bias: expected a real number, got str"):
        pyrnn.LSTM(3, 4, forget_bias="1")


@pytest.mark.parametrize(
    "make",
    [lambda d: pyrnn.LSTM(3, 4, dtype=d), lambda d: Dense(3, 4, dtype=d), lambda d: Conv1D(3, 4, 2, dtype=d),
     lambda d: Embedding(5, 2, dtype=d)],
    ids=["LSTM", "Dense", "Conv1D", "Embedding"],
)
@pytest.mark.parametrize("dtype", [None, "0", 0, "float16", np.int64, float, "f4"])
def test_dtypes_are_float32_or_float64_by_name(make, dtype):
    """Regression: dtype=None silently meant float64; dtype='0' said "Cannot interpret '0' as a data
    type", naming no argument."""
    with pytest.raises(TypeError, match=r"dtype: expected float32(, float64 or 'bfloat16'| or float64), got"):
        make(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float32", "float64", np.dtype("float32"), np.dtype(">f8")])
def test_every_spelling_of_the_two_dtypes_works(dtype):
    layer = pyrnn.GRU(3, 4, dtype=dtype, seed=0)
    assert layer.dtype in (np.float32, np.float64) and layer.dtype.isnative


@pytest.mark.parametrize(
    "make",
    [lambda s: pyrnn.RNN(3, 4, seed=s), lambda s: pyrnn.LSTM(3, 4, seed=s), lambda s: pyrnn.GRU(3, 4, seed=s),
     lambda s: Conv1D(3, 4, 2, seed=s), lambda s: Dense(3, 4, seed=s), lambda s: Dropout(0.5, seed=s)],
    ids=["RNN", "LSTM", "GRU", "Conv1D", "Dense", "Dropout"],
)
@pytest.mark.parametrize("seed, exc", [(-1, ValueError), (True, TypeError), ("abc", TypeError), (1.5, TypeError)])
def test_seeds_are_checked_in_one_place(make, seed, exc):
    """Regression: seed=-1/True/"abc" gave NumPy's SeedSequence errors on RNN/LSTM/GRU/Conv1D."""
    with pytest.raises(exc, match=r"seed: expected an integer"):
        make(seed)


def test_big_endian_input_keeps_its_precision():
    """Regression: MaxPool1D on big-endian float64 returned float32."""
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(">f8")
    for layer in (MaxPool1D(2), AvgPool1D(2)):
        with pyrnn.no_grad():
            y = layer.forward(x)
        assert y.dtype == np.float64
        with pyrnn.no_grad():
            np.testing.assert_array_equal(y, layer.forward(x.astype(np.float64)))


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: pyrnn.LSTM(3, 4, num_layers=2**40), r"num_layers: expected an integer <= 1024, got 1099511627776"),
        (lambda: pyrnn.GRU(3, 2**40), r"hidden_size: expected an integer <= 2147483647, got"),
        (lambda: Conv1D(3, 4, 2, padding=2**62), r"padding: expected an integer <= 2147483647, got"),
        (lambda: Conv1D(3, 4, 2, padding=(0, 2**62)), r"padding\[1\]: expected an integer <= 2147483647, got"),
        (lambda: MaxPool1D(2**40), r"kernel_size: expected an integer <= 2147483647, got"),
        (lambda: Dilated(pyrnn.GRU(2, 3), 2**40), r"dilation: expected an integer <= 2147483647, got"),
    ],
    ids=["num_layers", "hidden_size", "padding", "padding-pair", "pool-kernel", "dilation"],
)
def test_sizes_are_bounded_with_a_clear_error_at_once(make, pattern):
    """Regression: LSTM(3, 4, num_layers=2**40) never returned; padding=2**62 gave NumPy's
    "Maximum allowed dimension exceeded"."""
    start = time.perf_counter()
    with pytest.raises(ValueError, match=pattern):
        make()
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("shape, dtype, refused", [
    ((3, 2**31, 2**31, 1), np.float32, True), ((3, 2**29, 2**29, 1), np.float64, False), ((0, 2**31 + 2, 2**31 + 1, 1), np.float32, True),
    ((2**60, 1), np.float32, False), ((2**60, 1), np.float64, True), ((0, 0), np.float64, False),
])
def test_check_array_size_refuses_what_numpy_calls_too_big(shape, dtype, refused):
    """Found by the API fuzz (Conv2D with padding 2**31 - 1; with an empty batch, Conv2D#9 of seed 101):
    NumPy's own "array is too big" was the error; check_array_size refuses the same shapes first."""
    from pyrnn._checks import check_array_size

    try:
        np.empty(shape, dtype)
        numpy_refuses = False
    except ValueError:
        numpy_refuses = True
    except MemoryError:  # representable, just more than this machine has
        numpy_refuses = False
    assert numpy_refuses == refused
    if refused:
        with pytest.raises(ValueError, match=rf"x: expected sizes whose output fits in an array, got output shape \({shape[0]}, "):
            check_array_size("x", shape, dtype, "output")
    else:
        check_array_size("x", shape, dtype, "output")
