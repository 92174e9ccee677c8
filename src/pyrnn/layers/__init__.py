"""Layers: the ``Layer`` base, recurrent, dense, activation, sequence-plumbing, convolution (1-D and
2-D), pooling, upsampling and normalisation layers."""

from .activations import GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, UnconsumedForwardWarning
from .conv import AvgPool1D, Conv1D, MaxPool1D
from .conv2d import Conv2D, ConvTranspose2D
from .dense import Dense, Dropout, Embedding
from .dilated import Dilated
from .norm import BatchNorm1D, BatchNorm2D
from .plumbing import FeatureSlice, VectorToState
from .pool2d import AvgPool2D, Flatten, GlobalAvgPool2D, MaxPool2D, Upsample2D
from .recurrent import GRU, LSTM, RNN, Recurrent, RNNBase
from .sequence import Add, Concatenate, FirstStep, LastStep, RepeatVector, TimeDistributed

__all__ = [
    "Layer", "UnconsumedForwardWarning", "Recurrent", "RNNBase", "RNN", "LSTM", "GRU", "Dense", "Dropout", "Embedding",
    "GELU", "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh",
    "Add", "Concatenate", "FirstStep", "LastStep", "RepeatVector", "TimeDistributed",
    "Conv1D", "MaxPool1D", "AvgPool1D", "Dilated", "FeatureSlice", "VectorToState",
    "Conv2D", "ConvTranspose2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Upsample2D", "Flatten",
    "BatchNorm1D", "BatchNorm2D",
]
