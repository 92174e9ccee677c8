// The per-instruction-set half of the pooling/upsampling family: the loops over a range of lines,
// compiled once per ISA from lines.inc (isa_*.cpp); pool2d.cpp splits the lines over the team.
// Legend and equations: pool2d.h.
#pragma once

#include <cstdint>

#include "../common/cpu.h"
#include "pool2d.h"

namespace pyrnn {

// A windows table of one axis (length L, O outputs, kernel k): row i (window_stride(k, O) entries) holds
// the count n, then the n outputs o whose window holds input index i (o*s - p + j*dil == i for a tap j),
// in tap order. An index lies in at most min(k, O) windows (one per tap, one per output).
inline int64_t window_stride(int64_t k, int64_t O) { return (k < O ? k : O) + 1; }
// A span table of an upsampled axis: span[2i], span[2i + 1] = the outputs [first, last) that read index i.
template <typename F>
struct Pool2dLines {
  // output lines [l0, l1) (l = b*OH + oh) of y and arg
  void (*max_forward)(const Pool2dDims& d, const F* x, F* y, int64_t* arg, int64_t l0, int64_t l1);
  // input lines [l0, l1) (l = b*H + ih) of dx; rows_of, cols_of: the windows tables of H and W
  void (*max_backward)(const Pool2dDims& d, const F* dy, const int64_t* arg, const int64_t* rows_of,
                       const int64_t* cols_of, F* dx, int64_t l0, int64_t l1);
  void (*avg_forward)(const Pool2dDims& d, const F* x, const int64_t* div_h, const int64_t* div_w, F* y, int64_t l0,
                      int64_t l1);
  void (*avg_backward)(const Pool2dDims& d, const F* dy, const int64_t* div_h, const int64_t* div_w,
                       const int64_t* rows_of, const int64_t* cols_of, F* dx, int64_t l0, int64_t l1);
  // output lines [l0, l1) of y; row: W*C scratch (bilinear)
  void (*upsample_forward)(const Pool2dDims& d, bool nearest, const UpsampleAxis<F>& ah, const UpsampleAxis<F>& aw,
                           const F* x, F* y, F* row, int64_t l0, int64_t l1);
  // input lines [l0, l1) of dx; h_span, w_span: the span tables of H and W; row: OW*C scratch
  void (*upsample_backward)(const Pool2dDims& d, bool nearest, const UpsampleAxis<F>& ah, const UpsampleAxis<F>& aw,
                            const int64_t* h_span, const int64_t* w_span, const F* dy, F* dx, F* row, int64_t l0,
                            int64_t l1);
};

struct Pool2dTable {
  Pool2dLines<float> f32;
  Pool2dLines<double> f64;
};

// One table per instruction set, each defined by its isa_*.cpp (the wider ones on x86-64 builds only).
template <Isa isa>
const Pool2dTable& pool2d_table();
template <>
const Pool2dTable& pool2d_table<Isa::Generic>();
template <>
const Pool2dTable& pool2d_table<Isa::Avx2>();
template <>
const Pool2dTable& pool2d_table<Isa::Avx512>();

}  // namespace pyrnn
