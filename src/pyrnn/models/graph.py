"""Functional graphs: ``Input`` -> layer calls -> ``Model(inputs, outputs)``.

A call of a layer on symbolic tensors records a node (:mod:`pyrnn.layers.symbolic`); nothing is
computed. ``Model`` sorts the nodes topologically once; its forward runs each
layer's ``graph_forward`` in that order, its backward each ``graph_backward`` in
reverse order, summing gradients where a tensor fans out — a layer-level
backward, no per-element autograd tape.

Memory: the forward lets go of each intermediate array after its last consumer has run, and
the backward of each gradient once the layer that produced its tensor has taken it, so the
model itself holds only the arrays still to be used (the layers keep what their backward needs).

Fusion: a BatchNorm whose output only a ReLU reads runs as one kernel call where the backend has
one (forward and backward); without gradients, a Conv2D whose output only a BatchNorm2D (running
statistics) and/or a ReLU/Tanh reads runs as one convolution (the BatchNorm folded into its weights,
the activation its post-op), and with gradients a Conv2D whose output only a ReLU/Tanh reads (the
activation applied as the convolution writes each chunk, its backward by the Conv2D's):
:meth:`pyrnn.layers.Conv2D.fused_forward`. The chains are found once, at construction.
"""

from __future__ import annotations

import numpy as np

from .. import _buffers
from ..grad_mode import forward_scope, is_grad_enabled, note_output
from ..layers.activations import ReLU, Tanh
from ..layers.conv2d import Conv2D
from ..layers.norm import BatchNorm2D, _BatchNorm
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


