"""Symbolic tensors for the functional API, below ``Layer``: calling a layer on a
:class:`SymbolicTensor` (from :func:`Input`) records a :class:`Node` instead of computing;
``pyrnn.Model`` (in :mod:`pyrnn.models.graph`) later runs the recorded nodes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SymbolicTensor", "Node", "Input", "is_symbolic", "symbolic_call"]


class SymbolicTensor:
    """A placeholder for an array flowing through a graph: output ``index`` of ``node``."""

    def __init__(self, node, index, name=None):
        self.node, self.index, self.name = node, index, name

    def __repr__(self):
        who = self.name or (type(self.node.layer).__name__ if self.node.layer is not None else "Input")
        return f"<SymbolicTensor {who}[{self.index}]>"

    def __iter__(self):
        raise TypeError("a symbolic tensor is one value; a layer with several outputs returns a tuple of them")


class Node:
    """One layer call: its input slots (tensors or None) and its outputs."""

    def __init__(self, layer, inputs, n_outputs):
        self.layer, self.inputs = layer, inputs
        self.outputs = [SymbolicTensor(self, i) for i in range(n_outputs)]


def Input(shape=None, dtype="float32", name=None):
    """A model input. ``shape`` (without the batch axis) is documentation only; ``dtype``
    'float32'/'float64' or an integer dtype for indices and lengths."""
    node = Node(None, [], 1)
    tensor = node.outputs[0]
    tensor.name, tensor.shape, tensor.dtype = name, shape, np.dtype(dtype)
    return tensor


def is_symbolic(value):
    if isinstance(value, SymbolicTensor):
        return True
    return isinstance(value, (tuple, list)) and any(isinstance(v, SymbolicTensor) for v in value)


def symbolic_call(layer, args, kwargs):
    slots = layer.graph_inputs(*args, **kwargs)
    for i, s in enumerate(slots):
        if isinstance(s, (tuple, list)) and s and isinstance(s[0], SymbolicTensor) and s[0].node.layer is not None:
            producer = type(s[0].node.layer).__name__
            state = "(h, c)" if isinstance(s[1] if len(s) > 1 else None, (tuple, list)) else "state"
            raise TypeError(f"{type(layer).__name__}: got the tuple (y, {state}) that {producer} returns as input {i}; "
                            f"unpack it: `y, {state} = {producer}(...)(x)`, then pass y "
                            "(and the state as another layer's initial_state=)")
        if s is not None and not isinstance(s, SymbolicTensor):
            raise TypeError(f"{type(layer).__name__}: in a graph every input must be a symbolic tensor, got {type(s).__name__} at slot {i}")
    node = Node(layer, slots, layer.graph_n_outputs)
    return layer.graph_outputs(node.outputs)
