// Indirect GEMM (XNNPACK's igemm): the convolutions' product without an im2col buffer, compiled once
// per instruction set (igemm_*.cpp, body igemm.inc) and chosen at run time like the recurrent loops.
//
// Legend: M = rows of C (output pixels), N = columns of C (output channels), T = taps (kH*kW), K =
// values per tap (input channels), nr = columns per packed panel (two SIMD registers).
//
//   C[r, n] = start[n] + sum_{t < T, k < K} ind[r*T + t][a_off + k] * P[t*K + k, n]
//
// Row r of the virtual A matrix is T runs of K contiguous values, each found through the indirection
// table ind (a pointer into the image per pixel and tap, or to a row of zeros for a padding tap), so a
// convolution reads its input in place. P is the weight, packed once per call by igemm_pack into
// ceil(N/nr) panels of T*K rows of nr values (zero past N); start is a packed bias (igemm_pack_bias),
// C itself (acc) or zero.
#pragma once

#include <cstdint>

#include "../common/cpu.h"
#include "conv2d.h"
#include "planar.h"

namespace pyrnn {

template <typename F>
struct IgemmCall {
  int64_t M, N, T, K;
  const F* const* ind;  // (M, T) pointers
  int64_t a_off;        // added to every pointer of ind (a group's first channel)
  const F* packed;      // the weight, as igemm_pack packed it
  const F* bias;        // a packed bias row per panel (igemm_pack_bias), or null
  bool acc;             // add into C (bias is then null)
  F* C;                 // (M, N) with row stride ldc
  int64_t ldc;
};

// The weight gradient's product over the same indirection table (per tap t, the transposed product):
//
//   D[n, t*K + k] += sum_{r < M} dy[r*ldy + n] * ind[r*T + t][a_off + k]
//
// D (N, T*K) row-major is the gradient with the taps outside the channels (conv2d.cpp reorders it).
template <typename F>
struct WgradCall {
  int64_t M, N, T, K;
  const F* const* ind;  // (M, T) pointers
  int64_t a_off;        // added to every pointer of ind
  const F* dy;          // (M, N) with row stride ldy
  int64_t ldy;
  F* D;  // (N, T*K), added into
};

// The gradients of a stride-1 convolution of one group with 6 or 8 input channels, the output channels in the lanes
// (out_lanes.inc): dx's lines [l0, l0 + n) (line b*H + ih), written; dw's sum over dy's lines [l0, l0 + n) (line
// b*HO + i), added into D
template <typename F>
struct DxLanesCall {
  const Conv2dDims* d;
  const F* dy;  // (B, HO, WO, O)
  const F* wt;  // (T, C, O): wt[(t*C + c)*O + o] = w[o, c, kh, kw]
  int64_t l0, n;
  F* dx;  // (B, H, W, C)
};
template <typename F>
struct DwLanesCall {
  const Conv2dDims* d;
  const F* x;     // (B, H, W, C)
  const F* dy;    // (B, HO, WO, O)
  const F* zero;  // W*C zeros: a row of x above or below it
  int64_t l0, n;
  F* D;  // (T, C, O), added into: D[(t*C + c)*O + o] += the gradient of w[o, c, kh, kw]
};

template <typename F>
struct IgemmPanels {
  int64_t nr;                             // columns per packed panel (igemm_pack with this nr)
  void (*run)(const IgemmCall<F>& call);  // C = start + the product, rows [0, M)
};

// The instruction set's convolution kernels: the indirect GEMM, and the Winograd F(2x2, 3x3)
// transforms whose 16 products it computes (winograd.inc: V, M, dM are (16, nt, C), (16, nt, O), (16, nt, O)).
template <typename F>
struct IgemmKernels {
  IgemmPanels<F> wide;                      // two registers per panel
  IgemmPanels<F> narrow;                    // one register per panel, twice the rows per tile: for N <= one register
  void (*wgrad)(const WgradCall<F>& call);  // D += the weight gradient's product
  void (*winograd_input)(const Conv2dDims& d, const F* x, const F* zero, int64_t t0, int64_t nt, F* V);  // zero: 4C
  void (*winograd_output)(const Conv2dDims& d, const F* M, const F* bias, PostOp post, int64_t t0, int64_t nt, F* y);
  void (*winograd_grad)(const Conv2dDims& d, const F* dy, const F* zero, int64_t t0, int64_t nt, F* dM);  // dM of dy
  PlanarKernels<F> planar;                       // the few-channel stride-1 convolutions (planar.h)
  void (*dx_lanes)(const DxLanesCall<F>& call);  // dx of 6 or 8 input channels, O one or two registers
  void (*dw_lanes)(const DwLanesCall<F>& call);  // their weight gradient
  void (*post)(PostOp op, F* y, int64_t n);      // y = op(y), n values in place (conv2d.h PostOp)
  // the panels for a product of N columns
  const IgemmPanels<F>& panels(int64_t N) const { return N <= narrow.nr ? narrow : wide; }
};

// The kernels of one instruction set (defined by igemm_<isa>.cpp; the wider ones on x86-64 only).
template <Isa isa>
const IgemmKernels<float>& igemm_kernels_f32();
template <Isa isa>
const IgemmKernels<double>& igemm_kernels_f64();

// The kernels for the active instruction set (cpu.h active_isa()).
template <typename F>
const IgemmKernels<F>& igemm_kernels();

// Values igemm_pack writes for rows x N: ceil(N/nr)*nr*rows.
inline int64_t igemm_packed_size(int64_t nr, int64_t rows, int64_t N) { return (N + nr - 1) / nr * nr * rows; }

// out[p][row][c] = w(row, p*nr + c) (0 past N), for a weight given by its value at (row, n).
template <typename F, typename W>
void igemm_pack(int64_t nr, int64_t rows, int64_t N, W&& w, F* out) {
  const int64_t np = (N + nr - 1) / nr;
  for (int64_t p = 0; p < np; ++p)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < nr; ++c) {
        const int64_t n = p * nr + c;
        out[(p * rows + r) * nr + c] = n < N ? w(r, n) : F(0);
      }
}

// out[p][c] = b[p*nr + c] (0 past N): ceil(N/nr)*nr values.
template <typename F>
void igemm_pack_bias(int64_t nr, int64_t N, const F* b, F* out) {
  igemm_pack<F>(nr, 1, N, [b](int64_t, int64_t n) { return b[n]; }, out);
}

}  // namespace pyrnn
