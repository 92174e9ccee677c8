"""Feed-forward layers: ``Dense`` (PyTorch's ``Linear``), ``Embedding`` and ``Dropout``.

Legend: N = rows (every leading axis of the input, flattened), I = in_features,
O = out_features, V = num_embeddings (vocabulary), E = embedding_dim, ``...`` = any
leading axes (for example (B, T) of a sequence), ``@`` = matrix product.

``Dense`` and ``Embedding`` own parameters of the layer's dtype (float32 by default)
and cast floating inputs to it; ``Dropout`` has none and follows the input's dtype.
"""

from __future__ import annotations

import copy

import numpy as np

from .._checks import as_array, as_float_array, check_bool, check_float, check_int, check_seed, check_shape
from ..backends import bfloat16, get_backend, ordered
from ..distributed.rows import uniform
from ..threads import gemm_threads
from .activations import Elementwise, config_repr
from .base import Layer


def column_sums(a2):
    """``a2.sum(axis=0)`` of a 2-D array (N, O), as one matrix-vector product ``ones(N) @ a2``:
    NumPy reduces axis 0 one row at a time, ~20x slower on tall arrays with few columns (a bias
    gradient over B*H*W pixels: 0.66 ms against 0.03 ms for (32768, 16) float32); the BLAS sums
    the rows in SIMD lanes (on one thread for small arrays, see :func:`pyrnn.threads.gemm_threads`)."""
    with gemm_threads(2 * a2.size):
        return np.ones(a2.shape[0], a2.dtype) @ a2


def product(a, b, trans_a=False, trans_b=False, out=None, backend=None):
    """``op(a) @ op(b)`` of 2-D float arrays (op = transpose where asked), added into ``out`` when given,
    summed in an order that does not depend on the thread count: with the cpp backend on the kernels'
    thread team (``pyrnn._C.matmul``: blocks of the output, each one BLAS call on one thread, so small
    products run on one thread and a team member that starts late takes fewer blocks); otherwise NumPy's
    BLAS through :func:`pyrnn.backends.ordered.matmul` (one thread for small products, see
    :func:`pyrnn.threads.gemm_threads`). ``backend``: the backend that decides (default the current one; Dense's
    backward passes its forward's, as every layer's backward runs on its forward's backend). Dense's three products."""
    if (backend or get_backend()) == "cpp":
        from .. import _C

        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
        shape = (a.shape[1] if trans_a else a.shape[0], b.shape[0] if trans_b else b.shape[1])
        target = np.empty(shape, a.dtype) if out is None else out
        _C.matmul(a, b, target, trans_a, trans_b, out is not None)
        return target
    a, b = a.T if trans_a else a, b.T if trans_b else b
    with gemm_threads(2 * a.shape[0] * a.shape[1] * b.shape[1]):
        return ordered.matmul(a, b, out=out)


