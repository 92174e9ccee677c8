// Row-major GEMM for the kernels: C = alpha * op(A) op(B) + beta * C.
//
// The multiply goes to a Fortran BLAS registered at import time (the Python
// side hands over SciPy's sgemm/dgemm, i.e. the OpenBLAS that NumPy/SciPy
// ship), so the kernels link against no BLAS of their own. Until one is
// registered, a portable loop does the work (correct, slow).
#pragma once

#include <cstdint>

namespace pyrnn {

using sgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                          const int*, const float*, const int*, const float*, float*, const int*);
using dgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*, const double*, const double*,
                          const int*, const double*, const int*, const double*, double*, const int*);

void set_blas(sgemm_fn s, dgemm_fn d);
bool have_blas();

// Largest dimension or leading dimension the 32-bit BLAS interface accepts.
constexpr int64_t kMaxBlasDim = 2147483647;

// op(A) is (M, K), op(B) is (K, N), C is (M, N); lda/ldb/ldc are row strides.
template <typename F>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, F alpha, const F* A, int64_t lda, const F* B,
          int64_t ldb, F beta, F* C, int64_t ldc);

}  // namespace pyrnn
