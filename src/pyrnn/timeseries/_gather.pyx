# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Compiled window gather: copy the windows of a batch of start indices out of one series.

Legend: T = time steps of the series, C = its columns, B = windows in the batch,
L = input length, H = horizon, Ct = target columns.

    x[b, l, c]  = series[starts[b] + l, c]                       0 <= l < L
    y[b, h, k]  = series[starts[b] + L + h, target_cols[k]]      0 <= h < H

No argument is checked here: :func:`pyrnn.timeseries.gather.gather_windows` validates
everything (shapes, dtypes, every start in range, every column in range) before calling
:func:`gather_into`; with bounds checks off, a bad index would read out of bounds.
"""

from libc.stdint cimport int64_t
from libc.string cimport memcpy

ctypedef fused real:
    float
    double


def gather_into(const real[:, :] series, const int64_t[::1] starts, Py_ssize_t input_len,
                const int64_t[::1] target_cols, real[:, :, ::1] x_out, real[:, :, ::1] y_out):
    """Fill x_out (B, L, C) and y_out (B, H, Ct) from ``series`` (T, C, any strides); GIL released.
    With C-contiguous rows an input window is one block of L * C values: one memcpy."""
    cdef Py_ssize_t B = starts.shape[0], C = series.shape[1]
    cdef Py_ssize_t H = y_out.shape[1], Ct = target_cols.shape[0]
    cdef Py_ssize_t b, l, c, h, k, s
    cdef Py_ssize_t item = sizeof(real)
    # rows of C values back to back (axis 1 of a (T, 1) view of a 1-D series may have stride 0)
    cdef bint contiguous = (C == 1 or series.strides[1] == item) and series.strides[0] == C * item
    with nogil:
        for b in range(B):
            s = <Py_ssize_t> starts[b]
            if contiguous:
                memcpy(&x_out[b, 0, 0], &series[s, 0], input_len * C * item)
            else:
                for l in range(input_len):
                    for c in range(C):
                        x_out[b, l, c] = series[s + l, c]
            for h in range(H):
                for k in range(Ct):
                    y_out[b, h, k] = series[s + input_len + h, <Py_ssize_t> target_cols[k]]
