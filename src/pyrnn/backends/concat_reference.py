"""The concatenation family's kernel contract, and its NumPy reference (the specification).

Legend: R = rows (every axis but the last, flattened), F_k = the last axis of part k, F = sum_k F_k.
Concatenation along the last axis is the channels of channels-last images (U-Net's skips) and the
features of sequences; split is its adjoint (the backward).

``concat_last(xs) -> y``
    ``xs``: a non-empty list of C-contiguous arrays of one float dtype (float32 or float64), equal but for
    the last axis, at least 1-D. ``y`` (..., F) new: ``y[..., off_k : off_k + F_k] = xs[k]``.

``split_last(y, sizes) -> parts``
    ``y`` C-contiguous float32/float64 (..., F), ``sizes`` non-negative Python ints summing to F. Each
    part new and C-contiguous: ``parts[k] = y[..., off_k : off_k + F_k]``.

Both copy values exactly. The ``check_*`` functions are part of the contract: every backend calls
them before any compiled code runs.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_kernel_array, check_kernel_input, is_int


def check_concat_last(xs):
    """Check the parts; returns (rows shape, [F_k], dtype)."""
    if not isinstance(xs, (list, tuple)) or not xs:
        raise ValueError(f"xs: expected a non-empty list of arrays, got {type(xs).__name__} {xs!r:.60}")
    first = xs[0]
    if not isinstance(first, np.ndarray) or first.ndim < 1:
        what = f"shape {first.shape}" if isinstance(first, np.ndarray) else type(first).__name__
        raise ValueError(f"xs[0]: expected an array of at least 1 axis, got {what}")
    dtype = check_kernel_input("xs[0]", first, first.ndim, "(..., F_0)")
    lead = first.shape[:-1]
    for k, x in enumerate(xs[1:], 1):
        if not isinstance(x, np.ndarray) or x.ndim != first.ndim or x.shape[:-1] != lead:
            what = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"xs[{k}]: expected shape {lead + ('F',)} (xs[0]'s but for the last axis), got {what}")
        check_kernel_array(f"xs[{k}]", x, dtype, x.shape, f"(..., F_{k})")
    return lead, [x.shape[-1] for x in xs], dtype


def check_split_last(y, sizes):
    """Check the split; returns the sizes as a list of ints."""
    check_kernel_input("y", y, y.ndim if isinstance(y, np.ndarray) and y.ndim >= 1 else 1, "(..., F)")
    if not isinstance(sizes, (list, tuple)) or not sizes or any(not is_int(s) or s < 0 for s in sizes):
        raise ValueError(f"sizes: expected a non-empty list of integers >= 0, got {sizes!r}")
    if sum(sizes) != y.shape[-1]:
        raise ValueError(f"sizes: expected sizes summing to y's last axis {y.shape[-1]}, got {list(sizes)} "
                         f"(sum {sum(sizes)})")
    return [int(s) for s in sizes]


# y[..., off_k : off_k + F_k] = xs[k]
def concat_last(xs):
    """See the module docstring."""
    check_concat_last(xs)
    return np.concatenate(xs, axis=-1)


# parts[k] = y[..., off_k : off_k + F_k]
def split_last(y, sizes):
    """See the module docstring."""
    sizes = check_split_last(y, sizes)
    return [part.copy(order="C") for part in np.split(y, np.cumsum(sizes)[:-1], axis=-1)]
