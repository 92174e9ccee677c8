"""The kernel contract every backend implements, written once, in words and as ``typing.Protocol``.

Legend: B = batch, T = time, I = input, H = hidden, G = gates (1 RNN, 4 LSTM, 3 GRU).
Gate packing is PyTorch's, so weights compare with ``torch.nn.LSTM`` directly: LSTM ``i|f|g|o``,
GRU ``r|z|n``.

Names (the same here, in every backend and in ``csrc/``):

- ``xproj`` = x_t W_ih^T + b_ih, the input projection;
- ``hproj`` = h_{t-1} W_hh^T + b_hh, the hidden projection;
- ``preact`` = xproj + hproj, the gates' pre-activations;
- ``tanh_c``: LSTM's tanh(c_t) (saved by the NumPy and Numba backends, recomputed from c_t by the
  C++ backward);
- ``hn``: GRU's saved W_hn h_{t-1} + b_hn, the n slice of hproj. GRU's n is a
  *linear-before-reset* gate (oneDNN's and cuDNN's word): ``n = tanh(xproj_n + r * hn)``.

A backend is a module with two families of functions: the recurrent family
(:class:`RecurrentBackend`, below) and the convolution/pool family (:class:`ConvBackend`,
specified in :mod:`pyrnn.backends.conv_reference`). The recurrent family works on ONE layer and
ONE direction:

``recurrent_forward(cell, x, h0, c0, weights, reverse=False, lengths=None, save=True, bf16=False, out=None) -> (hs, hT, cT, saved)``
    x (T, B, I) at any strides (a view of a batch-first input, say: the C++ kernels read it in
    place at inference, the others and every training forward take a C-order copy, which is what
    ``saved`` keeps), h0 (B, H), c0 (B, H) for LSTM else None, C-contiguous, all of one float
    dtype. ``hs`` (T, B, H) holds the hidden state at every time
    index (for ``reverse=True`` the loop runs from t = T-1 down to 0, and
    ``hs[t]`` is still the state after reading ``x[t]``). ``hT``/``cT`` are the
    states after the last processed step. ``saved`` is a :class:`Saved`: all
    that backward needs, so backward recomputes nothing. With ``save=False``
    (inference) a backend may keep no cache and return ``saved = None``.

    ``lengths`` (B,) int64 in [0, T], or None for all T: variable-length
    batches without sorting. Time index t is *active* for sample b iff
    t < lengths[b]. At an inactive index the state is carried unchanged
    (h_t = h_prev, c_t = c_prev; saved gates, tanh_c and hn are 0), so in the
    forward direction the final state is the state at the last valid step, in
    the reverse direction the loop starts at t = lengths[b] - 1 from h0, and
    length 0 keeps the initial state. ``hs`` holds the carried state at
    inactive indices; zeroing outputs there is the layer's business.

    ``bf16=True`` (float32 arrays only): every GEMM of the forward and of its backward takes
    bfloat16-rounded operands and sums in float32 (mixed precision, specified in
    :mod:`pyrnn.backends.bfloat16`); ``saved.bf16`` carries the choice to backward.

    ``out``: None, or a writable (T, B, H) array of the dtype of x, any strides whose rows do not
    overlap (a view of a batch-first output, say: the C++ kernels write it as they go, at inference
    as hs itself, the others copy hs into it): it receives hs too and is returned in its place.

``recurrent_backward(saved, weights, dhs, dhT, dcT, grads, out=None) -> (dx, dh0, dc0)``
    dhs (T, B, H) is dL/dhs, any strides (a view of a batch-first dy, say: the
    C++ kernels read it in place, Numba's take a contiguous copy), dhT/dcT the
    gradient w.r.t. the returned final states (dcT None unless LSTM). ``out``: None, or a writable
    (T, B, I) array of the dtype of x, any strides whose rows do not overlap (a view of a batch-first
    dx, say: the C++ kernels write dx there, the others copy it): it receives dx and is returned in
    its place. Weight gradients are ADDED into ``grads`` (a :class:`Weights` of arrays); zeroing
    them is the caller's business.
    ``saved`` is good for ONE backward: a backend may overwrite its cache (the
    fast ones write dA over the saved gates, which saves a (T, B, G*H) buffer),
    as the layers, like PyTorch, free what forward saved after one backward.

The cells:

- ``rnn_tanh`` / ``rnn_relu``: ``h = f(preact)``; backward reads f' from hs
  (relu: ``da = dh`` where h > 0, else 0: a select, as in PyTorch, so a
  non-finite dh where h <= 0 gives 0, not NaN);
- ``lstm``: ``i, f, o = s(preact_i), s(preact_f), s(preact_o)``, ``g = tanh(preact_g)``,
  ``c = f c_prev + i g``, ``h = o tanh(c)``;
- ``gru``: ``r, z = s(preact_r), s(preact_z)``, ``n = tanh(xproj_n + r hn)``,
  ``h = (1 - z) n + z h_prev``.

What forward saves is one :class:`Cache` for every cell and backend, in the layout the
compiled kernels take: ``hs``, ``cs`` (LSTM), ``gates`` (the activated gates, LSTM and GRU),
``tanh_cs`` (LSTM; None from the C++ kernels, whose backward recomputes tanh(c_t) from cs), ``hn``
(GRU), each time-major, None where a cell has none.

How each backend computes a layer-direction (timings: ``benchmarks/README.md``):

- ``numpy`` (:mod:`pyrnn.backends.reference`, the specification): xproj for all steps as one
  GEMM before the loop; per step hproj (one GEMM) and the pointwise step; after the loop dx,
  dW_ih, dW_hh as one GEMM each and the bias gradients as sums.
- ``numba``: the same order, in ``@njit`` loops: xproj as one GEMM before the loop, written into
  the gates cache (training; at inference a few steps at a time into a small buffer), per step
  one GEMM for hproj and one fused pointwise step; after the loop one GEMM each for dx, dW_ih,
  dW_hh and the bias sums.
- ``cpp``: no input-projection GEMM before the loop. Per step and per panel of hidden units, one
  register tile of its own packed micro-kernel computes preact = x_t W_ih^T + h_{t-1} W_hh^T +
  biases (GRU's n: its input side, and hn beside it), and the fused pointwise step follows while
  that tile is in cache; the hidden units are split over the kernels' own thread team, one
  barrier per step. Backward: per step the pointwise step and dh_{t-1} by the micro-kernel; after
  the loop BLAS GEMMs for dx, dW_ih, dW_hh and the bias sums. Ctrl-C stops it within ~50 ms.

The fast backends share their Python side (:mod:`pyrnn.backends.driver`: allocation, the empty
T or B, hT/cT); each supplies two kernel entry points with ``pyrnn._C``'s signatures.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from .. import _buffers

#: cell name -> gates per hidden unit
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}

#: stable integer code of each cell, shared by the compiled backends (csrc/recurrent/recurrent.h)
CELL_CODES = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3}


class Weights(NamedTuple):
    """One layer-direction's parameters (or their gradients), PyTorch layout."""

    w_ih: np.ndarray  # (G*H, I)
    w_hh: np.ndarray  # (G*H, H)
    b_ih: np.ndarray  # (G*H,)
    b_hh: np.ndarray  # (G*H,)


