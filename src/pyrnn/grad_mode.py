"""Grad mode, inference mode and the top-level forward scope, all per thread.

Like PyTorch's grad mode, every switch here is **thread-local**: ``no_grad()`` in one
thread never changes what a forward in another thread saves, so one thread may train a
model while others run ``predict`` on it or on other models.

- :func:`no_grad`: forwards save nothing for backward (the layers' saved-for-backward
  stacks are left alone).
- :func:`inference`: ``no_grad`` plus eval behaviour (no dropout, running statistics) for
  every forward in the block, **without touching any layer's ``training`` flag**: the one
  context behind ``predict``, ``evaluate``, ``fit``'s dry run and ``stream``.
- :func:`forward_scope`: what makes one forward "top level". Every ``Layer.forward`` and
  every model's forward runs inside it; the outermost call in a thread opens a new
  *generation*. A layer's saved state is tagged with the generation that saved it, so a
  training-mode forward that was never followed by a backward is released by the next
  top-level forward (see :meth:`pyrnn.layers.Layer._save`), while a layer shared inside
  one graph call still stacks its calls.
- :func:`note_output`, :func:`note_loss_gradient`, :func:`check_gradient_source`: the guard on
  PyTorch's habit ``out = m.forward(x); loss.forward(out, y); m.forward(x_val);
  m.backward(loss.backward())``. The output of a training-mode top-level forward is
  remembered (weakly, the last few per thread) with its generation, a loss gradient with the
  generation of the output it was computed on, and a backward fed that gradient raises if the
  forward it would consume is another one (the validation forward replaced it).

This module imports nothing from pyrnn: everything else may import it.
"""

from __future__ import annotations

import contextlib
import threading
import weakref

__all__ = ["is_grad_enabled", "no_grad", "in_inference", "inference", "forward_scope", "enter_forward", "leave_forward",
           "generation", "note_output", "output_generation", "note_loss_gradient", "check_gradient_source"]

_local = threading.local()


def is_grad_enabled():
    """Whether forwards in this thread save what their backward needs (False inside :func:`no_grad`)."""
    return getattr(_local, "grad", True)


def in_inference():
    """Whether this thread is inside :func:`inference` (layers then act as in eval mode)."""
    return getattr(_local, "inference", 0) > 0


@contextlib.contextmanager
def no_grad():
    """Run forwards in this thread without saving anything for backward."""
    previous = is_grad_enabled()
    _local.grad = False
    try:
        yield
    finally:
        _local.grad = previous


@contextlib.contextmanager
def inference():
    """Forwards in this thread act as in eval mode and save nothing for backward.

    No layer or model attribute is changed, so concurrent ``predict`` calls, or ``predict``
    beside ``fit`` in another thread, never see each other's modes.
    """
    _local.inference = getattr(_local, "inference", 0) + 1
    try:
        with no_grad():
            yield
    finally:
        _local.inference -= 1


def generation():
    """The number of the current (or last) top-level forward in this thread."""
    return getattr(_local, "generation", 0)


def enter_forward():
    """Enter a forward (the outermost one in this thread starts a new generation); returns the
    depth to hand back to :func:`leave_forward`. The cheap form of :func:`forward_scope` that
    every ``Layer.forward`` runs in."""
    depth = getattr(_local, "depth", 0)
    if depth == 0:
        _local.generation = getattr(_local, "generation", 0) + 1
    _local.depth = depth + 1
    return depth


def leave_forward(depth):
    """Leave the forward entered by the :func:`enter_forward` that returned ``depth``."""
    _local.depth = depth


@contextlib.contextmanager
def forward_scope():
    """Mark a forward, e.g. a hand-written graph call that uses one layer several times: every
    forward inside belongs to it, so each saves for its own backward."""
    depth = enter_forward()
    try:
        yield
    finally:
        leave_forward(depth)


# ----------------------------------------------------- which forward a gradient belongs to
_REMEMBERED = 8  # outputs (and loss gradients) remembered per thread: enough for a few models and losses


def _remember(kind, array, gen):
    entries = _local.__dict__.setdefault(kind, [])
    try:
        ref = weakref.ref(array)
    except TypeError:  # not weakly referenceable (not an ndarray): nothing to remember
        return
    entries.append((ref, gen))
    if len(entries) > _REMEMBERED:
        del entries[0]


def _recall(kind, array):
    for ref, gen in reversed(getattr(_local, kind, ())):
        if ref() is array:
            return gen
    return None


def note_output(out):
    """Remember the output(s) of the top-level forward that just ran in this thread (a no-op for an
    inner forward, or when gradients are off): ``loss.forward`` looks its prediction up here."""
    if getattr(_local, "depth", 0) != 0 or not is_grad_enabled():
        return
    for a in out if isinstance(out, tuple) else (out,):
        if not isinstance(a, tuple):
            _remember("outputs", a, generation())


def output_generation(pred):
    """The generation of the remembered top-level forward whose output ``pred`` is, or None."""
    return _recall("outputs", pred)


def note_loss_gradient(grad, gen):
    """Tag a loss's gradient ``grad`` with ``gen``, :func:`output_generation` of its prediction (None: no tag)."""
    if gen is not None:
        _remember("loss_grads", grad, gen)


def check_gradient_source(who, grad, consumed):
    """Raise if ``grad`` is a loss's gradient on the output of a forward other than generation
    ``consumed``, the forward the backward of ``who`` is about to consume."""
    gen = _recall("loss_grads", grad)
    if gen is not None and gen != consumed:
        raise RuntimeError(
            f"{who}.backward: the gradient comes from a loss computed on the output of an earlier training-mode "
            "forward, but a later training-mode forward ran before this backward and replaced it (a forward is "
            "consumed by the next backward). Run evaluation forwards between them under pyrnn.no_grad(), or with "
            "predict/evaluate, which keep nothing for backward")
