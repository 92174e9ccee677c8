"""Two parameterless plumbing layers the task models need: ``FeatureSlice`` (a range of the
last axis, e.g. one direction of a bidirectional output) and ``VectorToState`` (a vector per
sample -> a recurrent layer's initial state).

Legend: B = batch, F = features (last axis), S = stop - start, L = num_states (layers of the
recurrent layer whose state is built), H = hidden size, ``...`` = any leading axes.

Both follow their input's dtype (float32 or float64) and take no integer input.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_int, check_ndim, check_shape, float_input
from .activations import config_repr
from .base import Layer


class FeatureSlice(Layer):
    """Features ``start:stop`` of the last axis (``x[..., start:stop]``).

    Parameters
    ----------
    start, stop : int, 0 <= start < stop
        The output has S = stop - start features; ``stop`` must not exceed the input's F.

    Notes
    -----
    For a bidirectional recurrent output (B, T, 2H) = [forward | reverse],
    ``FeatureSlice(0, H)`` is the forward direction and ``FeatureSlice(H, 2H)`` the reverse one.
    """

    def __init__(self, start, stop):
        super().__init__()
        self.start = check_int("start", start, 0)
        self.stop = check_int("stop", stop, self.start + 1)

    # y = x[..., start:stop]
    def forward(self, x):
        """Cut the feature range.

        Parameters
        ----------
        x : array (..., F), float32 or float64, F >= stop

        Returns
        -------
        y : ndarray (..., S), a copy
        """
        x = float_input("x", x)
        if x.ndim == 0 or x.shape[-1] < self.stop:
            raise ValueError(f"x: expected at least {self.stop} features in the last axis (stop={self.stop}), got shape {x.shape}")
        self._save((x.shape, x.dtype))
        return x[..., self.start : self.stop].copy()

    # dx[..., start:stop] = dy;  dx = 0 on every other feature
    def backward(self, dy):
        """dy (..., S) -> dx (..., F), zero outside the slice."""
        shape, dtype = self._peek_saved()
        dy = float_input("dy", dy, dtype)
        check_shape("dy", dy, shape[:-1] + (self.stop - self.start,), "(..., stop - start) of the last forward")
        self._pop_saved()
        dx = np.zeros(shape, dtype)
        dx[..., self.start : self.stop] = dy
        return dx

    def get_config(self):
        return {"start": self.start, "stop": self.stop}

    __repr__ = config_repr


class VectorToState(Layer):
    """A vector per sample -> the hidden state of a recurrent layer, (B, L*H) -> (L, B, H).

    Parameters
    ----------
    num_states : int, default 1
        L, the first axis of the state (``num_layers * num_directions`` of the recurrent layer);
        the input's F must be a multiple of it, H = F / L.

    Notes
    -----
    ``h[l, b] = x[b, l*H : (l+1)*H]``: with a ``Dense(F_in, L*H)`` in front, a vector (an image
    feature, a class code) becomes a decoder's initial state ``initial_state=h``.
    """

    def __init__(self, num_states=1):
        super().__init__()
        self.num_states = check_int("num_states", num_states, 1)

    # h[l, b, :] = x[b, l*H : (l+1)*H]
    def forward(self, x):
        """x (B, L*H) -> h (L, B, H)."""
        x = float_input("x", x)
        check_ndim("x", x, 2, "(batch, num_states*hidden)")
        B, F = x.shape
        if F % self.num_states:
            raise ValueError(f"x: expected a feature count divisible by num_states={self.num_states}, got shape {x.shape}")
        self._save((x.shape, x.dtype))
        return np.ascontiguousarray(x.reshape(B, self.num_states, F // self.num_states).transpose(1, 0, 2))

    # dx[b, l*H : (l+1)*H] = dh[l, b, :]
    def backward(self, dy):
        """dh (L, B, H) -> dx (B, L*H)."""
        (B, F), dtype = self._peek_saved()
        dy = float_input("dy", dy, dtype)
        check_shape("dy", dy, (self.num_states, B, F // self.num_states), "(num_states, batch, hidden) of the last forward")
        self._pop_saved()
        return np.ascontiguousarray(dy.transpose(1, 0, 2)).reshape(B, F)

    def get_config(self):
        return {"num_states": self.num_states}

    __repr__ = config_repr
