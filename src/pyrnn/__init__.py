"""pyrnn: fast CPU training and inference of recurrent neural networks.

NumPy arrays in and out; kernels in C++ (pybind11), Numba and a NumPy reference,
all behind one contract (:mod:`pyrnn.backends.contract`).
"""

from . import callbacks, datasets, interop, losses, metrics, optim, tasks, timeseries
from .backends import available_backends, get_backend, set_backend, use_backend
from .layers import (
    GELU, GRU, LSTM, RNN, Add, AvgPool1D, Concatenate, Conv1D, Dense, Dilated, Dropout, Embedding, FirstStep, Identity,
    LastStep, Layer, LeakyReLU, MaxPool1D, ReLU, RepeatVector, Sigmoid, Softmax, Tanh, TimeDistributed,
)
from .grad_mode import inference, is_grad_enabled, no_grad
from .models import Input, Model, Sequential, fit_tbptt, recurrent_model, stream
from .serialization import load
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "RNN", "LSTM", "GRU", "Dilated", "Conv1D", "MaxPool1D", "AvgPool1D", "Dense", "Dropout", "Embedding",
    "GELU", "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh",
    "Add", "Concatenate", "FirstStep", "LastStep", "RepeatVector", "TimeDistributed", "Layer",
    "Input", "Model", "Sequential", "load", "fit_tbptt", "recurrent_model", "stream", "no_grad", "is_grad_enabled",
    "available_backends", "get_backend", "set_backend", "use_backend", "set_num_threads", "get_num_threads",
    "callbacks", "datasets", "interop", "losses", "metrics", "optim", "tasks", "timeseries", "__version__",
]
