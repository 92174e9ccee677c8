"""One thread knob for everything pyrnn runs on: the C++ kernels' own thread team and the BLAS
behind the C++ and Numba GEMMs (NumPy's and SciPy's OpenBLAS, via threadpoolctl). The Numba kernels
that run a team of their own (``JIT_PARALLEL``: the conv2d Winograd path and weight gradient) take n
members at each call (``backends._numba_config.run_team``), the BLAS on one thread meanwhile.

``pyrnn.set_num_threads(n)`` caps them all at n, so that nothing oversubscribes the
cores when several pools are busy at once; ``pyrnn.get_num_threads()`` reads it back.
The environment variable ``PYRNN_NUM_THREADS`` (an integer >= 1), read once at ``import pyrnn``,
sets the same cap; a value that is not such an integer is ignored with a RuntimeWarning that names it.

Without a cap the C++ team still never takes more cores than the machine has free: a time loop's
team shrinks to the cores the other runnable threads leave (csrc/common/threads.h), and a kernel
whose work is too small for a team calls the BLAS single-threaded as well.
While the C++ team runs a layer, each member calls the BLAS single-threaded on its own
slice, so the team and the BLAS pool never compete (csrc/common/gemm.h).

:func:`blas_one_thread` does the same for NumPy's own products in a block (``Dense`` uses it for
products of fewer than :data:`SMALL_GEMM_FLOPS`): waking OpenBLAS' pool for a small product costs
more than the second thread gains, and its workers then spin beside the C++ team's (a LeNet-5
training step B=64 on 2 shared, loaded cores: 175 ms with the pool, 51 ms without).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
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


#: products (2*M*N*K flops) below this run NumPy's BLAS on one thread (see :func:`blas_one_thread`);
#: below ONE_THREAD_GEMM_FLOPS OpenBLAS does so itself (M*N*K < 65536 * GEMM_MULTITHREAD_THRESHOLD = 4)
SMALL_GEMM_FLOPS, ONE_THREAD_GEMM_FLOPS = 1 << 23, 1 << 19

_one = {"libs": {}, "users": 0, "saved": [], "lock": threading.Lock()}


def _openblas_threads(owner):
    """(get_num_threads, set_num_threads) of the OpenBLAS ``owner`` ("numpy" or "scipy": the one in
    numpy.libs/scipy.libs) loaded, as ctypes functions, or None. NumPy's is the pair the C++ kernels'
    single-thread sections use (see :mod:`pyrnn.backends.cpp`); SciPy's is the BLAS behind Numba's np.dot."""
    if owner not in _one["libs"]:
        lib = None
        try:
            from threadpoolctl import threadpool_info

            if owner == "scipy":
                import scipy.linalg.cython_blas  # noqa: F401 - loads SciPy's OpenBLAS, as Numba's np.dot does
            paths = [info["filepath"] for info in threadpool_info() if info.get("internal_api") == "openblas"
                     and owner in os.path.basename(os.path.dirname(info.get("filepath", "")))]
            dll = ctypes.CDLL(paths[0]) if paths else None
        except (ImportError, OSError):
            dll = None
        for prefix in ("scipy_openblas_", "openblas_"):
            for suffix in ("64_", ""):
                get, put = (getattr(dll, f"{prefix}{what}_num_threads{suffix}", None) for what in ("get", "set"))
                if lib is None and get is not None and put is not None:
                    get.argtypes, get.restype, put.argtypes, put.restype = [], ctypes.c_int, [ctypes.c_int], None
                    lib = (get, put)
        _one["libs"][owner] = lib
    return _one["libs"][owner]


def _numpy_openblas_threads():
    """:func:`_openblas_threads` of NumPy's OpenBLAS."""
    return _openblas_threads("numpy")


@contextlib.contextmanager
def blas_one_thread():
    """Run the BLAS calls in this block on one thread: NumPy's OpenBLAS (NumPy's products) and SciPy's
    (Numba's np.dot); nothing happens with another BLAS.

    The thread count is OpenBLAS' own, one for the process, so the rule is the C++ kernels'
    (``BlasOneThread`` in csrc/common/gemm.h): blocks in several threads share one count and the
    last one out restores the library's count, and only if it was above one on entering (one may
    be a C++ kernel's section then, which restores it itself). A ``set_num_threads`` made in
    another thread while a block is open is undone when the block closes."""
    libs = [lib for lib in (_openblas_threads("numpy"), _openblas_threads("scipy")) if lib is not None]
    with _one["lock"]:
        _one["users"] += 1
        if _one["users"] == 1:
            _one["saved"] = [(put, get()) for get, put in libs]
            for put, n in _one["saved"]:
                if n > 1:
                    put(1)
    try:
        yield
    finally:
        with _one["lock"]:
            _one["users"] -= 1
            if _one["users"] == 0:
                for put, n in _one["saved"]:
                    if n > 1:
                        put(n)


def gemm_threads(flops):
    """The context for a NumPy product of ``flops``: :func:`blas_one_thread` from
    :data:`ONE_THREAD_GEMM_FLOPS` up to :data:`SMALL_GEMM_FLOPS`, and above it too while the machine
    is busy (the C++ kernels' load sample says the other runnable threads leave fewer cores than the
    cap: a BLAS thread that is descheduled stalls the product), else one that changes nothing (the
    block costs ~5 us: below, OpenBLAS runs one thread anyway)."""
    if flops < ONE_THREAD_GEMM_FLOPS or (flops >= SMALL_GEMM_FLOPS and not _machine_busy()):
        return contextlib.nullcontext()
    return blas_one_thread()


#: OpenBLAS splits a dot product over its threads above this many elements (its interface/dot.c)
THREADED_DOT_ELEMENTS = 10000


def dot_threads(n):
    """The context for NumPy dot products of ``n``-element vectors (gradient norms): :func:`blas_one_thread`
    where OpenBLAS would wake its pool for them (n > :data:`THREADED_DOT_ELEMENTS`) and the work is small
    (2n < :data:`SMALL_GEMM_FLOPS`) or the machine busy, else one that changes nothing. (Regression: the
    gradient norm of ``clip_norm=1.0`` woke the pool for an LSTM(64)'s 16384 W_hh gradients at every
    step: the adding problem's fit step on a loaded machine, 235 -> 182 ms; one thread: 164 ms.)"""
    if n <= THREADED_DOT_ELEMENTS or (2 * n >= SMALL_GEMM_FLOPS and not _machine_busy()):
        return contextlib.nullcontext()
    return blas_one_thread()


def _machine_busy():
    """Whether the C++ kernels' load sample leaves fewer free cores than their cap (False without them)."""
    try:
        from . import _C
    except ImportError:
        return False
    return _C._free_threads() < _C.get_num_threads()


ENV_VAR = "PYRNN_NUM_THREADS"


def _apply_environment(environ=None):
    """``set_num_threads(int(PYRNN_NUM_THREADS))`` when the variable is set and not empty (called by
    ``import pyrnn``); returns the cap set, or None. A value other than an integer >= 1 changes nothing
    and warns (RuntimeWarning) with the value it got: a typo must not stop the import of a library, nor
    pass silently."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    if not value:
        return None
    try:
        n = int(value, 10)
    except ValueError:
        n = 0
    if n < 1:
        warnings.warn(f"{ENV_VAR}: expected an integer >= 1, got {value!r}; ignored (no thread cap)",
                      RuntimeWarning, stacklevel=2)
        return None
    set_num_threads(n)
    return get_num_threads()
