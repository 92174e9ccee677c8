"""``Sequential``: a stack of layers, each fed the previous one's (first) output."""

from __future__ import annotations

import numpy as np

from ..grad_mode import forward_scope, is_grad_enabled, note_output
from ..layers.base import signature_of
from ..layers.registry import layer_config, layer_from_config
from .base import BaseModel
from .summary import observe


def _takes_lengths(layer):
    return "lengths" in signature_of(layer.graph_inputs).parameters or \
        "lengths" in signature_of(layer.forward).parameters


class Sequential(BaseModel):
    """Layers applied in order; a recurrent layer passes on its output sequence ``y``
    (its final state is dropped). ``lengths`` (B,) reach every layer that takes them
    (recurrent layers, ``LastStep``): variable-length batches end to end.

    >>> model = Sequential([Conv1D(1, 16, 5, padding="causal"), GRU(16, 32), LastStep(), Dense(32, 1)])
    """

    def __init__(self, layers=()):
        super().__init__(layers)

    def add(self, layer):
        self.layers.append(layer)
        return self

    def forward(self, x, lengths=None):
        """x -> the last layer's output; each layer's extra outputs are kept for backward."""
        out = x
        extra_outputs = []
        with forward_scope():
            for layer in self.layers:
                slots = layer.graph_inputs(out, lengths=lengths) if lengths is not None and _takes_lengths(layer) \
                    else layer.graph_inputs(out)
                outs = layer.graph_forward(*slots)
                observe(layer, outs)
                extra_outputs.append([(o.shape, o.dtype) for o in outs[1:]])
                out = outs[0]
        if is_grad_enabled():
            self._extra_outputs = extra_outputs
        note_output(out)
        return out

    def backward(self, dy, input_grad=True):
        """dL/d(output) -> dL/dx; weight gradients add into each layer's grads. ``input_grad=False``
        (training: the data needs no gradient): the first layer skips its input gradient, returns None."""
        extra_outputs = getattr(self, "_extra_outputs", None)
        if extra_outputs is None:
            raise ValueError("Sequential.backward: expected a forward() with gradients on first, got none (forwards under "
                             "no_grad() or inference() keep nothing for backward)")
        first = self.layers[0] if self.layers else None
        for layer, extra in zip(reversed(self.layers), reversed(extra_outputs)):
            dins = layer.graph_backward(dy, *(np.zeros(shape, dtype) for shape, dtype in extra),
                                        need_input_grad=input_grad or layer is not first)
            dy = dins[0]
        return dy

    def get_config(self):
        return {"class": "Sequential", "layers": [layer_config(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, config):
        return cls([layer_from_config(c) for c in config["layers"]])
