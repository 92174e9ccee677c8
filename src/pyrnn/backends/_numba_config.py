"""JIT flags for every Numba kernel, in one place (never hard-coded per function).

``cache=True`` keeps compiled kernels on disk between runs; ``nogil=True`` lets
other Python threads run while a kernel does; ``fastmath`` stays off so the
Numba backend matches the NumPy reference to float64 rounding; ``error_model="numpy"``
makes a division by zero give inf or NaN, as NumPy does, instead of raising.

``JIT_PARALLEL`` (``prange`` over the outermost loop, Numba's threads) only for a kernel that is the
only pool running while it runs: its members call the BLAS on one thread each
(``pyrnn.threads.blas_one_thread``), as the C++ team's do - on top of the BLAS's own pool, Numba's
threads oversubscribe the cores. Today: the Winograd convolution (``conv2d_numba_winograd``).
"""

JIT = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")
JIT_PARALLEL = dict(JIT, parallel=True)


# ------------------------------------------------------------------ the team
# A JIT_PARALLEL kernel runs through run_team: members = pyrnn.get_num_threads() (no more than the pieces
# of work nor Numba's threads), the BLAS on one thread meanwhile, and the same function compiled without
# `parallel` (prange as range) for one member: no Numba pool woken, and in a child forked from a process
# that ran the team (GNU OpenMP's pool does not survive fork()).
import os  # noqa: E402
import types  # noqa: E402

import numba  # noqa: E402

_forked = []
os.register_at_fork(after_in_child=lambda: _forked.append(True))


def team_kernels(fn):
    """(team, serial): ``fn`` (a prange over its members) compiled with JIT_PARALLEL, and compiled with JIT
    as a copy named ``<name>_serial`` - its own entry in the disk cache, which is keyed by the function's
    name and not by the flags (under one name, the serial dispatcher loaded the parallel code)."""
    serial = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__, fn.__closure__)
    serial.__qualname__, serial.__module__ = fn.__qualname__ + "_serial", fn.__module__
    return numba.njit(**JIT_PARALLEL)(fn), numba.njit(**JIT)(serial)


def team_size(pieces):
    """Members for ``pieces`` pieces of work (the kernel's prange count): ``pyrnn.get_num_threads()``, no more
    than the pieces nor Numba's threads; one after a fork, and in a thread that may not launch a team."""
    from ..threads import get_num_threads

    if _forked or not _layer_takes_concurrent_launches():
        return 1
    return max(1, min(get_num_threads(), numba.config.NUMBA_NUM_THREADS, pieces))


def _layer_takes_concurrent_launches():
    """Whether a team may start from this thread: Numba's ``workqueue`` layer (the fallback without TBB or
    OpenMP) aborts the process when two threads launch at once, so under it only the main thread runs a
    team; before the first launch the layer is unknown, and the main thread makes that launch."""
    import threading

    try:
        return numba.threading_layer() != "workqueue" or threading.current_thread() is threading.main_thread()
    except ValueError:  # no parallel launch yet
        return threading.current_thread() is threading.main_thread()


def run_team(members, team, serial, *args):
    """``team(*args)`` on ``members`` Numba threads (``serial(*args)`` for one), the BLAS on one thread."""
    from ..threads import blas_one_thread

    with blas_one_thread():
        if members > 1:
            numba.set_num_threads(members)  # this thread's launches (Numba's setting is per calling thread)
            return team(*args)
        return serial(*args)


# ------------------------------------------------------------- the compile notice
# Numba compiles a kernel on its first call with new argument types (20-40 s for every kernel
# with an empty cache) and says nothing. A listener on Numba's "numba:compile" event (fired on a
# real compilation, not on a load from the disk cache) logs one line when one of pyrnn's kernels
# starts compiling; the inner functions it compiles on the way stay quiet.
import logging  # noqa: E402
import re  # noqa: E402

log = logging.getLogger("pyrnn.numba")
_installed = []


def install_compile_notice():
    """Log "compiling ..." on the ``pyrnn.numba`` logger (WARNING, so it shows without any logging
    setup; ``logging.getLogger("pyrnn.numba").setLevel(logging.ERROR)`` silences it) whenever a
    top-level pyrnn kernel starts compiling. Idempotent."""
    if _installed:
        return
    from numba.core import event

    class CompileNotice(event.Listener):
        depth = 0

        def on_start(self, ev):
            CompileNotice.depth += 1
            dispatcher = (ev.data or {}).get("dispatcher")
            func = getattr(dispatcher, "py_func", None)
            if CompileNotice.depth == 1 and getattr(func, "__module__", "").startswith("pyrnn."):
                types = " and ".join(sorted(set(re.findall(r"float(?:32|64)", str(ev.data.get("args", ()))))))
                log.warning("pyrnn: Numba is compiling %s.%s for %s (once, up to ~30 s: it is cached on disk for later "
                            "runs; `python -m pyrnn warmup` compiles every kernel ahead of time)",
                            func.__module__.rsplit(".", 1)[-1], func.__name__, types or "these arguments")

        def on_end(self, ev):
            CompileNotice.depth -= 1

    listener = CompileNotice()
    event.register("numba:compile", listener)
    _installed.append(listener)


install_compile_notice()
