"""The ``Layer`` base: named parameters and their gradients, PyTorch-style state dicts,
what ``forward`` saved for ``backward``, the class registry and the graph protocol.

Every layer has ``forward``/``backward`` side by side: ``forward`` saves what
``backward`` needs (unless gradients are off), ``backward`` ADDS weight
gradients into :attr:`Layer.grads` and returns the gradient w.r.t. its inputs.

**The rule for saved state** (as PyTorch users expect): a training-mode forward is consumed
by the next backward. Within one top-level call (one ``model.forward``, or one direct
``layer.forward``) saved state is a stack, so a layer shared inside a graph is undone in
reverse order; a *new* top-level forward releases whatever an earlier one saved and no
backward consumed (with an :class:`UnconsumedForwardWarning`, once per layer), so
``for _ in range(1000): model(x)`` keeps one cache, not a thousand. For evaluation between
a forward and its backward use ``pyrnn.no_grad()`` or ``predict``: they save nothing.

Thread safety: grad mode and ``inference()`` are per thread (:mod:`pyrnn.grad_mode`), and
``predict``/``evaluate`` change no layer attribute, so any number of threads may run
inference on a model, also while one thread trains it (they then see weights as the optimizer
leaves them, step by step). Two threads must not train the *same* layer at once.
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
import warnings
import weakref

import numpy as np

from .._checks import BFLOAT16, MAX_SIZE, check_layer_dtype
from ..grad_mode import (
    check_gradient_source,
    enter_forward,
    generation,
    in_inference,
    is_grad_enabled,
    leave_forward,
    note_output,
)
from .registry import layer_config, layer_from_config, register
from .symbolic import is_symbolic, symbolic_call


class UnconsumedForwardWarning(UserWarning):
    """A training-mode forward was never followed by its backward and has been released."""


_meta = threading.local()


class shapes_only:
    """Context: layers built inside allocate no parameter memory and draw no random numbers.

    Their ``params`` and ``grads`` are zero-strided read-only views of the right shapes and
    dtypes, so the parameter shapes of an architecture can be read before anything is
    allocated (``pyrnn.load`` checks a checkpoint's weights against them first).
    """

    def __enter__(self):
        _meta.depth = getattr(_meta, "depth", 0) + 1
        return self

    def __exit__(self, *exc):
        _meta.depth -= 1


def _building_shapes_only():
    return getattr(_meta, "depth", 0) > 0


def load_strict(own, state):
    """Copy ``state`` into the arrays of ``own`` (both ``{name: array}``), strictly: the same
    keys, the same shapes, floating-point values for float arrays (parameters, running statistics)
    and integers for integer ones (counters); nothing changes unless every entry fits."""
    if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
        raise TypeError(f"state_dict: expected a mapping of names to arrays, got {type(state).__name__}")
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        raise ValueError(f"state_dict: expected keys {sorted(own)}, missing {missing}, unexpected {extra}")
    new = {}
    for k in own:
        arr = np.asarray(state[k])
        if arr.shape != own[k].shape:
            raise ValueError(f"state_dict[{k!r}]: expected shape {own[k].shape}, got {arr.shape}")
        if own[k].dtype.kind == "f" and arr.dtype.kind != "f":
            raise TypeError(f"state_dict[{k!r}]: expected a floating-point array, got dtype {arr.dtype}")
        if own[k].dtype.kind in "iu" and arr.dtype.kind not in "iu":
            raise TypeError(f"state_dict[{k!r}]: expected an integer array, got dtype {arr.dtype}")
        new[k] = arr
    for k, arr in new.items():  # only after every key passed
        own[k][...] = arr


_SIGNATURES = weakref.WeakKeyDictionary()  # {function: {bound: inspect.Signature}}


def signature_of(fn):
    """``inspect.signature(fn)``, kept per function (and whether ``fn`` is bound to an object): a
    ``Sequential`` binds every layer's call to its ``forward`` at every step, and building a signature
    costs tens of microseconds."""
    func = getattr(fn, "__func__", fn)
    try:
        by_binding = _SIGNATURES.setdefault(func, {})
    except TypeError:  # not weakly referenceable (a builtin): not kept
        return inspect.signature(fn)
    bound = func is not fn
    sig = by_binding.get(bound)
    if sig is None:
        sig = by_binding[bound] = inspect.signature(fn)
    return sig


def _scoped(forward):
    """``forward`` inside :func:`~pyrnn.grad_mode.forward_scope` (see :meth:`Layer._save`)."""

    @functools.wraps(forward)
    def scoped_forward(self, *args, **kwargs):
        depth = enter_forward()
        try:
            out = forward(self, *args, **kwargs)
        finally:
            leave_forward(depth)
        note_output(out)  # a top-level training forward's output: a loss on it tags its gradient
        return out

    scoped_forward._scoped = True
    return scoped_forward


def _checked(backward):
    """``backward`` (or ``backward_params``) that first refuses a loss gradient computed on another
    forward's output than the one it consumes (:func:`pyrnn.grad_mode.check_gradient_source`)."""

    @functools.wraps(backward)
    def checked_backward(self, *args, **kwargs):
        if args and self._saved_stack:
            check_gradient_source(type(self).__name__, args[0], self._saved_stack[-1][0])
        return backward(self, *args, **kwargs)

    checked_backward._checked = True
    return checked_backward


class Layer:
    """A layer owns named parameters (``{name: ndarray}``) and same-keyed gradients.

    Subclasses implement ``forward(x) -> y`` and ``backward(dy) -> dx`` and, to be
    rebuilt from a checkpoint, ``get_config()`` (the constructor's keyword arguments;
    ``from_config`` calls the constructor with them). Every subclass is registered by name
    when it is defined, so user-defined layers save and load like the built-in ones.
    ``training`` (see :meth:`train`/:meth:`eval`) switches e.g. dropout; read
    :attr:`is_training` in ``forward``, which also honours ``pyrnn.grad_mode.inference()``.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        forward = cls.__dict__.get("forward")
        if forward is not None and not getattr(forward, "_scoped", False):
            cls.forward = _scoped(forward)
        for name in ("backward", "backward_params"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_checked", False):
                setattr(cls, name, _checked(method))
        register(cls)

    #: whether ``dtype="bfloat16"`` is accepted: float32 arrays, matrix products in bfloat16
    #: (mixed precision, :mod:`pyrnn.backends.bfloat16`); set by the layers that have that path
    supports_bfloat16 = False

    def __init__(self, dtype=np.float32):
        #: the NumPy dtype of the parameters, inputs and outputs (float32 for "bfloat16")
        self.dtype, self.bfloat16 = check_layer_dtype("dtype", dtype, type(self).supports_bfloat16)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}  # state that is saved but not trained (running statistics)
        self.training = True
        self._saved_stack: list = []  # [(generation, saved)]
        self._warned_unconsumed = False

    @property
    def dtype_name(self):
        """The dtype as the constructor took it: "float32", "float64" or "bfloat16" (configs, reprs)."""
        return BFLOAT16 if self.bfloat16 else self.dtype.name

    @classmethod
    def from_config(cls, config):
        """A new layer from :meth:`get_config`'s dict."""
        return cls(**config)

    # ----------------------------------------------------------- parameters
    def add_param(self, name, shape, init):
        """Create parameter ``name`` of ``shape`` as ``init(shape)`` (cast to the layer's dtype)
        and its zero gradient. ``init`` runs at once, so seeded inits draw in declaration order;
        inside :class:`shapes_only` it does not run and nothing is allocated."""
        shape = tuple(int(n) for n in shape)
        size = math.prod(shape)
        if size > MAX_SIZE:
            raise ValueError(f"{type(self).__name__}: expected at most {MAX_SIZE} elements in a parameter, got "
                             f"{name} of shape {shape} ({size} elements); the sizes given to the constructor are too large")
        if _building_shapes_only():
            self.params[name] = np.broadcast_to(np.zeros((), self.dtype), shape)
            self.grads[name] = self.params[name]
            return self.params[name]
        try:
            self.params[name] = np.ascontiguousarray(init(shape), dtype=self.dtype)
            self.grads[name] = np.zeros_like(self.params[name])
        except MemoryError:
            gib = 2 * size * self.dtype.itemsize / 2**30
            raise MemoryError(f"{type(self).__name__}: unable to allocate parameter {name} of shape {shape} and its "
                              f"gradient ({gib:.1f} GiB of {self.dtype.name})") from None
        return self.params[name]

    def add_buffer(self, name, value):
        """Register ``value`` as state that is saved and loaded with the parameters but not trained
        (running statistics, counters: PyTorch's buffers). Layers update it in place."""
        value = np.asarray(value)
        if _building_shapes_only():
            self.buffers[name] = np.broadcast_to(np.zeros((), value.dtype), value.shape)
        else:
            self.buffers[name] = np.array(value, order="C")
        return self.buffers[name]

    def parameters(self):
        """The parameter arrays (updated in place by optimizers)."""
        return list(self.params.values())

    def state(self):
        """``{name: array}`` of the parameters then the buffers: what a state dict holds (no copies)."""
        return {**self.params, **self.buffers}

    def zero_grad(self):
        for g in self.grads.values():
            g.fill(0)

    def state_dict(self):
        """``{name: ndarray}`` copies of the parameters and buffers (PyTorch's names)."""
        return {k: v.copy() for k, v in self.state().items()}

    def load_state_dict(self, state):
        """Strict load: every key present, no extra key, every shape exact (see :func:`load_strict`)."""
        load_strict(self.state(), state)

    # ------------------------------------------------------- mode and config
    def train(self, mode=True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    @property
    def is_training(self):
        """Whether this forward acts in training mode: the layer is in train mode and the
        calling thread is not inside ``pyrnn.grad_mode.inference()`` (``predict``, ``evaluate``)."""
        return self.training and not in_inference()

    def get_config(self):
        """Constructor keyword arguments (JSON-serialisable) that rebuild this layer."""
        raise NotImplementedError(f"{type(self).__name__}.get_config")

    def __repr__(self):
        """``Name(key=value, ...)`` from :meth:`get_config` (``Name()`` for a layer without one)."""
        try:
            config = self.get_config()
        except NotImplementedError:
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in config.items()) + ")"

    # ------------------------------------------------- saved-for-backward state
    def _save(self, saved):
        """Keep what backward needs, unless gradients are off; release what an earlier
        top-level forward saved and no backward consumed (see the module docstring)."""
        if not is_grad_enabled():
            return
        gen = generation()
        if self._saved_stack and self._saved_stack[-1][0] != gen:
            self._saved_stack.clear()
            if not self._warned_unconsumed:
                self._warned_unconsumed = True
                warnings.warn(
                    f"{type(self).__name__}: a training-mode forward was never followed by backward; its saved "
                    "state is released by this forward (a forward is consumed by the next backward; evaluate "
                    "between them under pyrnn.no_grad() or with predict)", UnconsumedForwardWarning, stacklevel=3)
        self._saved_stack.append((gen, saved))

    def _peek_saved(self):
        """What the latest forward saved; validate the backward's inputs, then :meth:`_pop_saved`."""
        if not self._saved_stack:
            raise ValueError(f"{type(self).__name__}.backward: expected a forward() first, got none (or its backward already ran)")
        return self._saved_stack[-1][1]

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
        sig = signature_of(self.forward)
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

    def backward_params(self, *grads):
        """The parameters' part of :meth:`backward` alone, for a layer whose input needs no gradient
        (a model's first layer, fed the data: PyTorch's ``needs_input_grad`` False). The gradients
        add into :attr:`grads` exactly as ``backward``'s; returns None. Layers whose input gradient is
        a pass of its own (convolutions, Dense) skip that pass; the default runs ``backward``."""
        self.backward(*grads)

    def graph_backward(self, *grads, need_input_grad=True):
        """Backward from one gradient per output -> one gradient per input slot (None where none);
        ``need_input_grad=False``: :meth:`backward_params`, no input gradient (all None)."""
        if not need_input_grad:
            self.backward_params(*grads)
            return (None,)
        dx = self.backward(*grads)
        return dx if isinstance(dx, tuple) else (dx,)

    def graph_outputs(self, outputs):
        """How a call returns its outputs: the single output, or the tuple."""
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def __call__(self, *args, **kwargs):
        """Eager ``forward`` on arrays; on symbolic tensors (``pyrnn.Input``) it builds a graph node."""
        if any(is_symbolic(a) for a in list(args) + list(kwargs.values())):
            return symbolic_call(self, args, kwargs)
        return self.forward(*args, **kwargs)


class Wrapper(Layer):
    """A layer around an inner layer whose :attr:`params` and :attr:`grads` ARE the inner
    layer's dicts (same objects), so optimizers and ``state_dict`` see the inner names;
    :meth:`train`/:meth:`eval` and :meth:`clear_saved` reach the inner layer too. Its config
    holds the inner layer's as ``{"layer": {"class": name, "config": kwargs}, ...}``."""

    def __init__(self, layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"layer: expected a Layer, got {type(layer).__name__} "
                            f"(a saved config is rebuilt by {type(self).__name__}.from_config)")
        super().__init__(layer.dtype)
        self.bfloat16 = layer.bfloat16
        self.layer = layer
        self.params = layer.params
        self.grads = layer.grads
        self.buffers = layer.buffers
        self.training = layer.training

    @classmethod
    def from_config(cls, config):
        if not isinstance(config, dict) or "layer" not in config:
            raise TypeError(f"{cls.__name__} config: expected a dict with key 'layer', got {config!r:.200}")
        return cls(**dict(config, layer=layer_from_config(config["layer"])))

    def get_config(self):
        return {"layer": layer_config(self.layer)}

    def train(self, mode=True):
        self.layer.train(mode)
        return super().train(mode)

    def clear_saved(self):
        self.layer.clear_saved()
        super().clear_saved()
