"""JIT flags for every Numba kernel, in one place (never hard-coded per function).

``cache=True`` keeps compiled kernels on disk between runs; ``nogil=True`` lets
other Python threads run while a kernel does; ``fastmath`` stays off so the
Numba backend matches the NumPy reference to float64 rounding; ``error_model="numpy"``
makes a division by zero give inf or NaN, as NumPy does, instead of raising. No kernel is
``parallel``: on top of the BLAS's thread pool, Numba's threads oversubscribe the cores.
"""

JIT = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")


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
