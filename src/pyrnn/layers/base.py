"""The ``Layer`` base: named parameters and their gradients, PyTorch-style state dicts,
a LIFO stack of what ``forward`` saved for ``backward``, and the ``no_grad`` switch.

Every layer has ``forward``/``backward`` side by side: ``forward`` saves what
``backward`` needs (unless gradients are off), ``backward`` ADDS weight
gradients into :attr:`Layer.grads` and returns the gradient w.r.t. its inputs.
Saved state is a stack, so a layer called several times in one graph
(shared weights) is undone in reverse order, as a graph's backward runs.
"""

from __future__ import annotations

import contextlib
import inspect

import numpy as np

_GRAD = [True]


def is_grad_enabled():
    """Whether layers save what their backward needs (False inside :func:`no_grad`)."""
    return _GRAD[-1]


@contextlib.contextmanager
def no_grad():
    """Run forwards without saving anything for backward (inference: ``predict``)."""
    _GRAD.append(False)
    try:
        yield
    finally:
        _GRAD.pop()


class Layer:
    """A layer owns named parameters (``{name: ndarray}``) and same-keyed gradients.

    Subclasses implement ``forward(x) -> y`` and ``backward(dy) -> dx`` and, to be
    rebuilt from a checkpoint, ``get_config()`` (the constructor's keyword arguments).
    ``training`` (see :meth:`train`/:meth:`eval`) switches e.g. dropout.
    """

    def __init__(self, dtype=np.float32):
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
        self.dtype = dtype
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.training = True
        self._saved_stack: list = []

    # ----------------------------------------------------------- parameters
    def add_param(self, name, value):
        self.params[name] = np.ascontiguousarray(value, dtype=self.dtype)
        self.grads[name] = np.zeros_like(self.params[name])

    def parameters(self):
        """The parameter arrays (updated in place by optimizers)."""
        return list(self.params.values())

    def zero_grad(self):
        for g in self.grads.values():
            g.fill(0)

    def state_dict(self):
        """``{name: ndarray}`` copies of the parameters."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state):
        """Strict load: every key present, no extra key, every shape exact."""
        missing = [k for k in self.params if k not in state]
        extra = [k for k in state if k not in self.params]
        if missing or extra:
            raise ValueError(f"state_dict: expected keys {sorted(self.params)}, missing {missing}, unexpected {extra}")
        new = {}
        for k, v in state.items():
            arr = np.asarray(v)
            if arr.shape != self.params[k].shape:
                raise ValueError(f"state_dict[{k!r}]: expected shape {self.params[k].shape}, got {arr.shape}")
            if arr.dtype.kind != "f":
                raise TypeError(f"state_dict[{k!r}]: expected a floating-point array, got dtype {arr.dtype}")
            new[k] = arr
        for k, arr in new.items():  # only after every key passed
            self.params[k][...] = arr

    # ------------------------------------------------------- mode and config
    def train(self, mode=True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def get_config(self):
        """Constructor keyword arguments (JSON-serialisable) that rebuild this layer."""
        raise NotImplementedError(f"{type(self).__name__}.get_config")

    # ------------------------------------------------- saved-for-backward stack
    def _save(self, saved):
        """Keep what backward needs, unless gradients are off."""
        if is_grad_enabled():
            self._saved_stack.append(saved)

    def _peek_saved(self):
        """What the latest forward saved; validate the backward's inputs, then :meth:`_pop_saved`."""
        if not self._saved_stack:
            raise ValueError(f"{type(self).__name__}.backward: expected a forward() first, got none (or its backward already ran)")
        return self._saved_stack[-1]

    def _pop_saved(self):
        saved = self._peek_saved()
        self._saved_stack.pop()
        return saved

    def clear_saved(self):
        """Drop everything saved for backward (e.g. after an aborted step)."""
        self._saved_stack.clear()

    # ------------------------------------------------------ the graph protocol
    # A model runs every layer through these three, so layers with several inputs or
    # outputs (merges, recurrent layers and their states) fit one executor.
    def graph_inputs(self, *args, **kwargs):
        """The call's arguments as a flat list of input slots, in ``forward``'s parameter
        order (None = absent); ``*args`` of ``forward`` (merges) are spread out."""
        sig = inspect.signature(self.forward)
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{type(self).__name__}: {exc}") from None
        bound.apply_defaults()
        slots = []
        for name, param in sig.parameters.items():
            value = bound.arguments.get(name)
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                slots.extend(value)
            elif param.kind is not inspect.Parameter.VAR_KEYWORD:
                slots.append(value)
        return slots

    #: outputs of one call
    graph_n_outputs = 1

    def graph_forward(self, *inputs):
        """Forward on the input slots -> a tuple of outputs."""
        out = self.forward(*inputs)
        return out if isinstance(out, tuple) else (out,)

    def graph_backward(self, *grads):
        """Backward from one gradient per output -> one gradient per input slot (None where none)."""
        dx = self.backward(*grads)
        return dx if isinstance(dx, tuple) else (dx,)

    def graph_outputs(self, outputs):
        """How a call returns its outputs: the single output, or the tuple."""
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def __call__(self, *args, **kwargs):
        """Eager ``forward`` on arrays; on symbolic tensors (``pyrnn.Input``) it builds a graph node."""
        from ..models.graph import is_symbolic, symbolic_call  # lazy: models import layers

        if any(is_symbolic(a) for a in list(args) + list(kwargs.values())):
            return symbolic_call(self, args, kwargs)
        return self.forward(*args, **kwargs)


class Wrapper(Layer):
    """A layer around an inner layer whose :attr:`params` and :attr:`grads` ARE the inner
    layer's dicts (same objects), so optimizers and ``state_dict`` see the inner names;
    :meth:`train`/:meth:`eval` and :meth:`clear_saved` reach the inner layer too."""

    def __init__(self, layer):
        super().__init__(layer.dtype)
        self.layer = layer
        self.params = layer.params
        self.grads = layer.grads
        self.training = layer.training

    def train(self, mode=True):
        self.layer.train(mode)
        return super().train(mode)

    def clear_saved(self):
        self.layer.clear_saved()
        super().clear_saved()
