"""pyrnn: fast CPU training and inference of recurrent neural networks.

NumPy arrays in and out; kernels in C++ (pybind11), Numba and a NumPy reference,
all behind one contract (:mod:`pyrnn.backends.contract`).
"""

from .backends import available_backends, get_backend, set_backend, use_backend
from .layers import GRU, LSTM, RNN, Layer
from .layers.base import is_grad_enabled, no_grad
from .models import Input, Model, Sequential
from .serialization import load
from . import interop  # noqa: E402,F401

__version__ = "0.1.0"

__all__ = ["RNN", "LSTM", "GRU", "Layer", "no_grad", "is_grad_enabled", "Input", "Model", "Sequential", "load", "available_backends", "get_backend", "set_backend", "use_backend", "__version__"]
