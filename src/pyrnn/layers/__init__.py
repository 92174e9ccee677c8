"""Layers: the ``Layer`` base and the recurrent layers."""

from .base import Layer
from .recurrent import GRU, LSTM, RNN, RNNBase

__all__ = ["Layer", "RNNBase", "RNN", "LSTM", "GRU"]
