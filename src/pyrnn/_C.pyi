"""Type stub of the compiled module pyrnn._C (csrc/). Arrays are C-contiguous,
all float32 or all float64; shapes use B = batch, T = time, I = input, H = hidden,
G = gates (1 RNN, 4 LSTM, 3 GRU). Cell codes: 0 rnn_tanh, 1 rnn_relu, 2 lstm, 3 gru.

Every kernel runs without the GIL. Called from the main thread, a kernel polls Python's signal
handlers about every 50 ms and, if one raises (Ctrl-C: KeyboardInterrupt), stops early and
raises it; its outputs are then unspecified and nothing was added into the gradients it
accumulates."""


import numpy as np
from numpy.typing import NDArray

_A = NDArray[np.floating]
_OptA = NDArray[np.floating] | None

def set_blas(sgemm: object, dgemm: object) -> None:
    """Register Fortran-BLAS sgemm/dgemm PyCapsules; (None, None) selects the loop GEMM."""

def blas_interface() -> str:
    """'ilp64' (NumPy's OpenBLAS), 'lp64' (SciPy's) or 'loops': what the kernels' GEMM calls."""

def _set_blas64(sgemm: int, dgemm: int) -> None:
    """Private: addresses of an ILP64 sgemm/dgemm (registered by pyrnn.backends.cpp); 0, 0 unsets."""

def _set_blas_threads(get: int, set: int) -> None:
    """Private: addresses of the BLAS's get/set_num_threads (single-threaded while the team runs); 0, 0 unsets."""

# The instruction set of the kernels' own loops (recurrent time loops, pooling, upsampling, batch norm, activations)
# and the kernels' own thread team.
def isa() -> str:
    """'avx512', 'avx2' or 'generic': what the kernels' loops use now (the widest supported by default)."""

def supported_isas() -> list[str]:
    """The instruction sets this CPU runs, narrowest first."""

def set_isa(name: str) -> None: ...

# bfloat16 GEMMs (dtype="bfloat16"; csrc/common/gemm_bf16.h): the path in use, and the general GEMM.
def bf16_path() -> str:
    """'amx' (TDPBF16PS tiles), 'avx512_bf16' (VDPBF16PS), 'emulated' (float32 emulation) or 'amx_emulated' (the
    amx kernel on a software model of the tiles, for tests): what the bfloat16 GEMMs use now."""

def supported_bf16_paths() -> list[str]:
    """The bfloat16 GEMM paths this CPU runs, the emulations first."""

def set_bf16_path(name: str) -> None: ...
def cpu_features() -> dict[str, bool]:
    """CPUID flags beyond the instruction sets: {'avx512_bf16': bool, 'amx_bf16': bool}."""

def measured_clock_ghz(threads: int, ms: int) -> float:
    """The cores' clock in GHz, measured: ``threads`` threads at once each run a chain of dependent
    integer adds (one per cycle) for ~``ms`` ms of their CPU time; the median (0.0: cannot measure here)."""

def matmul_bf16(
    a: NDArray[np.float32], b: NDArray[np.float32], trans_a: bool = False, trans_b: bool = False
) -> NDArray[np.float32]:
    """op(a) (M, K) @ op(b) (K, N) (trans_a: a.T of a (K, M); trans_b: b.T of b (N, K)); both operands rounded to
    bfloat16, float32 sums."""
def matmul(
    a: _A, b: _A, out: _A, trans_a: bool = False, trans_b: bool = False, accumulate: bool = False
) -> None:
    """out = op(a) (M, K) @ op(b) (K, N) (trans_a: a is (K, M), trans_b: b is (N, K)), or out += it; float32 or
    float64 of one dtype; over the kernels' team, the same bits for any thread count."""
def set_num_threads(n: int) -> None:
    """Cap the kernels' thread team (the caller included); pyrnn.set_num_threads sets it."""

def get_num_threads() -> int: ...
def _float_mode() -> int:
    """Private (tests): this thread's MXCSR."""

def _set_wide_tiles(on: bool) -> None:
    """Private (tests, tuning): the recurrent micro-kernels' wide tiles (AVX-512: 12 rows, default on Intel) or 8 rows;
    the same bits either way."""

def _wide_tiles() -> bool: ...

def _set_parallel_min_flops(flops: int) -> None:
    """Private (tests, tuning): a recurrent step's GEMM (a convolution: 4x) of fewer flops runs on one thread."""

def _parallel_min_flops() -> int: ...
def _set_spin_budget(spins: int) -> None:
    """Private (tests, tuning): PAUSE spins of a waiting thread before it sleeps (spins < 0: the default)."""

def _spin_budget() -> int: ...
def _set_others_running(n: int) -> None:
    """Private (tests): pretend n other threads run on the machine (n < 0: read /proc/loadavg again)."""

def _free_threads() -> int:
    """Private (tests, benchmarks): the threads a kernel's team may use now."""

def _interrupt_next_kernel(polls: int) -> None:
    """Private (tests): the next kernel called from the main thread raises KeyboardInterrupt at its polls-th poll."""

def _cancelled_calls() -> int:
    """Private (tests): kernel calls that stopped on a cancellation since the module loaded."""


