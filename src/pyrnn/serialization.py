"""``pyrnn.load(path)``: rebuild a model saved with ``model.save(path)`` — one safetensors checkpoint
holding the weights, the JSON architecture, the compile settings, the optimizer state and the
training state (epochs done, history, every random generator), written atomically and verified on
load (:mod:`pyrnn.checkpoint`). Never pickle.

Loading a checkpoint saved after epoch k and calling ``fit(epochs=N - k)`` continues
bit for bit like an uninterrupted ``fit(epochs=N)``.

Loading is bounded by the file: the architecture is first built with
:class:`~pyrnn.layers.base.shapes_only` (no parameter memory, no random draws), its parameter
names and shapes are checked against the weights the file holds, and only then is the model built.
A config that asks for a different or larger model than the file's weights is refused before
anything is allocated. Whatever is malformed in a checksum-valid file (the checksum detects
corruption, not tampering) raises :class:`~pyrnn.checkpoint.CheckpointError`.
"""

from __future__ import annotations

import numpy as np

from .checkpoint import CheckpointError, load_checkpoint
from .layers.base import shapes_only
from .losses import loss_from_config
from .metrics import get_metric
from .models import Model, Sequential
from .models.training import History
from .optim import optimizer_from_state

__all__ = ["load", "model_from_config"]

_MODEL_CLASSES = {"Sequential": Sequential, "Model": Model}


def model_from_config(config):
    """A new model from ``model.get_config()``."""
    if not isinstance(config, dict) or config.get("class") not in _MODEL_CLASSES:
        got = config.get("class") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"config: expected a model class among {sorted(_MODEL_CLASSES)}, got {got!r}")
    return _MODEL_CLASSES[config["class"]].from_config(config)


def _check_architecture(config, weights):
    """Refuse a config whose parameters differ from the file's weights, before building it."""
    with shapes_only():
        shapes = {name: a.shape for name, a in model_from_config(config).named_state().items()}
    found = {name: tuple(np.shape(w)) for name, w in weights.items()}
    if shapes != found:
        missing, extra = sorted(set(shapes) - set(found)), sorted(set(found) - set(shapes))
        wrong = [f"{k}: expected {shapes[k]}, got {found[k]}" for k in sorted(set(shapes) & set(found)) if shapes[k] != found[k]]
        raise CheckpointError(f"the architecture in the checkpoint's config does not match its weights: "
                              f"missing {missing[:5]}, unexpected {extra[:5]}, shapes {wrong[:5]}")


def load(path):
    """Rebuild a model saved with ``model.save(path)``: architecture, weights and, when
    saved, the compile settings, optimizer state and training state (to resume ``fit``).

    Raises
    ------
    CheckpointError
        The file is damaged or malformed, or its config and weights disagree.
    """
    ckpt = load_checkpoint(path)
    try:
        return _rebuild(ckpt)
    except CheckpointError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise CheckpointError(f"{path}: the checkpoint's metadata does not rebuild a model "
                              f"({type(exc).__name__}: {exc})") from exc


def _rebuild(ckpt):
    config = ckpt["config"]
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(f"checkpoint config: expected a dict with key 'model', got {config!r:.200}")
    _check_architecture(config["model"], ckpt["weights"])
    model = model_from_config(config["model"])
    model.load_state_dict(ckpt["weights"])
    compile_cfg = config.get("compile")
    if compile_cfg is not None:
        losses = [loss_from_config(c) for c in compile_cfg["loss"]]
        model.loss = losses if compile_cfg["loss_is_list"] else losses[0]
        model.metrics = [get_metric(m) for m in compile_cfg["metrics"]]
        model.set_clipping(compile_cfg["clip_norm"], compile_cfg["clip_value"])
    if ckpt["optimizer"] is not None:
        model.optimizer = optimizer_from_state(ckpt["optimizer"], model.param_grad_pairs())
    extra = ckpt["extra"] or {}
    model.epochs_done = int(extra.get("epochs_done", 0))
    if "rng" in extra:
        model._rng = np.random.default_rng()
        model._rng.bit_generator.state = extra["rng"]
    for i, state in (extra.get("layer_rngs") or {}).items():
        model.layers[int(i)].set_rng_state(state)
    if extra.get("history"):
        model.history = History(extra["history"]["history"], extra["history"]["epoch"])
    return model
