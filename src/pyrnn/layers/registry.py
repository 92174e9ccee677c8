"""The one registry of layer classes: every :class:`~pyrnn.layers.Layer` subclass is entered
here when it is defined (``Layer.__init_subclass__``), built-in or user-defined, so any layer
saves to ``{"class": name, "config": kwargs}`` and loads back by that name.

Two different classes with the same name may both exist (say, a user's ``Dense``); looking such
a name up raises an error that says so, rather than guessing. The registry holds classes weakly:
a class that is gone (one defined inside a function, say) leaves it.
"""

from __future__ import annotations

import weakref

__all__ = ["register", "layer_class", "layer_config", "layer_from_config"]

_CLASSES: dict[str, list[weakref.ref]] = {}


def _alive(name):
    return [c for c in (ref() for ref in _CLASSES.get(name, [])) if c is not None]


def register(cls):
    """Enter ``cls`` under its name (called for every Layer subclass at definition)."""
    same_place = lambda c: c.__qualname__ == cls.__qualname__ and c.__module__ == cls.__module__  # noqa: E731
    # a redefinition (same module and qualified name) replaces the old class
    _CLASSES[cls.__name__] = [weakref.ref(c) for c in _alive(cls.__name__) if not same_place(c)] + [weakref.ref(cls)]
    return cls


def layer_class(name):
    """The layer class registered as ``name``."""
    if not isinstance(name, str):
        raise TypeError(f"layer class: expected a class name (str), got {type(name).__name__} {name!r}")
    found = [c for c in _alive(name) if not c.__name__.startswith("_")]
    if len(found) != 1:
        what = "no such class is defined" if not found else \
            f"{len(found)} classes have that name: " + ", ".join(f"{c.__module__}.{c.__qualname__}" for c in found)
        raise ValueError(f"layer class: expected the name of one defined Layer subclass, got {name!r} ({what})")
    return found[0]


def layer_config(layer):
    """``{"class": name, "config": kwargs}`` that :func:`layer_from_config` turns back into the layer."""
    return {"class": type(layer).__name__, "config": layer.get_config()}


def layer_from_config(spec):
    """A new layer from ``{"class": name, "config": kwargs}`` (via the class's ``from_config``)."""
    if not isinstance(spec, dict) or set(spec) != {"class", "config"}:
        raise TypeError(f"layer config: expected a dict with keys 'class' and 'config', got {spec!r:.200}")
    if not isinstance(spec["config"], dict):
        raise TypeError(f"layer config of {spec['class']!r}: expected a dict of keyword arguments, "
                        f"got {type(spec['config']).__name__}")
    return layer_class(spec["class"]).from_config(spec["config"])
