"""Models: ``Sequential`` and functional graphs (``Input`` -> layer calls -> ``Model``)."""

from .base import BaseModel
from .graph import Input, Model
from .sequential import Sequential
from .tbptt import fit_tbptt, peak_memory_of, recurrent_model, stream

__all__ = ["BaseModel", "Input", "Model", "Sequential", "fit_tbptt", "peak_memory_of", "recurrent_model", "stream"]
