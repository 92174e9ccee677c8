"""Type stub of the compiled module pyrnn._C (csrc/). Arrays are C-contiguous,
all float32 or all float64; shapes use T = time, B = batch, I = input, H = hidden,
G = gates (1 RNN, 4 LSTM, 3 GRU). Cell codes: 0 rnn_tanh, 1 rnn_relu, 2 lstm, 3 gru."""

from typing import Optional, Tuple

import numpy as np
from numpy.typing import NDArray

_A = NDArray[np.floating]
_OptA = Optional[NDArray[np.floating]]

def set_blas(sgemm: object, dgemm: object) -> None:
    """Register Fortran-BLAS sgemm/dgemm PyCapsules; (None, None) selects the loop GEMM."""

def have_blas() -> bool: ...

def recurrent_forward(
    cell: int,
    reverse: bool,
    x: _A,                                          # (T, B, I)
    lengths: Optional[NDArray[np.int64]],           # (B,) in [0, T]; None = every step active
    state0: Tuple[_A, _OptA],                       # h0 (B, H), c0 (B, H) for LSTM
    params: Tuple[_A, _A, _A, _A],                  # w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H,)
    out: Tuple[_A, _OptA, _OptA, _OptA],            # hs, cs (T, B, H); gates (T, B, G*H); aux (T, B, H)
) -> None: ...

def recurrent_backward(
    cell: int,
    reverse: bool,
    x: _A,
    lengths: Optional[NDArray[np.int64]],
    state0: Tuple[_A, _OptA],
    saved: Tuple[_A, _OptA, _OptA, _OptA],          # the `out` of recurrent_forward
    params: Tuple[_A, _A, _A, _A],
    dout: Tuple[_A, _A, _OptA],                     # dhs (T, B, H), dhT, dcT (B, H)
    grads: Tuple[_A, _A, _A, _A],                   # added into: dw_ih, dw_hh, db_ih, db_hh
    dres: Tuple[_A, _A, _OptA],                     # written: dx (T, B, I), dh0, dc0 (B, H)
) -> None: ...

def tanh_f32(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """The kernels' float32 tanh (a rational approximation), elementwise."""

def sigmoid_f32(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """The kernels' float32 sigmoid, (tanh(x/2) + 1) / 2, elementwise."""