class Cache(NamedTuple):
    """What forward writes for backward, every array time-major; None where a cell has none."""

    hs: np.ndarray  # (T, B, H) every cell
    cs: np.ndarray | None = None  # (T, B, H) LSTM: c_t
    gates: np.ndarray | None = None  # (T, B, G*H) LSTM [i|f|g|o], GRU [r|z|n], activated
    tanh_cs: np.ndarray | None = None  # (T, B, H) LSTM: tanh(c_t) (None from the C++ kernels: recomputed)
    hn: np.ndarray | None = None  # (T, B, H) GRU: W_hn h_{t-1} + b_hn


class Saved(NamedTuple):
    """What forward hands to backward, explicitly."""

    cell: str
    reverse: bool
    x: np.ndarray  # (T, B, I)
    h0: np.ndarray  # (B, H)
    c0: np.ndarray | None  # (B, H), LSTM only
    cache: Cache
    lengths: np.ndarray | None = None  # (B,) int64, None = every step active
    bf16: bool = False  # the GEMMs in bfloat16 (float32 arrays; see pyrnn.backends.bfloat16)

    @property
    def hs(self) -> np.ndarray:
        return self.cache.hs


def write_out(out, hs, axes="(T, B, H)"):
    """``recurrent_forward``'s ``out`` filled with ``hs`` and returned (the backends that write it
    after the loop), or ``hs`` when ``out`` is None; ``recurrent_backward``'s with dx (``axes``
    "(T, B, I)")."""
    if out is None or out is hs:
        return hs
    check_out(out, hs.shape, hs.dtype, axes)
    np.copyto(out, hs)
    return out


