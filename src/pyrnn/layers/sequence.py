"""Sequence plumbing: ``TimeDistributed`` (a layer at every time step), ``LastStep`` and
``FirstStep`` (many-to-one), ``RepeatVector`` (one-to-many), and the ``Add`` and
``Concatenate`` merges.

Legend: B = batch, T = time, F = features, ``...`` = any trailing axes, k = input index
of a merge.

None of these layers has parameters of its own (``TimeDistributed`` exposes its inner
layer's); their dtype follows the input (float32 or float64, float16 widened to float32),
and integer inputs raise TypeError (except ``LastStep``'s ``lengths`` and whatever the
inner layer of ``TimeDistributed`` accepts).
"""

from __future__ import annotations

import numpy as np

from .. import _buffers
from .._checks import as_array, check_int, check_lengths, check_ndim, check_shape, float_input
from ..backends import backend_module, get_backend
from .activations import config_repr
from .base import Layer, Wrapper


def _copy(a, dtype):
    """A C-contiguous copy of ``a`` in ``dtype``, in recycled memory (:mod:`pyrnn._buffers`)."""
    out = _buffers.empty(a.shape, dtype)
    np.copyto(out, a, casting="unsafe")
    return out


class TimeDistributed(Wrapper):
    """Apply a layer to every time step, by folding time into the batch (one call, no loop).

    Parameters
    ----------
    layer : Layer
        Takes (N, ...) and returns (N, ...') for any N.

    Notes
    -----
    ``forward(x)``: x (B, T, ...) -> y (B, T, ...'), computed as ``layer(x.reshape(B*T, ...))``.
    :attr:`params` and :attr:`grads` ARE the inner layer's dicts (same objects), so
    optimizers and ``state_dict`` see the inner layer's names; :meth:`train`/:meth:`eval`
    reach the inner layer too. Inputs are passed to the inner layer as they are, so it
    decides their dtype (``TimeDistributed(Embedding(...))`` takes integer (B, T) indices).
    """

    # y[b, t] = layer(x[b, t]) for all (b, t) at once: y = layer(x as (B*T, ...)) as (B, T, ...')
    def forward(self, x):
        """Apply the inner layer at every step.

        Parameters
        ----------
        x : array (B, T, ...)

        Returns
        -------
        y : ndarray (B, T, ...')
        """
        x = as_array("x", x, "an array (batch, time, ...)")
        if x.ndim < 2:
            raise ValueError(f"x: expected an array (batch, time, ...) of at least 2 dimensions, got {x.ndim}-D with shape {x.shape}")
        B, T = x.shape[:2]
        y = self.layer.forward(x.reshape((B * T,) + x.shape[2:]))
        if not isinstance(y, np.ndarray) or y.ndim < 1 or y.shape[0] != B * T:
            got = f"shape {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
            raise ValueError(f"{type(self.layer).__name__}: expected one array with {B * T} rows (batch*time), got {got}")
        y = y.reshape((B, T) + y.shape[1:])
        self._save((y.shape, y.dtype))
        return y

    # dx[b, t] = layer.backward(dy[b, t]) for all (b, t) at once; inner weight gradients add up over steps
    def backward(self, dy):
        """Backward of the inner layer over every step.

        Parameters
        ----------
        dy : array (B, T, ...'), dL/dy

        Returns
        -------
        dx : ndarray (B, T, ...), or None if the inner layer returns None (integer inputs)
        """
        shape, dtype = self._peek_saved()
        dy = float_input("dy", dy, dtype)
        check_shape("dy", dy, shape, "(batch, time, ...) of the last forward's output")
        self._pop_saved()
        B, T = shape[:2]
        dx = self.layer.backward(dy.reshape((B * T,) + shape[2:]))
        return None if dx is None else dx.reshape((B, T) + dx.shape[1:])

    def __repr__(self):
        return f"TimeDistributed({self.layer!r})"


