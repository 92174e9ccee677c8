// MaxPool2D / AvgPool2D / Upsample2D kernels on channels-last images, direct loops.
//
// Legend: B = batch, H/W = input height/width, C = channels, OH/OW = output height/width,
// kh/kw = kernel, sh/sw = stride, ph/pw = padding, dh/dw = dilation. x (B, H, W, C), y (B, OH, OW, C).
//
// max: y[b, oh, ow, c] = max over the taps ih = oh*sh - ph + i*dh, iw = ow*sw - pw + j*dw inside x
//      (padding -inf); arg = ih*W + iw of the first maximum in window order (the first tap inside x
//      starts it; a NaN wins and propagates), -1 if no tap is inside x.
//      Backward: dx[b, ih, iw, c] = sum of dy[b, oh, ow, c] over the windows (oh, ow) holding (ih, iw)
//      whose arg[b, oh, ow, c] is ih*W + iw (an arg naming no pixel of its window sends nothing).
// avg: y = (sum over the taps inside x) / (div_h[oh] * div_w[ow]) (dilation 1; the divisors come from
//      the Python side, torch's rule); backward: each tap inside x gets dy / (div_h[oh] * div_w[ow]).
// upsample: y[b, p, q, c] = lh0[p] (lw0[q] x[ih0[p], iw0[q]] + lw1[q] x[ih0[p], iw1[q]])
//                         + lh1[p] (lw0[q] x[ih1[p], iw0[q]] + lw1[q] x[ih1[p], iw1[q]]) (bilinear);
//           nearest: y[b, p, q] = x[b, ih0[p], iw0[q]]. Backward: the transpose (each input index
//           gathers from the outputs between the first and the last that read it: a few when the
//           indices are nondecreasing, as pool2d_reference.upsample_axis makes them).
// The contract (and its NumPy specification) is src/pyrnn/backends/pool2d_reference.py.
//
// Every output element is written once, by one thread, with the same loop whatever the team: the
// members of the thread team take chunks of lines from a queue, output lines (b, oh) forward and input
// lines (b, ih) of dx backward, which gather from the windows holding each pixel (no scatter, no zero
// fill). A member stops at its next chunk once `cancel` (polled by the caller, tid 0) is set: a stopped
// kernel returns early with its output unspecified.
#pragma once

#include <cstdint>

#include "../common/cancel.h"

namespace pyrnn {

struct Pool2dDims {
  int64_t B, H, W, C, OH, OW;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
};

// Windows that tile x: kernel = stride, no padding, no dilation, every row and column in one window (LeNet's and
// VGG's 2x2 pools). The average pooling runs these on whole registers over the channels (lines.inc
// avg_forward_tiles, avg_backward_tiles).
inline bool pool_windows_tile(const Pool2dDims& d) {
  return d.kh == d.sh && d.kw == d.sw && d.ph == 0 && d.pw == 0 && d.dh == 1 && d.dw == 1 && d.H == d.OH * d.kh &&
         d.W == d.OW * d.kw;
}

template <typename F>
void max_pool2d_forward(const Pool2dDims& d, const F* x, F* y, int64_t* arg, Cancel& cancel);

template <typename F>
void max_pool2d_backward(const Pool2dDims& d, const F* dy, const int64_t* arg, F* dx, Cancel& cancel);

template <typename F>
void avg_pool2d_forward(const Pool2dDims& d, const F* x, const int64_t* div_h, const int64_t* div_w, F* y,
                        Cancel& cancel);

template <typename F>
void avg_pool2d_backward(const Pool2dDims& d, const F* dy, const int64_t* div_h, const int64_t* div_w, F* dx,
                         Cancel& cancel);

// one axis of the upsampling: per output index its two source indices and weights
template <typename F>
struct UpsampleAxis {
  const int64_t *i0, *i1;
  const F *l0, *l1;
};

template <typename F>
void upsample2d_forward(const Pool2dDims& d, bool nearest, const UpsampleAxis<F>& ah, const UpsampleAxis<F>& aw,
                        const F* x, F* y, Cancel& cancel);

template <typename F>
void upsample2d_backward(const Pool2dDims& d, bool nearest, const UpsampleAxis<F>& ah, const UpsampleAxis<F>& aw,
                         const F* dy, F* dx, Cancel& cancel);

}  // namespace pyrnn