class Dense(Layer):
    """Fully connected layer on the last axis, ``y = x W^T + b`` (``torch.nn.Linear``).

    Parameters
    ----------
    in_features : int
        I, size of the input's last axis.
    out_features : int
        O, size of the output's last axis.
    bias : bool, default True
        Whether the ``bias`` parameter exists.
    dtype : float32, float64 or "bfloat16", default float32
        "bfloat16": mixed precision (float32 parameters, inputs and outputs; the three products
        ``x W^T``, ``dy W``, ``dy^T x`` take bfloat16-rounded operands and sum in float32, the
        bias and its gradient stay float32: :mod:`pyrnn.backends.bfloat16`).
    seed : int or None
        Seed of the default init, PyTorch's ``U(-1/sqrt(I), 1/sqrt(I))`` for weight and bias.

    Notes
    -----
    Parameters (PyTorch's names and layout): ``weight`` (O, I), ``bias`` (O,).
    ``forward`` keeps a reference to its input for ``backward``: do not modify that
    array in place in between.
    """

    supports_bfloat16 = True

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, seed=None):
        super().__init__(dtype)
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
        self.bias = check_bool("bias", bias)
        self.seed = check_seed("seed", seed)
        rng = np.random.default_rng(self.seed)
        bound = 1.0 / np.sqrt(self.in_features)
        init = lambda shape: rng.uniform(-bound, bound, shape)  # noqa: E731
        self.add_param("weight", (self.out_features, self.in_features), init)
        if self.bias:
            self.add_param("bias", (self.out_features,), init)

    # y = x @ W^T + b, with x flattened to (N, I): one GEMM
    def forward(self, x):
        """Apply the layer to the last axis.

        Parameters
        ----------
        x : array (..., I), any float dtype (cast to the layer's dtype)

        Returns
        -------
        y : ndarray (..., O)
        """
        x = as_array("x", x, "an array of floats")
        if x.ndim == 0:
            raise ValueError(f"x: expected in_features={self.in_features} features in the last axis, got shape ()")
        x = as_float_array("x", x, self.dtype)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected in_features={self.in_features} features in the last axis, got shape {x.shape}")
        lead, backend = x.shape[:-1], get_backend()
        x2 = x.reshape(-1, self.in_features)  # (N, I), a view (x is C-contiguous)
        if self.bfloat16:  # bf16 operands, float32 sums
            y = bfloat16.matmul(x2, self.params["weight"], trans_b=True)
        else:
            y = product(x2, self.params["weight"], trans_b=True, backend=backend)
        if self.bias:
            y += self.params["bias"]
        self._save((x2, lead, backend))
        return y.reshape(lead + (self.out_features,))

    # dx = dy @ W;  dW += dy^T @ x;  db += sum_N dy   (dy, x flattened to (N, O), (N, I))
    def backward(self, dy):
        """Gradients of the last forward.

        Parameters
        ----------
        dy : array (..., O), dL/dy

        Returns
        -------
        dx : ndarray (..., I), dL/dx

        ``weight`` (and ``bias``) gradients are added into :attr:`grads`.
        """
        return self._backward(dy, need_dx=True)

    def backward_params(self, dy):
        """:meth:`backward` for the weight and bias gradients alone (no ``dy @ W``); returns None."""
        self._backward(dy, need_dx=False)

    def _backward(self, dy, need_dx):
        x2, lead, backend = self._peek_saved()
        dy = as_float_array("dy", dy, self.dtype)
        check_shape("dy", dy, lead + (self.out_features,), "(..., out_features) of the last forward")
        self._pop_saved()
        dy2 = dy.reshape(-1, self.out_features)
        if self.bfloat16:  # bf16 operands, float32 sums (one thread: thread-count independent); db sums float32 dy
            self.grads["weight"] += bfloat16.matmul(dy2, x2, trans_a=True)
            if self.bias:
                self.grads["bias"] += column_sums(dy2)
            dx = bfloat16.matmul(dy2, self.params["weight"]) if need_dx else None
            return None if dx is None else dx.reshape(lead + (self.in_features,))
        product(dy2, x2, trans_a=True, out=self.grads["weight"], backend=backend)  # a sum over samples
        if self.bias:
            self.grads["bias"] += column_sums(dy2)
        dx = product(dy2, self.params["weight"], backend=backend) if need_dx else None
        return None if dx is None else dx.reshape(lead + (self.in_features,))

    def get_config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias,
                "dtype": self.dtype_name, "seed": self.seed}

    __repr__ = config_repr