#: the activation layers a convolution applies in its own call (Conv2D.fused_forward's ``activation``)
_POST_ACTIVATIONS = {ReLU: "relu", Tanh: "tanh"}


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
        # every tensor's number (its slot in a step's values): the step plan holds numbers, not ids, so it
        # stays true for a copy of the model (copy.deepcopy makes new tensors)
        slots = {}
        for t in (*self.inputs, *self.outputs, *(t for node in self.nodes for t in (*node.inputs, *node.outputs))):
            if t is not None:
                slots.setdefault(id(t), len(slots))
        self._in_slots = [slots[id(t)] for t in self.inputs]
        self._out_slots = [slots[id(t)] for t in self.outputs]
        self._plan = self._step_plan(slots)
        readers = self._readers(slots)
        self._bn_relu_pairs = self._batchnorm_relu_pairs(slots, readers)
        self._conv_folds = self._conv_folds_of(slots, readers)
        self._conv_activations = {i: f for i, f in self._conv_folds.items() if f[0] is None and f[1] is not None}
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

    def _step_plan(self, slots):
        """Per layer node, in order, what a step does with it: ``(position, layer, input slots (None for an
        absent input), output slots, slots of the tensors no later node reads and no model output is (the
        forward lets go of them once the node has run), whether only the model's inputs feed it)``."""
        last = {}
        for i, node in enumerate(self.nodes):
            for t in node.inputs:
                if t is not None:
                    last[slots[id(t)]] = i
        for k in self._out_slots:
            last.pop(k, None)
        done = [[] for _ in self.nodes]
        for k, i in last.items():
            done[i].append(k)
        plan = []
        for i, node in enumerate(self.nodes):
            if node.layer is None:
                continue
            plan.append((i, node.layer, tuple(None if t is None else slots[id(t)] for t in node.inputs),
                         tuple(slots[id(t)] for t in node.outputs), tuple(done[i]),
                         all(t is None or t.node.layer is None for t in node.inputs)))
        return plan

    # ------------------------------------------------------------- forward
    def forward(self, *arrays):
        """Inputs in the order of ``inputs`` -> the output (or a tuple of outputs)."""
        if len(arrays) == 1 and isinstance(arrays[0], (list, tuple)) and len(self.inputs) > 1:
            arrays = tuple(arrays[0])
        if len(arrays) != len(self.inputs):
            raise ValueError(f"Model.forward: expected {len(self.inputs)} input arrays, got {len(arrays)}")
        values = dict(zip(self._in_slots, arrays))
        meta = {k: (v.shape, v.dtype) for k, v in values.items() if isinstance(v, np.ndarray)}
        # a BatchNorm and the ReLU that alone reads it in one pass where the backend fuses them (the BatchNorm's
        # value is then the ReLU's, read by that ReLU only; backward skips the ReLU: the BatchNorm applies it);
        # a Conv2D -> (BatchNorm2D ->) (ReLU | Tanh) chain in one call (Conv2D.fused_forward): without gradients
        # all of it, with them a Conv2D -> activation (backward skips the activation: the Conv2D applies it). A
        # fused node's value is the one before it, which it alone reads.
        pairs, fused = self._bn_relu_pairs, set()
        folds = self._conv_activations if is_grad_enabled() else self._conv_folds
        with forward_scope():  # one graph call: a shared layer stacks its calls
            for i, layer, in_ids, out_ids, done, _ in self._plan:
                args = [None if k is None else values[k] for k in in_ids]
                outs = None
                if i in fused:
                    outs = (args[0],)
                elif folds and i in folds:
                    bn, activation, chain = folds[i]
                    y = layer.fused_forward(args[0], bn, activation)
                    if y is not None:
                        outs = (y,)
                        fused.update(chain)
                if outs is None and i in pairs:
                    y = layer.fused_relu_forward(args[0])
                    if y is not None:
                        outs = (y,)
                        fused.add(pairs[i])
                if outs is None:
                    outs = layer.graph_forward(*args)
                observe(layer, outs)
                for k, v in zip(out_ids, outs):
                    values[k] = v
                    if isinstance(v, np.ndarray):
                        meta[k] = (v.shape, v.dtype)
                for k in done:  # read by no later node
                    del values[k]
        if is_grad_enabled():  # for backward's zero gradients and fused activations; inference (other threads too) leaves them
            self._out_meta, self._fused_activations = meta, fused
        outs = [values[k] for k in self._out_slots]
        out = outs[0] if self._single_output else tuple(outs)
        note_output(out)
        return out

    def _readers(self, slots):
        """{tensor slot: positions of the nodes reading it}."""
        readers = {}
        for j, node in enumerate(self.nodes):
            for t in node.inputs:
                if t is not None:
                    readers.setdefault(slots[id(t)], []).append(j)
        return readers

    def _batchnorm_relu_pairs(self, slots, readers):
        """{position of a BatchNorm node: position of the ReLU node that alone reads its output}, the output
        being no model output."""
        pairs = {}
        for i, node in enumerate(self.nodes):
            if isinstance(node.layer, _BatchNorm) and len(node.outputs) == 1:
                k = slots[id(node.outputs[0])]
                r = readers.get(k, [])
                if k not in self._out_slots and len(r) == 1 and type(self.nodes[r[0]].layer) is ReLU and \
                        len(self.nodes[r[0]].inputs) == 1:
                    pairs[i] = r[0]
        return pairs

    def _conv_folds_of(self, slots, readers):
        """{position of a Conv2D node: (the BatchNorm2D or None, the activation ("relu", "tanh") or None, positions of
        the nodes it runs)} for each Conv2D whose output only a BatchNorm2D or a ReLU/Tanh reads, and so on down the
        chain (a BatchNorm2D's output only an activation reads); no value of the chain but its last is a model output."""
        def only_reader(i):  # the node alone reading node i's value (no model output), or None
            k = slots[id(self.nodes[i].outputs[0])]
            r = readers.get(k, [])
            if k in self._out_slots or len(r) != 1 or len(self.nodes[r[0]].inputs) != 1:
                return None
            return r[0]

        folds = {}
        for i, node in enumerate(self.nodes):
            if type(node.layer) is not Conv2D or len(node.inputs) != 1:
                continue
            bn, activation, chain, j = None, None, (), only_reader(i)
            if j is not None and type(self.nodes[j].layer) is BatchNorm2D:
                bn, chain, j = self.nodes[j].layer, (j,), only_reader(j)
            if j is not None and type(self.nodes[j].layer) in _POST_ACTIVATIONS:
                activation, chain = _POST_ACTIVATIONS[type(self.nodes[j].layer)], (*chain, j)
            if chain:
                folds[i] = (bn, activation, chain)
        return folds

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
        for k, g in zip(self._out_slots, grads):
            if g is not None:
                acc[k] = g if k not in acc else _sum(acc[k], g)
        fused = getattr(self, "_fused_activations", ())
        for i, layer, in_ids, out_ids, _, fed_by_inputs in reversed(self._plan):
            if i in fused:  # an activation the layer before it ran: its gradient goes to that layer as it is
                g = acc.pop(out_ids[0], None)
                if g is not None:
                    acc[in_ids[0]] = g  # that layer's output: the activation alone reads it
                continue
            douts = [acc.pop(k, None) for k in out_ids]  # complete: every consumer came before
            douts = [np.zeros(*meta[k]) if g is None else g for k, g in zip(out_ids, douts)]
            dins = layer.graph_backward(*douts, need_input_grad=input_grad or not fed_by_inputs)
            for k, g in zip(in_ids, dins):
                if k is None or g is None:
                    continue
                acc[k] = g if k not in acc else _sum(acc[k], g)  # fan-out: gradients add
        return tuple(acc.get(k) for k in self._in_slots) if len(self.inputs) > 1 else acc.get(self._in_slots[0])

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
