// Conv1D kernels on channels-last sequences: im2col + the project's GEMM.
//
// Legend: B = batch, T = time, U = output length, C = input channels, O = output channels,
// K = kernel size, s = stride, d = dilation, pl/pr = zero padding left/right of the time axis.
// x (B, T, C), w (O, C, K) (PyTorch's layout), b (O), y (B, U, O), all row-major.
//
// Forward:  y[b, u, o] = b[o] + sum_{c,k} w[o, c, k] xp[b, u*s + k*d, c]   (xp = x zero-padded)
// Backward: dw[o, c, k] += sum_{b,u} dy[b, u, o] xp[b, u*s + k*d, c];  db[o] += sum_{b,u} dy[b, u, o]
//           dx[b, u*s + k*d - pl, c] = sum over (u, k) landing there of sum_o dy[b, u, o] w[o, c, k]
// The contract (and its NumPy specification) is src/pyrnn/backends/conv_reference.py.
// These functions know nothing of Python; the bindings check every shape before calling them.
#pragma once

#include <cstdint>

#include "../common/cancel.h"

namespace pyrnn {

struct Conv1dDims {
  int64_t B, T, C, O, K, U;
  int64_t stride, pad_left, pad_right, dilation;
};

// y is written; b may be null (no bias). Stopped by `cancel` (polled between chunks of samples),
// it returns early with y unspecified.
template <typename F>
void conv1d_forward(const Conv1dDims& d, const F* x, const F* w, const F* b, F* y, Cancel& cancel);

// dx is written; dw and db are added into; db may be null. Stopped by `cancel`, it returns early
// with dx unspecified and dw, db untouched.
template <typename F>
void conv1d_backward(const Conv1dDims& d, const F* x, const F* w, const F* dy, F* dx, F* dw, F* db, Cancel& cancel);

}  // namespace pyrnn
