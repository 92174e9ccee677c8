// BatchNorm1D / BatchNorm2D kernels on channels-last data viewed as (N, C): every channel is a
// column, every loop runs over rows with the channel loop innermost (contiguous, vectorised: the
// loops are compiled per instruction set, kernels.h and rows.inc).
//
// Legend: N = rows (B, B*T or B*H*W), C = channels. Statistics in double for float and double.
//
// forward: with batch statistics (training), one pass over x for the shifted sums
//   s1 = sum (x - x[0]), s2 = sum (x - x[0])^2, so mean = x[0] + s1/N, var = (s2 - s1^2/N)/N (biased);
//   if the running buffers are given (non-null) they are updated in place with the unbiased variance:
//   running = (1 - momentum) running + momentum batch. Otherwise mean/var are the running buffers.
//   inv_std = 1/sqrt(var + eps); one pass writes y = (x - mean) * inv_std * weight + bias.
// backward: one pass for both sums (sum dy, sum dy x_hat), one pass writing dx:
//   batch statistics: dx = inv_std (w dy - w sum(dy)/N - x_hat w sum(dy x_hat)/N); running: dx = w dy inv_std;
//   dweight += sum dy x_hat, dbias += sum dy (each may be null).
// The contract (and its NumPy specification) is src/pyrnn/backends/norm_reference.py.
//
// Threads: the rows are cut into a fixed number of slices, which the members of the thread team take
// from a queue when the work pays for a team. Each slice is summed into sums of its own; after that
// region the caller adds the slices' sums in slice order (so a result is the same bits on any number of
// threads) and derives the coefficients; in a second region the members write the rows of y or dx,
// slice by slice. A member works in chunks of rows and stops at its next chunk once `cancel` (polled by
// the caller) is set: a stopped function returns early with y, mean, inv_std or dx unspecified and the
// running buffers, dweight and dbias untouched.
#pragma once

#include <cstdint>

#include "../common/cancel.h"

namespace pyrnn {

struct BatchNormDims {
  int64_t N, C;
};

// weight, bias, running_mean, running_var may be null; mean and inv_std (C) are written. relu: y = max(y, 0), a
// following ReLU fused into the write (the graph's BatchNorm -> ReLU, pyrnn/models/graph.py).
template <typename F>
void batchnorm_forward(const BatchNormDims& d, const F* x, const F* weight, const F* bias, F* running_mean,
                       F* running_var, bool training, double momentum, double eps, F* y, double* mean, double* inv_std,
                       bool relu, Cancel& cancel);

// weight, dweight, dbias may be null; dx (N, C) is written, dweight and dbias added into. relu_y (N, C), may be
// null: the output of a ReLU fused into the forward (relu), whose backward the kernel applies to dy as it reads it
// (0 where relu_y <= 0, else dy; training: the graph's BatchNorm -> ReLU).
template <typename F>
void batchnorm_backward(const BatchNormDims& d, const F* x, const F* dy, const F* relu_y, const double* mean,
                        const double* inv_std, const F* weight, bool batch_stats, F* dx, F* dweight, F* dbias,
                        Cancel& cancel);

}  // namespace pyrnn