class _PickStep(Layer):
    """Base of ``LastStep``/``FirstStep``: y[b] = x[b, idx[b]]; subclasses give ``idx``."""

    def _steps(self, B, T, lengths):
        raise NotImplementedError

    # y[b] = x[b, idx[b]]
    def forward(self, x, lengths=None):
        x = float_input("x", x)
        check_ndim("x", x, 3, "(batch, time, features)")
        B, T = x.shape[:2]
        if T == 0:
            raise ValueError(f"x: expected at least one time step, got shape {x.shape}")
        idx = self._steps(B, T, lengths)
        self._save((x.shape, x.dtype, idx))
        return x[np.arange(B), idx]

    # dx[b, idx[b]] = dy[b]; dx = 0 at every other step
    def backward(self, dy):
        """Scatter dL/dy back to the picked steps.

        Parameters
        ----------
        dy : array (B, F), dL/dy

        Returns
        -------
        dx : ndarray (B, T, F), zero except at the picked steps
        """
        shape, dtype, idx = self._peek_saved()
        dy = float_input("dy", dy, dtype)
        check_shape("dy", dy, (shape[0], shape[2]), "(batch, features) of the last forward")
        self._pop_saved()
        dx = np.zeros(shape, dtype)
        dx[np.arange(shape[0]), idx] = dy
        return dx

    def get_config(self):
        return {}

    __repr__ = config_repr


class LastStep(_PickStep):
    """Many-to-one: the last (valid) time step of each sequence.

    ``forward(x, lengths=None)``: x (B, T, F) -> y (B, F), ``y[b] = x[b, T-1]``, or with
    ``lengths`` (B,) integers in [1, T], ``y[b] = x[b, lengths[b]-1]`` (right-padded batches).
    ``backward(dy)`` returns dx (B, T, F), zero except at the picked steps; ``lengths`` (integer
    data) gets no gradient.

    Notes
    -----
    For a bidirectional recurrent output (B, T, 2H) = [forward | reverse], the forward half
    summarises the sequence at its last step but the reverse half at t = 0 (its final state
    is ``y[:, 0, H:]``): use ``LastStep`` on ``y[..., :H]`` and :class:`FirstStep` on
    ``y[..., H:]``, then ``Concatenate``.
    """

    def _steps(self, B, T, lengths):
        if lengths is None:
            return np.full(B, T - 1)
        return check_lengths(lengths, B, T, minimum=1).astype(np.intp) - 1

    def forward(self, x, lengths=None):
        """Pick the last valid step of each sequence.

        Parameters
        ----------
        x : array (B, T, F), float32 or float64, T >= 1
        lengths : None or integer array (B,) with values in [1, T]
            Valid steps per sequence; None means all T.

        Returns
        -------
        y : ndarray (B, F)
        """
        return super().forward(x, lengths)


class FirstStep(_PickStep):
    """The first time step: x (B, T, F) -> y (B, F), ``y[b] = x[b, 0]``.

    Where the reverse direction of a bidirectional recurrent layer ends (see :class:`LastStep`).
    ``backward(dy)`` returns dx (B, T, F), zero except at t = 0.
    """

    def _steps(self, B, T, lengths):
        return np.zeros(B, np.intp)

    def forward(self, x):
        """Pick step 0.

        Parameters
        ----------
        x : array (B, T, F), float32 or float64, T >= 1

        Returns
        -------
        y : ndarray (B, F)
        """
        return super().forward(x)


class RepeatVector(Layer):
    """One-to-many: repeat a vector ``n`` times along a new time axis (Keras' ``RepeatVector``).

    Parameters
    ----------
    n : int
        Number of time steps T of the output.

    Notes
    -----
    ``forward(x)``: x (B, F) -> y (B, n, F), ``y[b, t] = x[b]``; ``backward(dy)``: dx = sum_t dy[:, t].
    """

    def __init__(self, n):
        super().__init__()
        self.n = check_int("n", n, 1)

    # y[b, t] = x[b]
    def forward(self, x):
        """x (B, F) -> y (B, n, F)."""
        x = float_input("x", x)
        check_ndim("x", x, 2, "(batch, features)")
        self._save((x.shape, x.dtype))
        return np.repeat(x[:, None, :], self.n, axis=1)

    # dx[b] = sum_t dy[b, t]
    def backward(self, dy):
        """dy (B, n, F) -> dx (B, F)."""
        (B, F), dtype = self._peek_saved()
        dy = float_input("dy", dy, dtype)
        check_shape("dy", dy, (B, self.n, F), "(batch, n, features) of the last forward")
        self._pop_saved()
        return dy.sum(axis=1)

    def get_config(self):
        return {"n": self.n}

    __repr__ = config_repr


class _Merge(Layer):
    """Base of ``Add``/``Concatenate``: ``forward(*xs)`` takes one or more float arrays."""

    def _inputs(self, xs):
        if not xs:
            raise ValueError(f"{type(self).__name__}: expected at least one input, got none")
        return [float_input(f"input {k}", x) for k, x in enumerate(xs)]

    def _raise_mismatch(self, xs, k, rule):
        raise ValueError(f"{type(self).__name__}: expected {rule}, got input 0 with shape {xs[0].shape} "
                         f"and input {k} with shape {xs[k].shape}")

    def get_config(self):
        return {}

    __repr__ = config_repr


