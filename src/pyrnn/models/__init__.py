"""Models: ``Sequential`` and functional graphs (``Input`` -> layer calls -> ``Model``)."""

from .base import BaseModel
from .graph import Input, Model
from .sequential import Sequential

__all__ = ["BaseModel", "Input", "Model", "Sequential"]