def recurrent_forward(
    cell: int,
    reverse: bool,
    x: _A,                                          # (T, B, I), any rows of unit stride (strides >= 0 between them)
    lengths: NDArray[np.int64] | None,           # (B,) in [0, T]; None = every step active
    state0: tuple[_A, _OptA],                       # h0 (B, H), c0 (B, H) for LSTM
    params: tuple[_A, _A, _A, _A],                  # w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H,)
    cache: tuple[_A, _OptA, _OptA, _OptA, _OptA],   # written: hs (T, B, H) any rows that do not overlap, cs (T, B, H);
                                                    # gates (T, B, G*H); tanh_cs None; hn (T, B, H)
    bf16: bool = False,                             # every GEMM in bfloat16 (float32 arrays only)
    y: _A | None = None,                            # (T, B, H), any rows that do not overlap: gets hs too
    x_copy: _A | None = None,                       # (T, B, I), C order: gets x too (the saved x of a training call
                                                    # on a view)
) -> None:
    """One layer-direction over the whole sequence. cache is pyrnn.backends.contract.Cache: None where the
    cell has none (cs: LSTM only; hn: GRU only; gates: LSTM and GRU) and tanh_cs always (the backward
    recomputes tanh(c_t) from cs), and gates, hn both None for inference (nothing kept for backward); then cs
    may be one (B, H) c, updated in place (without lengths). x and hs in C order when the call's cache goes to
    recurrent_backward (or x_copy in place of x)."""

def recurrent_backward(
    cell: int,
    reverse: bool,
    x: _A,
    lengths: NDArray[np.int64] | None,
    state0: tuple[_A, _OptA],
    cache: tuple[_A, _OptA, _OptA, _OptA, _OptA],   # the forward's cache (gates overwritten with dA)
    params: tuple[_A, _A, _A, _A],
    dout: tuple[_A, _A, _OptA],                     # dhs (T, B, H), dhT, dcT (B, H; None but for LSTM)
    grads: tuple[_A, _A, _A, _A],                   # added into: dw_ih, dw_hh, db_ih, db_hh
    dres: tuple[_A, _A, _OptA],                     # written: dx (T, B, I) any rows that do not overlap, dh0, dc0
                                                    # (B, H; dc0 None but for LSTM)
    bf16: bool = False,                             # the forward's bf16
) -> None:
    """BPTT of one layer-direction; overwrites the cache's gates with dA (the cache is spent)."""

def tanh_f32(x: NDArray[np.float32], isa: str | None = None) -> NDArray[np.float32]:
    """The kernels' float32 tanh (a rational approximation), elementwise, in one ISA's loop."""

def sigmoid_f32(x: NDArray[np.float32], isa: str | None = None) -> NDArray[np.float32]:
    """The kernels' float32 sigmoid, (tanh(x/2) + 1) / 2, elementwise, in one ISA's loop."""

# 1-D pooling (csrc/conv, contract: pyrnn/backends/conv_reference.py; Conv1D runs on conv2d_*).
# Channels-last; U = output length = (T + pad_left + pad_right - K) // stride + 1; integers are Python ints.

def pool1d_forward(
    kind: str,                                      # "max" or "avg"
    x: _A,                                          # (B, T, C)
    y: _A,                                          # written: (B, U, C)
    arg: NDArray[np.int64] | None,               # written for "max": (B, U, C) argmax time index; None for "avg"
    kernel: int, stride: int, pad_left: int, pad_right: int,
) -> None: ...

def pool1d_backward(
    kind: str,
    dy: _A,                                         # (B, U, C)
    arg: NDArray[np.int64] | None,               # the forward's arg for "max"; None for "avg"
    dx: _A,                                         # written: (B, T, C)
    kernel: int, stride: int, pad_left: int, pad_right: int,
) -> None: ...

# The normalisation family (csrc/norm; contract: pyrnn.backends.norm_reference). N = rows, C = channels.
def batchnorm_forward(
    x: _A,                                          # (N, C)
    weight: _OptA, bias: _OptA,                     # (C,) or None
    running_mean: _OptA, running_var: _OptA,        # (C,) updated in place when training, or both None
    training: bool, momentum: float, eps: float,
    y: _A,                                          # written: (N, C)
    mean: NDArray[np.float64],                      # written: (C,) the statistics used
    inv_std: NDArray[np.float64],                   # written: (C,) 1 / sqrt(var + eps)
    relu: bool = ...,                               # y = max(y, 0): a following ReLU fused
) -> None: ...

def batchnorm_backward(
    x: _A, dy: _A,                                  # (N, C)
    mean: NDArray[np.float64], inv_std: NDArray[np.float64],  # the forward's
    weight: _OptA,
    batch_stats: bool,                              # whether the forward used batch statistics
    dx: _A,                                         # written: (N, C)
    dweight: _OptA, dbias: _OptA,                   # added into: (C,) or None
    relu_y: _OptA = None,                           # (N, C): a fused ReLU's output; dy is 0 where it is <= 0
) -> None: ...