class Add(_Merge):
    """Elementwise sum of inputs of one shape (no broadcasting).

    ``forward(*xs)`` -> y = x_0 + x_1 + ...; ``backward(dy)`` returns a tuple with one copy of dy
    per input (each in its input's dtype). Mixed float32/float64 inputs give a float64 output.
    """

    # y = sum_k x_k
    def forward(self, *xs):
        """Sum the inputs.

        Parameters
        ----------
        *xs : arrays, all of one shape (...)

        Returns
        -------
        y : ndarray (...)
        """
        xs = self._inputs(xs)
        for k in range(1, len(xs)):
            if xs[k].shape != xs[0].shape:
                self._raise_mismatch(xs, k, "inputs of one shape")
        dtype = np.result_type(*xs)
        y = _copy(xs[0], dtype) if len(xs) == 1 else np.add(xs[0], xs[1], out=_buffers.empty(xs[0].shape, dtype))
        for x in xs[2:]:
            y += x
        self._save((y.shape, y.dtype, [x.dtype for x in xs]))
        return y

    # dx_k = dy for every k
    def backward(self, dy):
        """One copy of dy (...) per input, as a tuple."""
        shape, dtype, dtypes = self._peek_saved()
        dy = float_input("dy", dy, dtype)
        check_shape("dy", dy, shape, "(the shape of the inputs of the last forward)")
        self._pop_saved()
        return tuple(_copy(dy, dt) for dt in dtypes)


class Concatenate(_Merge):
    """Concatenation along ``axis`` (Keras' ``Concatenate``, ``np.concatenate``).

    Parameters
    ----------
    axis : int, default -1
        Inputs have one number of dimensions and equal sizes on every other axis.

    Notes
    -----
    ``backward(dy)`` returns a tuple with each input's slice of dy, in its input's dtype.
    """

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = check_int("axis", axis, None, None)

    # y = [x_0 | x_1 | ...] along axis
    def forward(self, *xs):
        """Concatenate the inputs.

        Parameters
        ----------
        *xs : arrays (..., F_k, ...), F_k on ``axis``

        Returns
        -------
        y : ndarray (..., sum_k F_k, ...)
        """
        xs = self._inputs(xs)
        ndim = xs[0].ndim
        if not -ndim <= self.axis < ndim:
            raise ValueError(f"input 0: expected an array with axis {self.axis}, got {ndim}-D with shape {xs[0].shape}")
        axis = self.axis % ndim
        rest = lambda s: s[:axis] + s[axis + 1:]  # noqa: E731
        for k in range(1, len(xs)):
            if xs[k].ndim != ndim or rest(xs[k].shape) != rest(xs[0].shape):
                self._raise_mismatch(xs, k, f"inputs of equal shapes except on axis {self.axis}")
        dtype = np.result_type(*xs)
        kernel = axis == ndim - 1 and dtype in (np.float32, np.float64) and all(
            x.dtype == dtype and x.flags.c_contiguous for x in xs)
        if kernel:  # the channels of images, the features of sequences: the backend's copy
            y = backend_module(get_backend()).concat_last(list(xs))
        else:
            shape = xs[0].shape[:axis] + (sum(x.shape[axis] for x in xs),) + xs[0].shape[axis + 1:]
            y = np.concatenate(xs, axis=axis, out=_buffers.empty(shape, dtype))
        self._save((y.shape, y.dtype, axis, [x.shape[axis] for x in xs], [x.dtype for x in xs]))
        return y

    # dx_k = dy[..., offset_k : offset_k + F_k, ...]
    def backward(self, dy):
        """Each input's slice of dy, as a tuple."""
        shape, dtype, axis, sizes, dtypes = self._peek_saved()
        dy = float_input("dy", dy, dtype)
        check_shape("dy", dy, shape, "(the shape of the last forward's output)")
        self._pop_saved()
        if axis == dy.ndim - 1 and dy.flags.c_contiguous and all(dt == dtype for dt in dtypes):
            return tuple(backend_module(get_backend()).split_last(dy, sizes))
        parts = np.split(dy, np.cumsum(sizes)[:-1], axis=axis)
        return tuple(_copy(part, dt) for part, dt in zip(parts, dtypes))

    def get_config(self):
        return {"axis": self.axis}
