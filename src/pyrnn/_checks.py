"""Input checks shared by the Python layer: every message says what was expected and what came."""

from __future__ import annotations

import math
import numbers

import numpy as np


def as_array(name, value, what="an array"):
    """``value`` as a NumPy array; None, strings, mappings and ragged nested lists raise TypeError."""
    if isinstance(value, np.ndarray):
        return value
    if value is None or isinstance(value, (str, bytes, dict)):
        raise TypeError(f"{name}: expected {what}, got {type(value).__name__}")
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists and the like
        raise TypeError(f"{name}: expected {what}, got {type(value).__name__} that NumPy cannot make an array of ({exc})") from None


def float_input(name, value, dtype=None):
    """``value`` as a C-contiguous float32 or float64 array of any rank (0-D included).

    With a ``dtype``, any float array is cast to it (layers with parameters, and a ``dy``
    in the dtype of its forward); with ``dtype=None`` the array keeps its own float dtype
    (layers without parameters follow their input; float16 is widened, losslessly, to
    float32). Integer, boolean, complex and object arrays raise TypeError: silently
    rounding them would hide a bug in the caller's data pipeline.
    """
    arr = as_array(name, value, "an array of floats")
    if arr.dtype.kind == "f" and not arr.dtype.isnative:  # big-endian data keeps its precision
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if dtype is not None:
        if arr.dtype.kind != "f":
            raise TypeError(f"{name}: expected a floating-point array ({np.dtype(dtype).name}), got dtype {arr.dtype}")
        return np.asarray(arr, dtype=dtype, order="C")
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {arr.dtype}")
    return np.asarray(arr, order="C")


def as_float_array(name, value, dtype):
    """``value`` as a C-contiguous array of ``dtype`` (see :func:`float_input`)."""
    return float_input(name, value, dtype)


def check_lengths(lengths, batch, time, minimum=0):
    """Valid steps per sample: integers (batch,) in [minimum, time], as int64."""
    arr = as_array("lengths", lengths, "integers (batch,)")
    if arr.size == 0 and not isinstance(lengths, np.ndarray):
        arr = arr.astype(np.int64)  # a list [] for an empty batch (NumPy reads it as float64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected integers, got dtype {arr.dtype}")
    check_shape("lengths", arr, (batch,), "(batch,)")
    bad = np.flatnonzero((arr < minimum) | (arr > time))
    if bad.size:
        raise ValueError(f"lengths[{bad[0]}]: expected a value in [{minimum}, {time}] (the time axis of x), got {arr[bad[0]]}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def check_shape(name, arr, expected, labels=None):
    """Raise ValueError unless ``arr.shape == expected``; ``labels`` name the axes."""
    if arr.shape != tuple(expected):
        what = f" {labels}" if labels else ""
        raise ValueError(f"{name}: expected shape {tuple(expected)}{what}, got {arr.shape}")


_INTP_MAX = int(np.iinfo(np.intp).max)


def check_array_size(name, shape, dtype, what):
    """Refuse, before anything is allocated, an array no machine can hold: more bytes than an index
    can address (where NumPy would say "array is too big"; like NumPy, the sizes other than 0 count,
    so an empty batch of such images is refused too). A ValueError names the shape that the sizes
    lead to; an array that merely exceeds this machine's memory is left to MemoryError."""
    n = math.prod(map(int, shape))
    if n and n * np.dtype(dtype).itemsize <= _INTP_MAX:  # the common case, one product
        return
    if math.prod(int(s) for s in shape if s) * np.dtype(dtype).itemsize > _INTP_MAX:
        raise ValueError(f"{name}: expected sizes whose {what} fits in an array, got {what} shape {tuple(shape)} "
                         f"({n} elements of {np.dtype(dtype).name})")


def check_ndim(name, arr, ndim, labels):
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array {labels}, got {arr.ndim}-D with shape {arr.shape}")


def check_finite(name, arr):
    """Raise ValueError naming the first NaN/inf entry of a float array."""
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name}: expected finite values, got {arr[tuple(bad)]} at index {tuple(int(i) for i in bad)}")


# --------------------------------------------------------------- constructor arguments
# One rule everywhere: a wrong type raises TypeError, a wrong value ValueError, each naming the
# argument. Sizes are bounded, so a typo (or a crafted checkpoint config) cannot ask for unbounded
# work: MAX_SIZE keeps every size inside the kernels' 32-bit index range.

#: the largest size (features, units, channels, kernel, stride, padding, ...) an argument may take
MAX_SIZE = 2**31 - 1
#: the most stacked recurrent layers one layer object may have
MAX_LAYERS = 1024


