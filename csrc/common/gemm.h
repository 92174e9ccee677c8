// Row-major GEMM for the kernels: C = alpha * op(A) op(B) + beta * C.
//
// The multiply goes to a Fortran BLAS registered at import time, so the kernels link
// against no BLAS of their own. The Python side prefers NumPy's bundled OpenBLAS
// (ILP64): NumPy's own matmuls (Dense layers, losses) use that library too, and two
// OpenBLAS thread pools busy-waiting against each other on few cores cost small models
// several times their run time. Otherwise it hands over SciPy's sgemm/dgemm (LP64).
// Until one is registered, a portable loop does the work (correct, slow).
#pragma once

#include <cstdint>

namespace pyrnn {

using sgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                          const int*, const float*, const int*, const float*, float*, const int*);
using dgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*, const double*, const double*,
                          const int*, const double*, const int*, const double*, double*, const int*);

// The same routines with 64-bit integers (ILP64), as NumPy's bundled OpenBLAS exports them.
using sgemm64_fn = void (*)(const char*, const char*, const int64_t*, const int64_t*, const int64_t*, const float*,
                            const float*, const int64_t*, const float*, const int64_t*, const float*, float*,
                            const int64_t*);
using dgemm64_fn = void (*)(const char*, const char*, const int64_t*, const int64_t*, const int64_t*, const double*,
                            const double*, const int64_t*, const double*, const int64_t*, const double*, double*,
                            const int64_t*);

void set_blas(sgemm_fn s, dgemm_fn d);        // LP64 (SciPy's); nullptrs clear every registration
void set_blas64(sgemm64_fn s, dgemm64_fn d);  // ILP64 (NumPy's); preferred when registered
const char* blas_interface();                 // "ilp64", "lp64" or "loops": what gemm() calls

// The BLAS's own thread count (OpenBLAS' openblas_get/set_num_threads), registered beside
// its GEMM. While a kernel's thread team runs, every member calls the BLAS on its own slice,
// so the BLAS must not start (or keep spinning) threads of its own against the team.
using blas_get_threads_fn = int (*)();
using blas_set_threads_fn = void (*)(int);
void set_blas_threads(blas_get_threads_fn get, blas_set_threads_fn set);  // nullptrs: unknown

// While one lives, the registered BLAS runs single-threaded (nested and concurrent guards
// share one count; the last one out restores the BLAS's thread count).
class BlasOneThread {
 public:
  explicit BlasOneThread(bool engage = true);
  ~BlasOneThread();
  BlasOneThread(const BlasOneThread&) = delete;
  BlasOneThread& operator=(const BlasOneThread&) = delete;

 private:
  bool engaged_;
};

// Largest dimension or leading dimension the 32-bit BLAS interface accepts.
constexpr int64_t kMaxBlasDim = 2147483647;

// op(A) is (M, K), op(B) is (K, N), C is (M, N); lda/ldb/ldc are row strides.
template <typename F>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, F alpha, const F* A, int64_t lda, const F* B,
          int64_t ldb, F beta, F* C, int64_t ldc);

// C = op(A) op(B) + beta C over the kernels' thread team, for products that stand alone (Dense's): C is cut
// into blocks of columns (or of rows, when C has more rows than columns: the cut operand's partner is the
// one each block packs again) whose number depends on the shape alone (2 from 4 kGemmBlockFlops, twice as
// many for each 4x more, at most kGemmBlocks, at least kGemmMinWidth columns or rows each), each block one
// BLAS call on one thread, taken from a queue (a member that starts late takes fewer). Every element is
// summed by the same single-threaded call whatever the team: the same bits for any thread count. A product
// of one block runs on the caller alone, the BLAS on one thread too.
constexpr int64_t kGemmBlockFlops = int64_t(1) << 19, kGemmBlocks = 64, kGemmMinWidth = 16;
template <typename F>
void gemm_team(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const F* A, int64_t lda, const F* B,
               int64_t ldb, F beta, F* C, int64_t ldc);

}  // namespace pyrnn
