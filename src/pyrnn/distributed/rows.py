"""Random draws for one rank's rows of a global batch, equal to one process's draws for those rows.

Legend: b = rows of the global batch, [s, e) = this rank's rows, k = rows of a tensor per batch
row (1, or T for ``TimeDistributed``'s (B*T, ...), or d for ``Dilated``'s (B*d, ...)).

One process draws a dropout mask for the whole batch, ``u = rng.random((.., b*k, ..))``, in C
order. Inside :func:`batch_rows`, a layer calling :func:`uniform` instead draws that same full
array from its generator (so the generator advances exactly as one process's) and keeps rows
``[s*k, e*k)`` of the batch axis: every rank's masks are one process's masks for its rows, and
every rank's generators stay equal. The price is N times the random numbers (each rank draws
the whole batch's). Outside :func:`batch_rows` it is ``rng.random(shape, dtype)``.

Nothing here imports MPI: the layers use it whether or not training is distributed.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

_local = threading.local()


@contextlib.contextmanager
def batch_rows(start, stop, total):
    """Within the block, the batch a layer sees is rows ``[start, stop)`` of a global batch of
    ``total`` rows (per thread; blocks nest, the innermost wins)."""
    if not 0 <= start <= stop <= total:
        raise ValueError(f"batch_rows: expected 0 <= start <= stop <= total, got {start}, {stop}, {total}")
    saved = getattr(_local, "rows", None)
    _local.rows = (start, stop, total)
    try:
        yield
    finally:
        _local.rows = saved


def current_rows():
    """``(start, stop, total)`` of the innermost :func:`batch_rows` block, or None."""
    return getattr(_local, "rows", None)


def uniform(rng, shape, axis=0, dtype=np.float64):
    """``rng.random(shape, dtype)``, or inside :func:`batch_rows` the rows of this rank of the
    draw one process makes for the global batch (see the module docstring).

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : tuple, the local tensor's shape; ``shape[axis]`` is the batch axis (b_local * k rows)
    axis : int, the batch axis (0, or 1 for time-major (T, B, ...) tensors)
    dtype : float32 or float64
    """
    rows = current_rows()
    if rows is None:
        return rng.random(shape, dtype=dtype)
    start, stop, total = rows
    n = stop - start
    if n == 0 or shape[axis] % n:
        raise ValueError(f"uniform: expected a batch axis of a multiple of this rank's {n} rows "
                         f"(rows [{start}, {stop}) of {total}), got shape {tuple(shape)} (axis {axis})")
    k = shape[axis] // n
    full = list(shape)
    full[axis] = total * k
    u = rng.random(tuple(full), dtype=dtype)
    return u[(slice(None),) * axis + (slice(start * k, stop * k),)]