def is_int(value):
    """An integer that is not a bool (Python's int first: the ABC check costs ~1 us a call)."""
    return type(value) is int or (not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Integral))


def is_real(value):
    """A real number that is not a bool (Python's float and int first)."""
    return type(value) in (float, int) or (not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Real))


def check_int(name, value, minimum=None, maximum=MAX_SIZE):
    """``value`` as an int in [minimum, maximum]: bools, floats and strings raise TypeError."""
    if not is_int(value):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: expected an integer <= {maximum}, got {value}")
    return value


def check_bool(name, value):
    """``value`` as a bool: only ``True``/``False`` (and NumPy bools) are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_float(name, value, minimum=None, maximum=None, *, above=None, below=None):
    """``value`` as a finite float in [minimum, maximum] (and > ``above``, < ``below`` if given)."""
    if not is_real(value):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    bad = not math.isfinite(value) or (minimum is not None and value < minimum) \
        or (maximum is not None and value > maximum) or (above is not None and value <= above) \
        or (below is not None and value >= below)
    if bad:
        if minimum is None and maximum is None and above is None and below is None:
            raise ValueError(f"{name}: expected a finite number, got {value!r}")
        lo = f"[{minimum:g}" if minimum is not None else (f"({above:g}" if above is not None else "(-inf")
        hi = f"{below:g})" if below is not None else ("inf)" if maximum is None else f"{maximum:g}]")
        raise ValueError(f"{name}: expected a finite number in {lo}, {hi}, got {value!r}")
    return value


_DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}


def check_dtype(name, value):
    """float32 or float64, given as ``np.float32``/``np.float64``, a NumPy dtype or its name;
    anything else (another dtype, None, a typo) raises TypeError naming the argument."""
    dtype = None
    if isinstance(value, str):
        dtype = _DTYPES.get(value)
    elif isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        dtype = np.dtype(value).newbyteorder("=")
    if dtype is None or dtype not in _DTYPES.values():
        got = np.dtype(value).name if dtype is not None else f"{type(value).__name__} {value!r}"
        raise TypeError(f"{name}: expected float32 or float64, got {got}")
    return dtype


#: the spelling of the bfloat16 mixed-precision dtype (see :mod:`pyrnn.backends.bfloat16`)
BFLOAT16 = "bfloat16"


def check_layer_dtype(name, value, bfloat16_ok):
    """A layer's dtype: ``(array dtype, bfloat16)``. float32/float64 as :func:`check_dtype`; the
    string ``"bfloat16"`` (exactly) where ``bfloat16_ok`` gives float32 arrays whose matrix
    products run in bfloat16 (mixed precision: :mod:`pyrnn.backends.bfloat16`)."""
    if isinstance(value, str) and value == BFLOAT16:
        if not bfloat16_ok:
            raise TypeError(f"{name}: expected float32 or float64, got 'bfloat16' (bfloat16 is offered by RNN, LSTM, "
                            "GRU, Dense and Conv1D)")
        return np.dtype(np.float32), True
    try:
        return check_dtype(name, value), False
    except TypeError as exc:
        if not bfloat16_ok:
            raise
        raise TypeError(str(exc).replace("expected float32 or float64", "expected float32, float64 or 'bfloat16'")) from None


def check_seed(name, value):
    """None or a non-negative int (kept in ``get_config``, so it must be JSON-serialisable)."""
    if value is None:
        return None
    return check_int(name, value, 0, None)


def check_choice(name, value, choices):
    """``value`` if it is one of ``choices`` (strings)."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {list(choices)}, got {type(value).__name__} {value!r}")
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")
    return value


def check_kernel_array(name, a, dtype, shape, labels, writable=False):
    """A kernel argument: exactly an ndarray of ``dtype`` and ``shape``, C-contiguous (and writable
    when the kernel writes it). The backends' contract checks, shared by every kernel family."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype).name}, got {a.dtype}")
    if a.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)} {labels}, got {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array, got strides {a.strides}")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name}: expected a writable array, got a read-only one")


def check_kernel_input(name, x, ndim, labels):
    """The array a kernel starts from: an ndarray of float32 or float64 with ``ndim`` axes, named
    by ``labels`` (e.g. "(B, H, W, C)"), C-contiguous; returns its dtype."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected dtype float32 or float64, got {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array {labels}, got shape {x.shape}")
    check_kernel_array(name, x, x.dtype, x.shape, labels)
    return x.dtype
