"""``model.summary()`` (as Keras prints it) and a model's ``repr`` (as PyTorch prints it).

Output shapes come from one forward of a single zero sample in inference mode (nothing saved,
no dropout, no attribute changed): the models call :func:`observe` after each layer, which
records the outputs only inside :func:`observing`, in this thread.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from ..grad_mode import inference

__all__ = ["observe", "observing", "summary", "model_repr"]

_local = threading.local()


def observe(layer, outputs):
    """Called by the models after each layer's forward: record its outputs inside :func:`observing`."""
    seen = getattr(_local, "seen", None)
    if seen is not None:
        seen.append((layer, [tuple(o.shape) for o in outputs if isinstance(o, np.ndarray)]))


@contextlib.contextmanager
def observing():
    previous = getattr(_local, "seen", None)
    _local.seen = []
    try:
        yield _local.seen
    finally:
        _local.seen = previous


def _input_shapes(model, input_shape):
    """Per-sample shapes of the model's inputs: ``input_shape`` (one tuple, or one per input), else
    the functional model's ``Input(shape=...)``; None when unknown."""
    if input_shape is not None:
        shapes = [input_shape] if not input_shape or not isinstance(input_shape[0], (tuple, list)) else input_shape
        return [tuple(int(n) for n in s) for s in shapes]
    inputs = getattr(model, "inputs", None)
    if inputs and all(getattr(t, "shape", None) is not None for t in inputs):
        return [tuple(t.shape) for t in inputs]
    return None


def _shape_text(shape):
    return "(" + ", ".join(["None", *map(str, shape[1:])]) + ")"


def summary(model, input_shape=None, print_fn=print):
    """Print the layers, their output shapes (batch axis None) and parameter counts, then the totals.
    Shapes need ``input_shape`` (per sample, e.g. ``(50, 1)``) or a functional model whose ``Input``s
    have shapes; without them the shape column shows "?". Returns the text."""
    shapes = {}
    known = _input_shapes(model, input_shape)
    if known is not None:
        dtypes = [getattr(t, "dtype", None) for t in getattr(model, "inputs", [None] * len(known))]
        first = model.layers[0].dtype if model.layers else np.float32
        xs = [np.zeros((1, *s), d if d is not None and d.kind in "iu" else first) for s, d in zip(known, dtypes)]
        with observing() as seen, inference():
            model.forward(*xs)
        for layer, outs in seen:
            shapes.setdefault(id(layer), []).append(outs)
    rows = []
    for i, layer in enumerate(model.layers):
        calls = shapes.get(id(layer))
        if calls is None:
            text = "?"
        else:
            outs = calls[0]
            text = _shape_text(outs[0]) + (f" + state {', '.join(str(s) for s in outs[1:])}" if len(outs) > 1 else "")
            text += f" (x{len(calls)} calls)" if len(calls) > 1 else ""
        n = sum(int(p.size) for p in layer.params.values())
        rows.append((f"{i}: {type(layer).__name__}", text, n))
    w0 = max([len("Layer (type)")] + [len(r[0]) for r in rows]) + 2
    w1 = max([len("Output shape")] + [len(r[1]) for r in rows]) + 2
    w2 = max([len("Param #")] + [len(f"{r[2]:,}") for r in rows])
    rule = "=" * (w0 + w1 + w2)
    lines = [f'Model: "{type(model).__name__}"', f"{'Layer (type)':<{w0}}{'Output shape':<{w1}}{'Param #':>{w2}}", rule]
    lines += [f"{a:<{w0}}{b:<{w1}}{c:>{w2},}" for a, b, c in rows]
    total = sum(r[2] for r in rows)
    nbytes = sum(int(p.nbytes) for layer in model.layers for p in layer.params.values())
    buffers = sum(int(b.size) for layer in model.layers for b in layer.buffers.values())
    lines += [rule, f"Total params: {total:,} ({_bytes(nbytes)})", f"Trainable params: {total:,}"]
    if buffers:
        lines.append(f"Non-trainable buffers (running statistics): {buffers:,}")
    if known is None:
        lines.append("(output shapes: pass input_shape=(time, features) or the like, per sample)")
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text


def _bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def model_repr(model):
    """``Sequential(\\n  (0): Conv1D(...)\\n  ...\\n)``, PyTorch's style."""
    body = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(model.layers))
    return f"{type(model).__name__}({body}\n)" if body else f"{type(model).__name__}()"
