"""pyrnn: fast CPU training and inference of recurrent neural networks.

NumPy arrays in and out; kernels in C++ (pybind11), Numba and a NumPy reference,
all behind one contract (:mod:`pyrnn.backends.contract`).
"""

from . import (
    callbacks,
    datasets,
    interop,
    layers,
    losses,
    metrics,
    optim,
    tasks,
    timeseries,
    vision,
)
from ._buffers import empty_cache
from .backends import available_backends, get_backend, set_backend, use_backend
from .grad_mode import forward_scope, inference, is_grad_enabled, no_grad
from .layers import *  # noqa: F403 - every layer, as listed in pyrnn.layers.__all__
from .models import Input, Model, Sequential, fit_tbptt, recurrent_model, stream
from .serialization import load
from .threads import _apply_environment, get_num_threads, set_num_threads

_apply_environment()  # PYRNN_NUM_THREADS

__version__ = "0.1.0"

__all__ = [
    *layers.__all__,
    "Input", "Model", "Sequential", "load", "fit_tbptt", "recurrent_model", "stream",
    "no_grad", "inference", "forward_scope", "is_grad_enabled",
    "available_backends", "get_backend", "set_backend", "use_backend", "set_num_threads", "get_num_threads",
    "empty_cache",
    "callbacks", "datasets", "interop", "layers", "losses", "metrics", "optim", "tasks", "timeseries", "vision",
    "__version__",
]
