// MaxPool1D / AvgPool1D kernels on channels-last sequences, direct loops.
//
// Legend: B = batch, T = time, U = output length, C = channels, K = kernel size,
// s = stride, pl/pr = padding left/right of the time axis. x (B, T, C), y (B, U, C).
//
// max: y[b, u, c] = max over the taps i = u*s - pl + k inside [0, T) of x[b, i, c] (the padding
//      is -inf); arg[b, u, c] = the first such i (a NaN wins and propagates), or the window's
//      start u*s - pl if no tap beats -inf.  Backward: dx[b, arg, c] += dy[b, u, c] when 0 <= arg < T.
// avg: y[b, u, c] = (sum over the taps inside x of x[b, i, c]) / K (zero padding, counted);
//      backward: dx[b, i, c] += dy[b, u, c] / K for every tap i inside x.
// The contract (and its NumPy specification) is src/pyrnn/backends/conv_reference.py.
// Every function polls `cancel` once per sample and, stopped, returns early with its output
// unspecified.
#pragma once

#include <cstdint>

#include "../common/cancel.h"

namespace pyrnn {

struct Pool1dDims {
  int64_t B, T, C, K, U;
  int64_t stride, pad_left, pad_right;
};

template <typename F>
void max_pool1d_forward(const Pool1dDims& d, const F* x, F* y, int64_t* arg, Cancel& cancel);

template <typename F>
void max_pool1d_backward(const Pool1dDims& d, const F* dy, const int64_t* arg, F* dx, Cancel& cancel);

template <typename F>
void avg_pool1d_forward(const Pool1dDims& d, const F* x, F* y, Cancel& cancel);

template <typename F>
void avg_pool1d_backward(const Pool1dDims& d, const F* dy, F* dx, Cancel& cancel);

}  // namespace pyrnn
