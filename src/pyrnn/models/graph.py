"""Functional graphs: ``Input`` -> layer calls -> ``Model(inputs, outputs)``.

A call of a layer on symbolic tensors records a node (:mod:`pyrnn.layers.symbolic`); nothing is
computed. ``Model`` sorts the nodes topologically once; its forward runs each
layer's ``graph_forward`` in that order, its backward each ``graph_backward`` in
reverse order, summing gradients where a tensor fans out — a layer-level
backward, no per-element autograd tape.

Memory: the forward lets go of each intermediate array after its last consumer has run, and
the backward of each gradient once the layer that produced its tensor has taken it, so the
model itself holds only the arrays still to be used (the layers keep what their backward needs).
"""

from __future__ import annotations

import numpy as np

from .. import _buffers
from ..grad_mode import forward_scope, is_grad_enabled, note_output
from ..layers.activations import ReLU
from ..layers.norm import _BatchNorm
from ..layers.registry import layer_config, layer_from_config
from ..layers.symbolic import Input, Node, SymbolicTensor
from .base import BaseModel
from .summary import observe


def _flatten(value, what):
    if isinstance(value, SymbolicTensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _flatten(v, what)]
    raise TypeError(f"{what}: expected symbolic tensors (from pyrnn.Input or layer calls), got {type(value).__name__}")


def _sum(a, b):
    """a + b in recycled memory (:mod:`pyrnn._buffers`): two gradients of one tensor."""
    return np.add(a, b, out=_buffers.empty(np.broadcast_shapes(a.shape, b.shape), np.result_type(a, b)))