def check_out(out, shape, dtype, axes):
    """Raise ValueError unless ``out`` is an array of ``shape`` and ``dtype``."""
    if not isinstance(out, np.ndarray) or out.shape != tuple(shape) or out.dtype != dtype:
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"out: expected a {np.dtype(dtype)} array of shape {tuple(shape)} {axes}, got {got}")


def new_cache(cell, T, B, H, dtype, save=True, workspace=None, hs=None, latest_c=False, tanh_cs=True) -> Cache:
    """An uninitialised :class:`Cache` for ``cell``. With ``save=False`` (inference) only the
    working state: hs, and cs for LSTM. With a :class:`pyrnn.workspace.Workspace`, every array
    but hs (which the layer returns) is taken from it: give them back with :func:`give_cache`.
    ``hs``: the array to use as hs (a view of the layer's output, say), else a new one; ``latest_c``
    (inference): cs is one (B, H) c that the kernel updates in place (the C++ kernels); ``tanh_cs=False``: LSTM
    keeps no tanh(c_t) (the C++ backward recomputes it)."""
    lstm, gru = cell == "lstm", cell == "gru"
    fresh = lambda name, shape, dtype: np.empty(shape, dtype)  # noqa: E731
    take = fresh if workspace is None else workspace.take
    seq = (T, B, H)
    return Cache(
        hs=_buffers.empty(seq, dtype) if hs is None else hs,  # recycled memory: the layer's output, fresh to its owner
        cs=take("cs", (B, H) if latest_c and not save else seq, dtype) if lstm else None,
        gates=take("gates", (T, B, GATES[cell] * H), dtype) if save and (lstm or gru) else None,
        tanh_cs=take("tanh_cs", seq, dtype) if save and lstm and tanh_cs else None,
        hn=take("hn", seq, dtype) if save and gru else None,
    )


def give_cache(cache, workspace):
    """Hand a cache's workspace arrays back (hs is never one of them); nothing without a workspace."""
    if workspace is not None:
        for a in cache[1:]:
            workspace.give(a)


@runtime_checkable
class RecurrentBackend(Protocol):
    """The recurrent family (see the module docstring); a backend module provides these functions."""

    def recurrent_forward(
        self, cell: str, x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None, weights: Weights,
        reverse: bool = False, lengths: np.ndarray | None = None, save: bool = True, bf16: bool = False,
        out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Saved | None]: ...

    def recurrent_backward(
        self, saved: Saved, weights: Weights, dhs: np.ndarray, dhT: np.ndarray, dcT: np.ndarray | None,
        grads: Weights, out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]: ...


