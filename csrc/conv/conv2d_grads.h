// The convolution gradients that run on their own, after the data gradient (conv2d.cpp conv2d_backward): Winograd's
// weight gradient (winograd.inc's transforms), the data and weight gradients with the output channels in the lanes
// (out_lanes.inc), and the column sums of dy that give db. Legend: conv2d.h. The members of a weight gradient sum
// into the partial results of Slots (common/threads.h), added in slot order, so the sums do not depend on which
// member ran what; dw and db (db may be null) are added into only after a region that ran to its end.
#pragma once

#include <cstdint>

#include "../common/cancel.h"
#include "conv2d.h"
#include "igemm.h"

namespace pyrnn {

// Whether dx_lanes_backward and dw_lanes_weight_grad run this convolution's gradients (see conv2d_grads.cpp for the
// measurements behind them), `lanes` floats per register
bool lanes_fit(const Conv2dDims& d, int64_t lanes);
bool dw_lanes_fit(const Conv2dDims& d, int64_t lanes);

// db[o] += sum over m rows of dy[r, o] (dy's rows of O values)
template <typename F>
void add_column_sums(int64_t m, int64_t O, const F* dy, F* db);

// dw += the weight gradient of a convolution that winograd_fits (plan.h), db += dy's column sums unless db is null
template <typename F>
void winograd_weight_grad(const Conv2dDims& d, const IgemmKernels<F>& kern, const F* x, const F* dy, F* dw, F* db,
                          Cancel& cancel);

// dx (written) of a convolution that lanes_fit; unspecified when cancelled
template <typename F>
void dx_lanes_backward(const Conv2dDims& d, const IgemmKernels<F>& kern, const F* w, const F* dy, F* dx,
                       Cancel& cancel);

// dw += the weight gradient of a convolution that dw_lanes_fit, db += dy's column sums unless db is null
template <typename F>
void dw_lanes_weight_grad(const Conv2dDims& d, const IgemmKernels<F>& kern, const F* x, const F* dy, F* dw, F* db,
                          Cancel& cancel);

}  // namespace pyrnn
