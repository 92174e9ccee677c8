// Few-channel convolutions (the first layers of image models: 1 or 3 input channels) with stride 1,
// where the channels are too few to fill a vector register: the output positions fill the lanes
// instead. A sample's input is copied channel-planar and zero-padded, xp[c][h*Wp + w] (Hp x Wp the
// padded image), and the output is computed at the flat positions q = i*Wp + j of the same plane
// (j < WO are real, the rest are junk and dropped), so tap (kh, kw) of every output position reads
// the input at a fixed distance off = kh*dh*Wp + kw*dw: a 1-D convolution over the whole plane, each
// tap one unaligned vector load (no im2col, no indirection table, no packing).
//
// Legend: as conv2d.h; T = KH*KW taps, q = flat position, nq = positions computed (a multiple of
// `block`), ps = values per channel plane (>= nq + the largest offset: every read is inside).
//
//   forward:        yt[o][q] = sum_{c, t} wt[(c*T + t)*O + o] xp[c][q + off[t]]
//   weight grad:    D[o][c][t] += sum_{s, q} dyp[s][o][q] xp[s][c][q + off[t]]   (dyp zero at the junk positions)
#pragma once

#include <cstdint>

#include "conv2d.h"

namespace pyrnn {

template <typename F>
struct PlanarCall {
  int64_t C, O, T, nq;
  const F* xp;  // (C, ps)
  int64_t ps;
  const int64_t* off;  // (T,)
  const F* wt;         // (C, T, O)
  F* yt;               // (O, nq), written
};

template <typename F>
struct PlanarWgradCall {
  int64_t C, O, T, nq;
  int64_t S;    // samples, summed over
  const F* xp;  // (S, C, ps)
  int64_t ps;
  const int64_t* off;  // (T,)
  const F* dyp;        // (S, O, nq)
  F* D;                // (O, C, T), added into
};

template <typename F>
struct PlanarKernels {
  int64_t block;  // nq must be a multiple of it
  void (*forward)(const PlanarCall<F>& call);
  void (*wgrad)(const PlanarWgradCall<F>& call);
};

// Whether the planar kernels run this convolution's forward / weight gradient: one group, stride 1, no
// negative padding, at most kPlanarChannels input channels (beyond that the channels fill the lanes well
// enough); the forward also only up to 4 registers of output channels (more: the indirect GEMM, whose lanes
// are the output channels, does as well with no output to transpose); and up to 64 input channels when the
// outputs fill at most a quarter of a register (the data gradient of a first layer: 16 -> 1, 2.3x faster than
// its columns and col2im; 16 -> 6, LeNet's second layer, was not faster). Measured on LeNet's and U-Net's layers.
constexpr int64_t kPlanarChannels = 8;
bool planar_forward_fits(const Conv2dDims& d, int64_t narrow_lanes);
bool planar_wgrad_fits(
    const Conv2dDims& d);  // conv2d.cpp takes some layers elsewhere first (conv2d_grads.h dw_lanes_fit)

// y = b + the convolution of x (b may be null) with the weight packed as wt[(c*T + t)*O + o]; then
// post (conv2d.h) on each output line
template <typename F>
void planar_convolve(const Conv2dDims& d, const PlanarKernels<F>& k, const F* x, const F* wt, const F* b, PostOp post,
                     F* y, Cancel& cancel);

// dw += the weight gradient (PyTorch's layout), db += the column sums of dy unless db is null; both
// untouched when cancelled
template <typename F>
void planar_weight_grad(const Conv2dDims& d, const PlanarKernels<F>& k, const F* x, const F* dy, F* dw, F* db,
                        Cancel& cancel);

}  // namespace pyrnn