@runtime_checkable
class ConvBackend(Protocol):
    """The convolution/pool family, specified (and implemented in NumPy) by
    :mod:`pyrnn.backends.conv_reference`; a backend module provides these functions."""

    def conv1d_forward(
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, pad_left: int, pad_right: int,
        dilation: int,
    ) -> np.ndarray: ...

    def conv1d_backward(
        self, x: np.ndarray, w: np.ndarray, dy: np.ndarray, stride: int, pad_left: int, pad_right: int,
        dilation: int, dw: np.ndarray, db: np.ndarray | None,
    ) -> np.ndarray: ...

    def pool1d_forward(
        self, kind: str, x: np.ndarray, kernel: int, stride: int, pad_left: int, pad_right: int,
    ) -> tuple[np.ndarray, np.ndarray | None]: ...

    def pool1d_backward(
        self, kind: str, x_shape: tuple[int, int, int], dy: np.ndarray, saved: np.ndarray | None, kernel: int,
        stride: int, pad_left: int, pad_right: int,
    ) -> np.ndarray: ...


def active_rows(lengths, t):
    """(B, 1) bool: which samples are active at time index t (None: all)."""
    return None if lengths is None else (t < lengths)[:, None]


def time_steps(T: int, reverse: bool) -> range:
    """The order in which a direction visits the time indices."""
    return range(T - 1, -1, -1) if reverse else range(T)


def previous_states(saved: Saved) -> np.ndarray:
    """h_{t-1} for every time index t, (T, B, H): the operand of dW_hh.

    Forward direction: [h0, hs[0], ..., hs[T-2]]; reverse: [hs[1], ..., hs[T-1], h0].
    """
    hs, h0 = saved.hs, saved.h0
    if len(hs) == 0:
        return hs
    if saved.reverse:
        return np.concatenate([hs[1:], h0[None]], axis=0)
    return np.concatenate([h0[None], hs[:-1]], axis=0)


class BatchNormSaved(NamedTuple):
    """What ``batchnorm_forward`` hands to ``batchnorm_backward`` (contract: :mod:`pyrnn.backends.norm_reference`)."""

    x: np.ndarray  # (N, C) the input itself, not a copy
    mean: np.ndarray  # (C,) float64: the statistics x was normalised with
    inv_std: np.ndarray  # (C,) float64: 1 / sqrt(var + eps)
    weight: np.ndarray | None  # (C,) or None (no affine transform)
    batch_stats: bool  # True: batch statistics (they depend on x); False: running ones (constants)


@runtime_checkable
class NormBackend(Protocol):
    """The normalisation family, specified (and implemented in NumPy) by
    :mod:`pyrnn.backends.norm_reference`; a backend module provides these functions."""

    def batchnorm_forward(
        self, x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, running_mean: np.ndarray | None,
        running_var: np.ndarray | None, training: bool, momentum: float, eps: float,
    ) -> tuple[np.ndarray, BatchNormSaved]: ...

    def batchnorm_backward(
        self, saved: BatchNormSaved, dy: np.ndarray, dweight: np.ndarray | None, dbias: np.ndarray | None,
    ) -> np.ndarray: ...
# ------------------------------------------------- 2-D pooling and upsampling (channels-last images)
# Specified, and implemented in NumPy, by :mod:`pyrnn.backends.pool2d_reference`. Images are (B, H, W, C);
# what forward saves is one of these two types in every backend, so any backend's backward takes it.
class Pool2DSaved(NamedTuple):
    """What ``pool2d_forward`` hands to ``pool2d_backward``."""

    kind: str  # "max" or "avg"
    x_shape: tuple  # (B, H, W, C)
    dtype: np.dtype
    kernel: tuple  # (kh, kw)
    stride: tuple  # (sh, sw)
    padding: tuple  # (ph, pw)
    dilation: tuple  # (dh, dw), (1, 1) for avg
    ceil_mode: bool
    count_include_pad: bool
    argmax: np.ndarray | None  # max: (B, OH, OW, C) int64, ih*W + iw of the winner (-1: none); avg: None


class Upsample2DSaved(NamedTuple):
    """What ``upsample2d_forward`` hands to ``upsample2d_backward``."""

    x_shape: tuple  # (B, H, W, C)
    dtype: np.dtype
    scale: tuple  # (sh, sw) integers
    mode: str  # "nearest" or "bilinear"


