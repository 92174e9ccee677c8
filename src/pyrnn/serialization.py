"""``model.save(path)`` and ``pyrnn.load(path)``: one safetensors checkpoint holding the
weights, the JSON architecture, the compile settings, the optimizer state and the
training state (epochs done, history, every random generator), written atomically
and verified on load (:mod:`pyrnn.checkpoint`). Never pickle.

Loading a checkpoint saved after epoch k and calling ``fit(epochs=N - k)`` continues
bit for bit like an uninterrupted ``fit(epochs=N)``.
"""

from __future__ import annotations

import numpy as np


def _layer_rngs(model):
    return {str(i): layer.rng_state() for i, layer in enumerate(model.layers) if hasattr(layer, "rng_state")}


def save_model(model, path, include_optimizer=True):
    from .checkpoint import save_checkpoint
    from .losses import loss_to_config

    compile_cfg = None
    if model.loss is not None:
        losses = model.loss if isinstance(model.loss, (list, tuple)) else [model.loss]
        compile_cfg = {"loss": [loss_to_config(loss) for loss in losses], "loss_is_list": isinstance(model.loss, (list, tuple)),
                       "metrics": [m.name for m in model.metrics], "clip_norm": model.clip_norm, "clip_value": model.clip_value}
    optimizer = model.optimizer.state_dict() if include_optimizer and model.optimizer is not None else None
    extra = {"epochs_done": model.epochs_done, "rng": model._rng.bit_generator.state, "layer_rngs": _layer_rngs(model),
             "history": None if model.history is None else {"history": model.history.history, "epoch": model.history.epoch}}
    save_checkpoint(path, weights=model.state_dict(), config={"model": model.get_config(), "compile": compile_cfg},
                    optimizer=optimizer, extra=extra)


def model_from_config(config):
    from .models import Model, Sequential

    kinds = {"Sequential": Sequential, "Model": Model}
    if config.get("class") not in kinds:
        raise ValueError(f"config: expected a model class among {sorted(kinds)}, got {config.get('class')!r}")
    return kinds[config["class"]].from_config(config)


def load(path):
    """Rebuild a model saved with ``model.save(path)``: architecture, weights and, when
    saved, the compile settings, optimizer state and training state (to resume ``fit``)."""
    from .checkpoint import load_checkpoint
    from .losses import loss_from_config
    from .metrics import get_metric
    from .models.training import History
    from .optim import optimizer_from_state

    ckpt = load_checkpoint(path)
    model = model_from_config(ckpt["config"]["model"])
    model.load_state_dict(ckpt["weights"])
    compile_cfg = ckpt["config"].get("compile")
    if compile_cfg is not None:
        losses = [loss_from_config(c) for c in compile_cfg["loss"]]
        model.loss = losses if compile_cfg["loss_is_list"] else losses[0]
        model.metrics = [get_metric(m) for m in compile_cfg["metrics"]]
        model.clip_norm, model.clip_value = compile_cfg["clip_norm"], compile_cfg["clip_value"]
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