class Embedding(Layer):
    """Lookup table: integer indices of any shape -> rows of ``weight`` (``torch.nn.Embedding``).

    Parameters
    ----------
    num_embeddings : int
        V, number of rows (valid indices are 0 .. V-1).
    embedding_dim : int
        E, size of each row.
    dtype : float32 or float64, default float32
    seed : int or None
        Seed of the default init, PyTorch's ``N(0, 1)``.

    Notes
    -----
    Parameter ``weight`` (V, E). Repeated indices accumulate their gradients.
    """

    def __init__(self, num_embeddings, embedding_dim, dtype=np.float32, seed=None):
        super().__init__(dtype)
        self.num_embeddings = check_int("num_embeddings", num_embeddings, 1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        self.seed = check_seed("seed", seed)
        rng = np.random.default_rng(self.seed)
        self.add_param("weight", (self.num_embeddings, self.embedding_dim), rng.standard_normal)

    def _indices(self, indices):
        idx = as_array("indices", indices, "an integer array")
        if idx.dtype.kind not in "iu":
            raise TypeError(f"indices: expected an integer array, got dtype {idx.dtype}")
        if idx.size:
            lo, hi = idx.min(), idx.max()
            if lo < 0 or hi >= self.num_embeddings:
                bad = lo if lo < 0 else hi
                raise ValueError(f"indices: expected values in [0, {self.num_embeddings}) (num_embeddings), got {bad}")
        return idx

    # y[...] = W[idx[...]]
    def forward(self, indices):
        """Look the rows up.

        Parameters
        ----------
        indices : integer array (...), values in [0, V)

        Returns
        -------
        y : ndarray (..., E)
        """
        idx = self._indices(indices)
        y = np.take(self.params["weight"], idx, axis=0)
        self._save(idx.copy())  # indices are cheap to copy and often live in a reused buffer
        return y

    # dW[v] += sum of dy[...] over the positions where idx[...] = v
    def backward(self, dy):
        """Scatter-add dL/dy into the ``weight`` gradient.

        Parameters
        ----------
        dy : array (..., E), dL/dy

        Returns
        -------
        None
            Integer indices have no gradient.
        """
        idx = self._peek_saved()
        dy = as_float_array("dy", dy, self.dtype)
        check_shape("dy", dy, idx.shape + (self.embedding_dim,), "(..., embedding_dim) of the last forward")
        self._pop_saved()
        np.add.at(self.grads["weight"], idx.ravel(), dy.reshape(-1, self.embedding_dim))
        return None

    def get_config(self):
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "dtype": self.dtype.name, "seed": self.seed}

    __repr__ = config_repr


class Dropout(Elementwise):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the
    rest by ``1 / (1 - p)``; in eval mode (:meth:`eval`), the identity (``torch.nn.Dropout``).

    Parameters
    ----------
    p : float in [0, 1), default 0.5
        Probability of dropping an element.
    seed : int or None
        Seed of the layer's own ``numpy.random.Generator``: equal seeds give equal masks.

    Notes
    -----
    Output dtype and shape follow the input; a mask depends on the generator's state and the
    input's shape and dtype (float32 inputs draw float32 uniforms). To resume training bit for bit, store
    :meth:`rng_state` (a JSON-serialisable dict) and restore it with :meth:`set_rng_state`.
    NaN inputs stay NaN even where dropped (``NaN * 0``), as in PyTorch.
    """

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        self.p = check_float("p", p, 0.0, below=1.0)
        self.seed = check_seed("seed", seed)
        self._rng = np.random.default_rng(self.seed)

    # training: y = x * m,  m = [u >= p] / (1 - p),  u ~ U[0, 1) per element;  eval: y = x
    def _forward(self, x):
        if not self.is_training or self.p == 0:
            return x, None
        u = uniform(self._rng, x.shape, dtype=x.dtype.type)  # one process's draw for these rows under MPI
        m = (u >= self.p).astype(x.dtype)
        m *= 1.0 / (1.0 - self.p)
        return x * m, m

    # dx = dy * m  (eval: dx = dy)
    def _backward(self, dy, m):
        return dy if m is None else dy * m

    def rng_state(self):
        """The generator's state: a JSON-serialisable dict for :meth:`set_rng_state`."""
        return copy.deepcopy(self._rng.bit_generator.state)

    def set_rng_state(self, state):
        """Restore a state from :meth:`rng_state`; the next masks are those that followed it."""
        name = type(self._rng.bit_generator).__name__
        if not isinstance(state, dict) or state.get("bit_generator") != name:
            got = state.get("bit_generator") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state: expected a {name} generator state from rng_state(), got {got!r}")
        try:
            self._rng.bit_generator.state = copy.deepcopy(state)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"state: expected a {name} generator state from rng_state(), got a malformed one ({exc!r})") from exc

    def get_config(self):
        return {"p": self.p, "seed": self.seed}
