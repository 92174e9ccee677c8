"""One thread knob for everything pyrnn runs on: the BLAS behind the C++ and Numba GEMMs
(NumPy's and SciPy's OpenBLAS, via threadpoolctl) and Numba's thread pool.

``pyrnn.set_num_threads(n)`` caps them all at n, so that nothing oversubscribes the
cores when several pools are busy at once; ``pyrnn.get_num_threads()`` reads it back.
"""

from __future__ import annotations

import os

_state = {"n": None, "limiter": None}


def set_num_threads(n):
    """Cap the BLAS libraries loaded so far and Numba at ``n`` threads (None: undo the cap)."""
    from threadpoolctl import threadpool_limits

    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"set_num_threads: expected a positive integer or None, got {n!r}")
    if _state["limiter"] is not None:
        _state["limiter"].restore_original_limits()
        _state["limiter"] = None
    _state["n"] = n
    if n is not None:
        _state["limiter"] = threadpool_limits(limits=n)
    try:
        import numba

        numba.set_num_threads(min(n or numba.config.NUMBA_NUM_THREADS, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # the numba backend is optional at run time
        pass


def get_num_threads():
    """The cap set by :func:`set_num_threads`, or the machine's core count when none is set."""
    return _state["n"] or os.cpu_count() or 1