# 2-D pooling and upsampling on (B, H, W, C) images (csrc/pool2d); pairs are (h, w) tuples of ints
def pool2d_forward(
    kind: str,                                      # "max" or "avg"
    x: _A,                                          # (B, H, W, C)
    y: _A,                                          # written: (B, OH, OW, C)
    arg: NDArray[np.int64] | None,                  # written for "max": (B, OH, OW, C) ih*W + iw of the winner, -1 none
    div_h: NDArray[np.int64] | None,                # "avg": (OH,) torch's divisor factors; None for "max"
    div_w: NDArray[np.int64] | None,                # "avg": (OW,)
    kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int],
) -> None: ...

def pool2d_backward(
    kind: str,
    dy: _A,                                         # (B, OH, OW, C)
    arg: NDArray[np.int64] | None,                  # the forward's arg for "max"; None for "avg"
    div_h: NDArray[np.int64] | None,
    div_w: NDArray[np.int64] | None,
    dx: _A,                                         # written: (B, H, W, C)
    kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int],
) -> None: ...

def upsample2d_forward(
    mode: str,                                      # "nearest" or "bilinear"
    x: _A,                                          # (B, H, W, C)
    y: _A,                                          # written: (B, OH, OW, C)
    axes: tuple[NDArray[np.int64], NDArray[np.int64], _A, _A, NDArray[np.int64], NDArray[np.int64], _A, _A],
) -> None: ...                                      # axes = (ih0, ih1, lh0, lh1, iw0, iw1, lw0, lw1), indices in range

def upsample2d_backward(
    mode: str,
    dy: _A,                                         # (B, OH, OW, C)
    dx: _A,                                         # written: (B, H, W, C)
    axes: tuple[NDArray[np.int64], NDArray[np.int64], _A, _A, NDArray[np.int64], NDArray[np.int64], _A, _A],
) -> None: ...

# Elementwise activations (csrc/activation; contract: pyrnn.backends.activation_reference): arrays of any
# one shape and dtype; the output overlaps no input. kind: "relu", "leaky_relu", "tanh" or "sigmoid".
def activation_forward(
    kind: str,
    x: _A,                                          # (...)
    y: _A,                                          # written: (...)
    negative_slope: float,                          # finite; read by "leaky_relu" only
) -> None: ...

def activation_backward(
    kind: str,
    saved: _A,                                      # (...) the forward's y; its x for "leaky_relu"
    dy: _A,                                         # (...)
    dx: _A,                                         # written: (...)
    negative_slope: float,
) -> None: ...

# 2-D convolution (csrc/conv/conv2d.cpp, contract: pyrnn/backends/conv2d_reference.py). Channels-last;
# H_out = (H + top + bottom - dh*(kH-1) - 1) // sh + 1 (W_out alike); integers are Python ints.
# ConvTranspose2D runs on these two (its forward is the data gradient alone: x None, dw None).

def conv2d_forward(
    x: _A,                                          # (B, H, W, C_in)
    w: _A,                                          # (C_out, C_in/groups, kH, kW), PyTorch layout
    b: _OptA,                                       # (C_out,) or None
    y: _A,                                          # written: (B, H_out, W_out, C_out)
    stride: tuple[int, int],                        # (sh, sw)
    padding: tuple[int, int, int, int],             # (top, bottom, left, right)
    dilation: tuple[int, int],                      # (dh, dw)
    groups: int,
    activation: str | None = ...,                   # then y = relu(y) or tanh(y): None, "relu", "tanh"
) -> None: ...

def conv2d_backward(
    x: _OptA,                                       # (B, H, W, C_in); None when dw is None (then dx gives the shape)
    w: _A,
    dy: _A,                                         # (B, H_out, W_out, C_out)
    dx: _OptA,                                      # written: (B, H, W, C_in), or None (not wanted)
    dw: _OptA,                                      # added into: (C_out, C_in/groups, kH, kW), or None
    db: _OptA,                                      # added into: (C_out,), or None
    stride: tuple[int, int], padding: tuple[int, int, int, int], dilation: tuple[int, int], groups: int,
) -> None: ...

def _set_winograd(on: bool) -> None:
    """Private (tests, benchmarks): Winograd F(2x2, 3x3) for the 3x3 stride-1 layers where it pays (default True)."""

def _winograd() -> bool: ...

# ------------------------------------------------------------------ optimizers (csrc/optim)
def adam_update(
    params: list[_A],                               # updated in place
    grads: list[_A],                                # each of its parameter's shape and dtype
    exp_avg: list[_A],                              # updated in place
    exp_avg_sq: list[_A],                           # updated in place
    max_exp_avg_sq: list[_A] | None,                # updated in place (AMSGrad), or None
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,                                # AdamW's decoupled weight decay
    step: int,                                      # >= 1
) -> None: ...

# ------------------------------------------------------------------ concatenation (csrc/copy)
def concat_last(
    xs: list[_A],                                   # each (..., F_k), y's dtype
    y: _A,                                          # written: (..., sum_k F_k)
) -> None: ...

def split_last(
    y: _A,                                          # (..., F)
    parts: list[_A],                                # written: each (..., F_k), sum_k F_k = F
) -> None: ...