class Model(BaseModel):
    """A functional model: several inputs and outputs, merges, states passed between
    recurrent layers (an encoder's final state as a decoder's initial state).

    Parameters
    ----------
    inputs : Input tensor or list of them
    outputs : symbolic tensor or list of them (nested tuples such as ``(h, c)`` are flattened)
    """

    def __init__(self, inputs, outputs):
        self.inputs = _flatten(inputs, "inputs")
        self.outputs = _flatten(outputs, "outputs")
        self._single_output = isinstance(outputs, SymbolicTensor)
        self.nodes = self._toposort()
        self._last_uses = self._last_uses_of_tensors()
        layers = []
        for node in self.nodes:
            if node.layer is not None and all(node.layer is not l for l in layers):
                layers.append(node.layer)
        super().__init__(layers)

    def _toposort(self):
        order, state = [], {}

        def visit(node):
            mark = state.get(id(node))
            if mark == "done":
                return
            if mark == "active":
                raise ValueError("Model: the graph has a cycle")
            state[id(node)] = "active"
            for t in node.inputs:
                if t is not None:
                    visit(t.node)
            state[id(node)] = "done"
            order.append(node)

        for t in self.outputs:
            visit(t.node)
        input_nodes = {id(t.node) for t in self.inputs}
        for node in order:
            if node.layer is None and id(node) not in input_nodes:
                raise ValueError(f"Model: the outputs depend on an Input that is not among the model's inputs ({node.outputs[0]!r})")
        return order

    def _last_uses_of_tensors(self):
        """For each node (by position), the ids of the tensors no later node reads and that are
        not model outputs: the forward lets go of them once that node has run."""
        last = {}
        for i, node in enumerate(self.nodes):
            for t in node.inputs:
                if t is not None:
                    last[id(t)] = i
        for t in self.outputs:
            last.pop(id(t), None)
        out = [[] for _ in self.nodes]
        for key, i in last.items():
            out[i].append(key)
        return out

    # ------------------------------------------------------------- forward
    def forward(self, *arrays):
        """Inputs in the order of ``inputs`` -> the output (or a tuple of outputs)."""
        if len(arrays) == 1 and isinstance(arrays[0], (list, tuple)) and len(self.inputs) > 1:
            arrays = tuple(arrays[0])
        if len(arrays) != len(self.inputs):
            raise ValueError(f"Model.forward: expected {len(self.inputs)} input arrays, got {len(arrays)}")
        values = {id(t): a for t, a in zip(self.inputs, arrays)}
        meta = {k: (v.shape, v.dtype) for k, v in values.items() if isinstance(v, np.ndarray)}
        # a BatchNorm and the ReLU that alone reads it in one pass where the backend fuses them (the BatchNorm's
        # value is then the ReLU's, read by that ReLU only; backward skips the ReLU: the BatchNorm applies it)
        pairs, fused = self._batchnorm_relu_pairs(), set()
        with forward_scope():  # one graph call: a shared layer stacks its calls
            for i, (node, done) in enumerate(zip(self.nodes, self._last_uses)):
                if node.layer is None:
                    continue
                args = [None if t is None else values[id(t)] for t in node.inputs]
                outs = None
                if i in fused:
                    outs = (args[0],)
                elif i in pairs:
                    y = node.layer.fused_relu_forward(args[0])
                    if y is not None:
                        outs = (y,)
                        fused.add(pairs[i])
                if outs is None:
                    outs = node.layer.graph_forward(*args)
                observe(node.layer, outs)
                for t, v in zip(node.outputs, outs):
                    values[id(t)] = v
                    if isinstance(v, np.ndarray):
                        meta[id(t)] = (v.shape, v.dtype)
                for key in done:  # read by no later node
                    del values[key]
        if is_grad_enabled():  # for backward's zero gradients and fused ReLUs; inference (other threads too) leaves them
            self._out_meta, self._fused_relus = meta, fused
        outs = [values[id(t)] for t in self.outputs]
        out = outs[0] if self._single_output else tuple(outs)
        note_output(out)
        return out

    def _batchnorm_relu_pairs(self):
        """{position of a BatchNorm node: position of the ReLU node that alone reads its output}."""
        pairs = self.__dict__.get("_pairs")
        if pairs is None:
            readers = {}
            for j, node in enumerate(self.nodes):
                for t in node.inputs:
                    if t is not None:
                        readers.setdefault(id(t), []).append(j)
            outputs = {id(t) for t in self.outputs}
            pairs = {}
            for i, node in enumerate(self.nodes):
                if isinstance(node.layer, _BatchNorm) and len(node.outputs) == 1 and id(node.outputs[0]) not in outputs:
                    r = readers.get(id(node.outputs[0]), [])
                    if len(r) == 1 and type(self.nodes[r[0]].layer) is ReLU and len(self.nodes[r[0]].inputs) == 1:
                        pairs[i] = r[0]
            self._pairs = pairs
        return pairs

    # ------------------------------------------------------------ backward
    def backward(self, *grads, input_grad=True):
        """One gradient per output -> one gradient per input (None for integer inputs).
        ``input_grad=False`` (training: the data needs no gradient): layers fed by the model's inputs
        alone skip their input gradients, and None comes back for each input."""
        if len(grads) == 1 and isinstance(grads[0], (list, tuple)) and len(self.outputs) > 1:
            grads = tuple(grads[0])
        if len(grads) != len(self.outputs):
            raise ValueError(f"Model.backward: expected {len(self.outputs)} output gradients, got {len(grads)}")
        meta = getattr(self, "_out_meta", None)
        if meta is None:
            raise ValueError("Model.backward: expected a forward() with gradients on first, got none (forwards under "
                             "no_grad() or inference() keep nothing for backward)")
        acc = {}
        for t, g in zip(self.outputs, grads):
            if g is not None:
                acc[id(t)] = g if id(t) not in acc else _sum(acc[id(t)], g)
        fused = getattr(self, "_fused_relus", ())
        for i in reversed(range(len(self.nodes))):
            node = self.nodes[i]
            if node.layer is None:
                continue
            if i in fused:  # a ReLU the BatchNorm before it ran: its gradient goes to the BatchNorm as it is
                g = acc.pop(id(node.outputs[0]), None)
                if g is not None:
                    acc[id(node.inputs[0])] = g  # the BatchNorm's output: the ReLU alone reads it
                continue
            douts = [acc.pop(id(t), None) for t in node.outputs]  # complete: every consumer came before
            douts = [np.zeros(*meta[id(t)]) if g is None else g for t, g in zip(node.outputs, douts)]
            fed_by_inputs = all(t is None or t.node.layer is None for t in node.inputs)
            dins = node.layer.graph_backward(*douts, need_input_grad=input_grad or not fed_by_inputs)
            for t, g in zip(node.inputs, dins):
                if t is None or g is None:
                    continue
                acc[id(t)] = g if id(t) not in acc else _sum(acc[id(t)], g)  # fan-out: gradients add
        return tuple(acc.get(id(t)) for t in self.inputs) if len(self.inputs) > 1 else acc.get(id(self.inputs[0]))

    # -------------------------------------------------------------- config
    def get_config(self):
        layer_index = {id(l): i for i, l in enumerate(self.layers)}
        node_index, nodes = {}, []
        for node in self.nodes:
            node_index[id(node)] = len(nodes)
            if node.layer is None:
                t = node.outputs[0]
                nodes.append({"input": True, "name": t.name, "dtype": t.dtype.name})
            else:
                nodes.append({"layer": layer_index[id(node.layer)],
                              "inputs": [None if t is None else [node_index[id(t.node)], t.index] for t in node.inputs]})
        ref = lambda t: [node_index[id(t.node)], t.index]  # noqa: E731
        return {"class": "Model", "layers": [layer_config(l) for l in self.layers], "nodes": nodes,
                "inputs": [ref(t) for t in self.inputs], "outputs": [ref(t) for t in self.outputs],
                "single_output": self._single_output}

    @classmethod
    def from_config(cls, config):
        layers = [layer_from_config(c) for c in config["layers"]]
        built = []
        for spec in config["nodes"]:
            if spec.get("input"):
                built.append(Input(dtype=spec["dtype"], name=spec["name"]).node)
                continue
            ins = [None if r is None else built[r[0]].outputs[r[1]] for r in spec["inputs"]]
            node = Node(layers[spec["layer"]], ins, layers[spec["layer"]].graph_n_outputs)
            built.append(node)
        inputs = [built[r[0]].outputs[r[1]] for r in config["inputs"]]
        outputs = [built[r[0]].outputs[r[1]] for r in config["outputs"]]
        return cls(inputs, outputs[0] if config["single_output"] else outputs)
