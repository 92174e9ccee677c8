// Conv2D kernels on channels-last images: implicit GEMM (im2col of a chunk of output rows) + the
// project's GEMM. ConvTranspose2D has no kernel of its own: it is the adjoint, run through these two.
//
// Legend: B = batch, H/W = input height/width, C = input channels, O = output channels, G = groups,
// Cg = C/G, Og = O/G, KH/KW = kernel height/width, HO/WO = output height/width, s = (sh, sw) stride,
// d = (dh, dw) dilation, pt/pb/pl/pr = zero padding top/bottom/left/right.
// x (B, H, W, C), w (O, Cg, KH, KW) (PyTorch's layout), b (O), y (B, HO, WO, O), all row-major.
//
// Forward:  y[b, i, j, o] = b[o] + sum_{c, kh, kw} w[o, c, kh, kw] xp[b, i*sh + kh*dh, j*sw + kw*dw, g*Cg + c]
//           (g = o / Og, xp = x zero-padded)
// Backward: dw[o, c, kh, kw] += sum_{b,i,j} dy[b, i, j, o] xp[b, i*sh + kh*dh, j*sw + kw*dw, g*Cg + c]
//           db[o] += sum_{b,i,j} dy[b, i, j, o]
//           dx[b, i*sh + kh*dh - pt, j*sw + kw*dw - pl, g*Cg + c] = sum over the (i, j, kh, kw) landing there
//           of sum_{o in g} dy[b, i, j, o] w[o, c, kh, kw]
// The contract (and its NumPy specification) is src/pyrnn/backends/conv2d_reference.py.
// These functions know nothing of Python; the bindings check every shape before calling them.
#pragma once

#include <cstdint>

#include "../common/cancel.h"

namespace pyrnn {

struct Conv2dDims {
  int64_t B, H, W, C, O, G, KH, KW, HO, WO;
  int64_t sh, sw, pt, pb, pl, pr, dh, dw;
};

// An activation applied to y as each chunk of it is done (while in cache): the ReLU or Tanh of an inference
// Conv -> (BatchNorm ->) activation chain folded into one call. Relu: v < 0 ? 0 : v (a NaN stays NaN); Tanh: the
// activation kernels' tanh (float: the rational approximation of common/activations.inc).
enum class PostOp : int { None = 0, Relu = 1, Tanh = 2 };

// y is written, then post applied; b may be null (no bias). Stopped by `cancel` (polled between chunks), it
// returns early with y unspecified.
template <typename F>
void conv2d_forward(const Conv2dDims& d, const F* x, const F* w, const F* b, F* y, PostOp post, Cancel& cancel);

// dx is written unless null (not wanted); dw and db are added into unless null (not wanted). x may
// be null when dw is. Stopped by `cancel`, it returns early with dx unspecified and dw, db untouched.
template <typename F>
void conv2d_backward(const Conv2dDims& d, const F* x, const F* w, const F* dy, F* dx, F* dw, F* db, Cancel& cancel);

// Winograd F(2x2, 3x3) for the 3x3 stride-1 layers where it pays (on by default); off, every layer
// runs on the indirect GEMM (the tests hold both to the reference). Process-wide.
void set_winograd(bool on);
bool winograd_enabled();

}  // namespace pyrnn
