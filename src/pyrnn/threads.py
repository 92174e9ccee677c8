"""One thread knob for everything pyrnn runs on: the C++ kernels' own thread team and the BLAS
behind the C++ and Numba GEMMs (NumPy's and SciPy's OpenBLAS, via threadpoolctl). The Numba
kernels run no parallel loops of their own (their speed is the BLAS's), so Numba's pool is left alone.

``pyrnn.set_num_threads(n)`` caps them all at n, so that nothing oversubscribes the
cores when several pools are busy at once; ``pyrnn.get_num_threads()`` reads it back.
While the C++ team runs a layer, each member calls the BLAS single-threaded on its own
slice, so the team and the BLAS pool never compete (csrc/common/gemm.h).
"""

from __future__ import annotations

import os
import warnings

from ._checks import check_int

_state = {"n": None, "limiter": None}


def set_num_threads(n):
    """Cap the BLAS libraries loaded so far and the C++ kernels' team at ``n`` threads (None: undo the cap).

    ``n`` above the CPUs this process may run on is lowered to that count, with a
    RuntimeWarning: more compute threads than cores only makes them wait for each other."""
    from threadpoolctl import threadpool_limits

    if n is not None:
        n = check_int("set_num_threads: n", n, 1, None)
        if n > _cpu_count():
            warnings.warn(f"set_num_threads: {n} threads requested, using {_cpu_count()} "
                          "(the CPUs this process may run on)", RuntimeWarning, stacklevel=2)
            n = _cpu_count()
    if _state["limiter"] is not None:
        _state["limiter"].restore_original_limits()
        _state["limiter"] = None
    _state["n"] = n
    if n is not None:
        _state["limiter"] = threadpool_limits(limits=n)
    try:
        from . import _C

        _C.set_num_threads(n or _cpu_count())
    except ImportError:  # the cpp backend is optional at run time
        pass


def _cpu_count():
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads():
    """The cap set by :func:`set_num_threads`, or the CPUs this process may use when none is set."""
    return _state["n"] or _cpu_count()
