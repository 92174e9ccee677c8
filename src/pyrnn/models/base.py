"""What every model shares: named parameters, state dicts, ``compile``, ``fit``,
``evaluate``, ``predict`` and ``save``. ``Sequential`` and the functional ``Model``
only add ``forward``/``backward`` and their config.

Parameter names are ``"<layer index>.<name>"`` (``"0.weight"``, ``"1.weight_ih_l0"``),
as in ``torch.nn.Sequential``.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import metrics as metric_module
from .._checks import check_finite, check_float
from ..checkpoint import save_checkpoint
from ..grad_mode import inference
from ..layers.base import load_strict
from ..losses import LogitsWarning, get_loss, loss_to_config
from ..optim import get_optimizer
from .summary import model_repr, summary
from .training import as_input_list, batch_forward_kwargs, evaluate, fit


class BaseModel:
    """Common machinery of :class:`~pyrnn.Sequential` and :class:`~pyrnn.Model`."""

    def __init__(self, layers):
        self.layers = list(layers)
        self.loss = None
        self.optimizer = None
        self.metrics = []
        self.clip_norm = None
        self.clip_value = None
        self.history = None
        self.epochs_done = 0
        self.stop_training = False
        self._rng = np.random.default_rng()

    # ----------------------------------------------------------- parameters
    def named_parameters(self):
        for i, layer in enumerate(self.layers):
            for name, p in layer.params.items():
                yield f"{i}.{name}", p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def param_grad_pairs(self):
        """``[(param, grad)]`` for the optimizers, in ``named_parameters`` order."""
        return [(layer.params[k], layer.grads[k]) for layer in self.layers for k in layer.params]

    def zero_grad(self):
        for layer in self.layers:
            layer.zero_grad()

    def named_state(self):
        """``"<layer index>.<name>"`` -> array for every parameter and buffer (what a state dict holds)."""
        return {f"{i}.{name}": a for i, layer in enumerate(self.layers) for name, a in layer.state().items()}

    def state_dict(self):
        return {name: a.copy() for name, a in self.named_state().items()}

    def load_state_dict(self, state):
        """Strict: the same keys and shapes; nothing changes unless every entry fits."""
        load_strict(self.named_state(), state)

    def train(self, mode=True):
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def clear_saved(self):
        for layer in self.layers:
            layer.clear_saved()

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def __repr__(self):
        return model_repr(self)

    def summary(self, input_shape=None, print_fn=print):
        """Print a Keras-style table: each layer, its output shape (batch axis None) and parameter
        count, then the totals; returns the text. Output shapes need ``input_shape`` (one sample,
        e.g. ``(50, 1)``; a list of them for several inputs) unless the model's ``Input``s have
        shapes. See :func:`pyrnn.models.summary.summary`."""
        return summary(self, input_shape, print_fn)

    # -------------------------------------------------------------- compile
    def compile(self, optimizer="adam", loss="mse", metrics=(), lr=None, clip_norm=None, clip_value=None):
        """Choose the loss, optimizer, metrics and gradient clipping for ``fit``.

        Parameters
        ----------
        optimizer : name ('sgd', 'rmsprop', 'adam', 'adamw') or an optimizer built on
            ``model.param_grad_pairs()``
        loss : name ('mse', 'mae', 'huber', 'cross_entropy', 'bce_with_logits', ...) or a loss object;
            a list of them, one per output, for a model with several outputs
        metrics : names from :mod:`pyrnn.metrics` ('mae', 'mse', 'rmse', 'accuracy', 'binary_accuracy')
        lr : learning rate for a named optimizer (its default if None)
        clip_norm, clip_value : clip gradients by global L2 norm / by value before each step
        """
        self.loss = [get_loss(x) for x in loss] if isinstance(loss, (list, tuple)) else get_loss(loss)
        if isinstance(optimizer, str):
            kwargs = {} if lr is None else {"lr": lr}
            self.optimizer = get_optimizer(optimizer, self.param_grad_pairs(), **kwargs)
        else:
            self.optimizer = optimizer
        self.metrics = [metric_module.get_metric(m) for m in metrics]
        self.set_clipping(clip_norm, clip_value)
        self._warn_probabilities_into_logits()
        return self

    def output_layers(self):
        """The layer that produces each output (None for an output that is a model input)."""
        if hasattr(self, "outputs"):
            return [t.node.layer for t in self.outputs]
        return self.layers[-1:]

    def _warn_probabilities_into_logits(self):
        """LogitsWarning when an output comes from Softmax/Sigmoid and its loss expects logits."""
        from ..layers.activations import Sigmoid, Softmax

        losses = self.loss if isinstance(self.loss, (list, tuple)) else [self.loss]
        for layer, loss in zip(self.output_layers(), losses):
            if isinstance(layer, (Softmax, Sigmoid)) and getattr(loss, "from_logits", False):
                warnings.warn(
                    f"compile: the model ends in {type(layer).__name__} but {type(loss).__name__} expects logits "
                    f"(from_logits=True, the default): it would apply its own {'softmax' if isinstance(layer, Softmax) else 'sigmoid'} "
                    f"again and train worse. Remove the final {type(layer).__name__}, or pass "
                    f"loss=pyrnn.losses.{type(loss).__name__}(from_logits=False)", LogitsWarning, stacklevel=3)

    def set_clipping(self, clip_norm=None, clip_value=None):
        """Clip gradients by global L2 norm / by value before each step (None: no clipping)."""
        self.clip_norm = None if clip_norm is None else check_float("clip_norm", clip_norm, above=0.0)
        self.clip_value = None if clip_value is None else check_float("clip_value", clip_value, above=0.0)
        return self

    # ------------------------------------------------------- fit / evaluate
    def fit(self, x, y=None, epochs=1, batch_size=32, shuffle=True, seed=None, validation_data=None,
            validation_split=0.0, callbacks=(), verbose=1, mask=None, lengths=None, distributed=None):
        """Train for ``epochs`` more epochs on arrays ``x, y`` or a dataset ``x`` (a WindowDataset, a Keras-style
        PyDataset, an iterable of (x, y) batches); returns a new History. See :func:`pyrnn.models.training.fit`
        (``distributed="mpi"``: data-parallel under ``mpiexec``, see :mod:`pyrnn.distributed`)."""
        return fit(self, x, y, epochs=epochs, batch_size=batch_size, shuffle=shuffle, seed=seed,
                   validation_data=validation_data, validation_split=validation_split, callbacks=callbacks,
                   verbose=verbose, mask=mask, lengths=lengths, distributed=distributed)

    def evaluate(self, x, y=None, batch_size=256, mask=None, lengths=None):
        """Mean loss and metrics over (x, y) or a dataset ``x``, without training; a dict."""
        return evaluate(self, x, y, batch_size=batch_size, mask=mask, lengths=lengths)

    def predict(self, x, batch_size=256, lengths=None):
        """Batched forward in eval mode, keeping nothing for backward.

        Changes nothing on the model (no ``training`` flag is flipped: it runs under
        :func:`pyrnn.grad_mode.inference`), so threads may call it concurrently, also while
        another thread trains the model."""
        xs = as_input_list(self, x, "x")
        for i, a in enumerate(xs):
            if a.dtype.kind == "f":
                check_finite(f"x[{i}]" if len(xs) > 1 else "x", a)
        n = len(xs[0])
        outs = []
        with inference():
            for start in range(0, n, batch_size):
                sl = slice(start, start + batch_size)
                out = self.forward(*[a[sl] for a in xs], **batch_forward_kwargs(self, lengths, sl))
                outs.append(out if isinstance(out, tuple) else (out,))
        if not outs:
            raise ValueError("predict: expected at least one sample, got 0")
        joined = tuple(np.concatenate(parts, axis=0) for parts in zip(*outs))
        return joined[0] if len(joined) == 1 else joined

    # ---------------------------------------------------------------- save
    def save(self, path, include_optimizer=True):
        """One checkpoint file (safetensors + JSON config + optimizer + training state), written
        atomically; ``pyrnn.load(path)`` rebuilds the model."""
        compile_cfg = None
        if self.loss is not None:
            losses = self.loss if isinstance(self.loss, (list, tuple)) else [self.loss]
            compile_cfg = {"loss": [loss_to_config(loss) for loss in losses], "loss_is_list": isinstance(self.loss, (list, tuple)),
                           "metrics": [m.name for m in self.metrics], "clip_norm": self.clip_norm, "clip_value": self.clip_value}
        optimizer = self.optimizer.state_dict() if include_optimizer and self.optimizer is not None else None
        layer_rngs = {str(i): layer.rng_state() for i, layer in enumerate(self.layers) if hasattr(layer, "rng_state")}
        history = None if self.history is None else {"history": self.history.history, "epoch": self.history.epoch}
        extra = {"epochs_done": self.epochs_done, "rng": self._rng.bit_generator.state, "layer_rngs": layer_rngs,
                 "history": history}
        save_checkpoint(path, weights=self.state_dict(), config={"model": self.get_config(), "compile": compile_cfg},
                        optimizer=optimizer, extra=extra)
