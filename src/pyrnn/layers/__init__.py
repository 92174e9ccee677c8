"""Layers: the ``Layer`` base, recurrent, dense, activation, sequence-plumbing and convolution layers."""

from .activations import GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, UnconsumedForwardWarning
from .conv import AvgPool1D, Conv1D, MaxPool1D
from .conv2d import Conv2D, ConvTranspose2D
from .dense import Dense, Dropout, Embedding
from .dilated import Dilated
from .plumbing import FeatureSlice, VectorToState
from .recurrent import GRU, LSTM, RNN, Recurrent, RNNBase
from .sequence import Add, Concatenate, FirstStep, LastStep, RepeatVector, TimeDistributed

__all__ = [
    "Layer", "UnconsumedForwardWarning", "Recurrent", "RNNBase", "RNN", "LSTM", "GRU", "Dense", "Dropout", "Embedding",
    "GELU", "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh",
    "Add", "Concatenate", "FirstStep", "LastStep", "RepeatVector", "TimeDistributed",
    "Conv1D", "MaxPool1D", "AvgPool1D", "Dilated", "FeatureSlice", "VectorToState",
    "Conv2D", "ConvTranspose2D",
]