@runtime_checkable
class Pool2DBackend(Protocol):
    """The 2-D pooling/upsampling family (:mod:`pyrnn.backends.pool2d_reference`); a backend module provides these."""

    def pool2d_forward(
        self, kind: str, x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
        dilation: tuple[int, int], ceil_mode: bool, count_include_pad: bool,
    ) -> tuple[np.ndarray, Pool2DSaved]: ...

    def pool2d_backward(self, saved: Pool2DSaved, dy: np.ndarray) -> np.ndarray: ...

    def upsample2d_forward(self, x: np.ndarray, scale: tuple[int, int], mode: str) -> tuple[np.ndarray, Upsample2DSaved]: ...

    def upsample2d_backward(self, saved: Upsample2DSaved, dy: np.ndarray) -> np.ndarray: ...
# ------------------------------------------------------------------ conv2d
# The 2-D convolution family, specified (and implemented in NumPy) by
# :mod:`pyrnn.backends.conv2d_reference`: channels-last images x (B, H, W, C_in), y (B, H_out,
# W_out, C_out), PyTorch's weight layout (C_out, C_in/groups, kH, kW). ConvTranspose2D is its
# adjoint and has no kernel of its own: its forward is conv2d's data gradient (a Conv2dSaved
# with x None, weight roles swapped), its backward conv2d's forward plus a weight gradient.
class Conv2dSaved(NamedTuple):
    """What ``conv2d_forward`` hands to ``conv2d_backward``: the input and the geometry."""

    x: np.ndarray | None  # (B, H, W, C_in); None when only the data gradient will be asked for (dw None)
    x_shape: tuple  # (B, H, W, C_in): the shape of dx
    w: np.ndarray  # (C_out, C_in/groups, kH, kW)
    stride: tuple  # (sh, sw)
    padding: tuple  # (top, bottom, left, right) zero padding
    dilation: tuple  # (dh, dw)
    groups: int


@runtime_checkable
class Conv2dBackend(Protocol):
    """The 2-D convolution family (see :mod:`pyrnn.backends.conv2d_reference`); a backend module
    provides these functions. Gradients are ADDED into dw and db (either may be None)."""

    def conv2d_forward(
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: tuple, padding: tuple, dilation: tuple,
        groups: int, activation: str | None = None,
    ) -> tuple[np.ndarray, Conv2dSaved]: ...

    def conv2d_backward(
        self, saved: Conv2dSaved, dy: np.ndarray, dw: np.ndarray | None, db: np.ndarray | None, need_dx: bool = True,
    ) -> np.ndarray | None: ...


# ------------------------------------------------------------- activations
@runtime_checkable
class ActivationBackend(Protocol):
    """The elementwise activations (ReLU, LeakyReLU, Tanh, Sigmoid), specified (and implemented in NumPy)
    by :mod:`pyrnn.backends.activation_reference`; a backend module provides these functions. ``saved`` is
    one ndarray (y, or x for leaky_relu), so any backend's backward takes any backend's forward."""

    def activation_forward(self, kind: str, x: np.ndarray, negative_slope: float) -> tuple[np.ndarray, np.ndarray]: ...

    def activation_backward(self, kind: str, saved: np.ndarray, dy: np.ndarray, negative_slope: float) -> np.ndarray: ...


# ------------------------------------------------------------- concatenation
@runtime_checkable
class ConcatBackend(Protocol):
    """Concatenation along the last axis and its split (the adjoint), specified (and implemented in NumPy)
    by :mod:`pyrnn.backends.concat_reference`; a backend module provides these functions."""

    def concat_last(self, xs: list[np.ndarray]) -> np.ndarray: ...

    def split_last(self, y: np.ndarray, sizes: list[int]) -> list[np.ndarray]: ...


@runtime_checkable
class Backend(RecurrentBackend, ConvBackend, NormBackend, Pool2DBackend, Conv2dBackend, ActivationBackend,
              ConcatBackend, Protocol):
    """A whole backend module (``pyrnn.backends.backend_module(name)``): every kernel family."""
