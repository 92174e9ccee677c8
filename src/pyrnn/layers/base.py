"""The ``Layer`` base: named parameters, their gradients, and PyTorch-style state dicts."""

from __future__ import annotations

import numpy as np


class Layer:
    """A layer owns named parameters (``{name: ndarray}``) and same-keyed gradients.

    ``backward`` ADDS into :attr:`grads`; :meth:`zero_grad` clears them.
    """

    def __init__(self, dtype=np.float32):
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
        self.dtype = dtype
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

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
