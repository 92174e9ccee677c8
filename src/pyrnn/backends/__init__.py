"""Backend registry: which kernel implementations load, and which one is in use.

Three backends implement the one contract of :mod:`pyrnn.backends.contract`:

- ``cpp``: the compiled pybind11 extension (the fast path);
- ``numba``: ``@njit`` loops, no compiler needed at install time;
- ``numpy``: the reference, the readable specification.

The default is the fastest that loads; ``PYRNN_BACKEND`` or :func:`set_backend`
choose another. A backend that fails to load is skipped with a warning.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import warnings

#: fastest first
BACKENDS = ("cpp", "numba", "numpy")
_MODULES = {"cpp": "pyrnn.backends.cpp", "numba": "pyrnn.backends.numba_jit", "numpy": "pyrnn.backends.reference"}

_loaded: dict = {}
_failed: dict = {}
_current = None  # the process-wide choice (set_backend, PYRNN_BACKEND, or the fastest)
_local = threading.local()  # use_backend's choice for one thread


def _load(name):
    if name in _loaded:
        return _loaded[name]
    if name in _failed:
        return None
    try:
        module = importlib.import_module(_MODULES[name])
    except Exception as exc:  # a missing compiler, numba or scipy must not break `import pyrnn`
        _failed[name] = exc
        warnings.warn(f"pyrnn: backend {name!r} is unavailable ({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=3)
        return None
    _loaded[name] = module
    return module


def available_backends():
    """Names of the backends that load on this machine, fastest first."""
    return [name for name in BACKENDS if _load(name) is not None]


def _check_name(name):
    if name not in _MODULES:
        raise ValueError(f"unknown backend {name!r}: expected one of {list(BACKENDS)}")


def _require(name):
    _check_name(name)
    if _load(name) is None:
        raise RuntimeError(f"backend {name!r} failed to load: {_failed[name]!r}; available: {available_backends()}")


def set_backend(name):
    """Use backend ``name`` ('cpp', 'numba' or 'numpy') from now on, in every thread (a
    :func:`use_backend` block still decides inside it)."""
    global _current
    _require(name)
    _current = name


def get_backend():
    """Name of the backend in use in this thread."""
    global _current
    override = getattr(_local, "backend", None)
    if override is not None:
        return override
    if _current is None:
        wanted = os.environ.get("PYRNN_BACKEND", "").strip()
        if wanted:
            _check_name(wanted)
            if _load(wanted) is not None:
                _current = wanted
                return _current
            warnings.warn(f"pyrnn: PYRNN_BACKEND={wanted!r} is unavailable, using the fastest that loads", RuntimeWarning, stacklevel=2)
        _current = available_backends()[0]  # numpy always loads
    return _current


def backend_module(name=None):
    """The module implementing the kernel contract for ``name`` (default: current)."""
    name = name or get_backend()
    _check_name(name)
    module = _load(name)
    if module is None:
        raise RuntimeError(f"backend {name!r} failed to load: {_failed[name]!r}")
    return module


@contextlib.contextmanager
def use_backend(name):
    """Context manager: run a block on backend ``name`` in this thread only (other threads keep
    theirs, as with ``pyrnn.no_grad``), then restore the previous choice."""
    _require(name)
    previous = getattr(_local, "backend", None)
    _local.backend = name
    try:
        yield
    finally:
        _local.backend = previous
