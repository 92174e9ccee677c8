// Elementwise activations without parameters (ReLU, LeakyReLU, Tanh, Sigmoid) on arrays of any shape
// seen as n contiguous values; the loops are compiled per instruction set (kernels.h, spans.inc).
//
// Legend: n = elements, x = input, y = output, dy = dL/dy, dx = dL/dx; s = LeakyReLU's negative slope.
// `saved` is what backward reads: y for ReLU, Tanh and Sigmoid; x for LeakyReLU (s may be <= 0, so y's sign
// does not tell x's). Every output is a separate array (the binding checks that it overlaps no input).
//
//   relu:        y = max(x, 0) (NaN propagates, -0 gives +0, as NumPy's maximum)   dx = dy [y > 0], as a select:
//                                                                                    0 where y <= 0, dy elsewhere
//                                                                                    (NaN y passes dy, as torch)
//   leaky_relu:  y = x if x > 0 else s x                                            dx = dy if x > 0 else s dy
//   tanh:        y = tanh(x) (float: a rational, |error| <= 3.6e-7; double std::tanh) dx = dy (1 - y^2)
//   sigmoid:     y = 1 / (1 + exp(-x)), as e = exp(-|x|), y = (x >= 0 ? 1 : e) / (1 + e): never overflows
//                (float: exp by a polynomial, ~2 ulp; double std::exp)              dx = dy y (1 - y)
//
// Threads: the n values are cut into chunks of kChunkElements (whole cache lines), which the members of the
// kernels' team take from a queue when the array is large enough for a team to pay (activation.cpp); the
// caller polls the cancellation hook before each of its chunks. A cancelled call returns early with the
// output unspecified. Denormals are not flushed: the results are the reference's, bit for bit where the
// formula is (ReLU, LeakyReLU).
#pragma once

#include <cstdint>

#include "../common/cancel.h"

namespace pyrnn {

enum class Activation : int { Relu = 0, LeakyRelu = 1, Tanh = 2, Sigmoid = 3 };
constexpr int kActivations = 4;

// y[0, n) from x[0, n)
template <typename F>
void activation_forward(Activation kind, const F* x, F* y, int64_t n, F slope, Cancel& cancel);

// dx[0, n) from saved[0, n) (see above) and dy[0, n)
template <typename F>
void activation_backward(Activation kind, const F* saved, const F* dy, F* dx, int64_t n, F slope, Cancel& cancel);

}  // namespace pyrnn
