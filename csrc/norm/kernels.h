// The per-instruction-set half of the normalisation family: the loops over a block of rows, compiled
// once per ISA from rows.inc (isa_*.cpp); batchnorm.cpp splits the rows over the team and combines.
// Legend: batchnorm.h. Every function runs `rows` rows of x (and dy, y, dx), C values apart, its sums
// and coefficients (C,) in double (the forward's normalisation: in F).
#pragma once

#include <cstdint>

#include "../common/cpu.h"

namespace pyrnn {

template <typename F>
struct NormRows {
  // s1[c] += sum_n (x[n, c] - shift[c]);  s2[c] += sum_n (x[n, c] - shift[c])^2
  void (*stats)(int64_t C, const F* x, int64_t rows, const double* shift, double* s1, double* s2);
  // y[n, c] = (x[n, c] - mean[c]) * scale[c] + offset[c] in F, the coefficients given as a tile: tile_rows
  // copies of the C values, so that the loop runs over tile_rows rows at once (see batchnorm.cpp); relu:
  // y = max(that, 0), a following ReLU fused (a NaN stays NaN, as the activation kernels' max)
  void (*normalize)(int64_t C, int64_t tile_rows, const F* x, int64_t rows, const F* mean, const F* scale,
                    const F* offset, bool relu, F* y);
  // The backward ones read dy through a fused ReLU when y (its output, rows like dy) is given: dy[n, c] is then
  // 0 where y[n, c] <= 0, else dy[n, c] (the ReLU's backward); y null: dy itself.
  // sum_dy[c] += sum_n dy[n, c];  sum_dy_xc[c] += sum_n dy[n, c] (x[n, c] - mean[c])
  void (*reduce)(int64_t C, const F* x, const F* dy, const F* y, int64_t rows, const double* mean, double* sum_dy,
                 double* sum_dy_xc);
  // dx[n, c] = a[c] dy[n, c] - k1[c] - (x[n, c] - mean[c]) k2[c]
  void (*dx)(int64_t C, const F* x, const F* dy, const F* y, int64_t rows, const double* mean, const double* a,
             const double* k1, const double* k2, F* dx);
  // dx[n, c] = a[c] dy[n, c]
  void (*dx_scaled)(int64_t C, const F* dy, const F* y, int64_t rows, const double* a, F* dx);
};

struct NormTable {
  NormRows<float> f32;
  NormRows<double> f64;
};

// One table per instruction set, each defined by its isa_*.cpp (the wider ones on x86-64 builds only).
template <Isa isa>
const NormTable& norm_table();
template <>
const NormTable& norm_table<Isa::Generic>();
template <>
const NormTable& norm_table<Isa::Avx2>();
template <>
const NormTable& norm_table<Isa::Avx512>();

}  // namespace pyrnn
