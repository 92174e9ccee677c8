// See gemm.h. Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T,
// so the Fortran call swaps the operands and M with N.
#include "gemm.h"

#include <algorithm>

#include <mutex>

#include "cpu.h"
#include "threads.h"

namespace pyrnn {

namespace {
blas_get_threads_fn g_get_threads = nullptr;
blas_set_threads_fn g_set_threads = nullptr;
std::mutex g_threads_mutex;
int g_one_thread_users = 0;  // live BlasOneThread guards
int g_saved_threads = 0;     // the BLAS's thread count before the first of them

sgemm_fn g_sgemm = nullptr;
dgemm_fn g_dgemm = nullptr;
sgemm64_fn g_sgemm64 = nullptr;
dgemm64_fn g_dgemm64 = nullptr;

template <typename F>
void gemm_loops(bool ta, bool tb, int64_t M, int64_t N, int64_t K, F alpha, const F* A, int64_t lda, const F* B,
                int64_t ldb, F beta, F* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == F(0) ? F(0) : beta * C[i * ldc + j];
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k) {
      const F a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);
      F* c = C + i * ldc;
      if (tb)
        for (int64_t j = 0; j < N; ++j) c[j] += a * B[j * ldb + k];
      else
        for (int64_t j = 0; j < N; ++j) c[j] += a * B[k * ldb + j];
    }
}

template <typename Int, typename F, typename Fn>
void gemm_blas(Fn fn, bool ta, bool tb, int64_t M, int64_t N, int64_t K, F alpha, const F* A, int64_t lda, const F* B,
               int64_t ldb, F beta, F* C, int64_t ldc) {
  const char opa = ta ? 'T' : 'N', opb = tb ? 'T' : 'N';
  const Int m = static_cast<Int>(N), n = static_cast<Int>(M), k = static_cast<Int>(K);
  const Int la = static_cast<Int>(lda), lb = static_cast<Int>(ldb), lc = static_cast<Int>(ldc);
  fn(&opb, &opa, &m, &n, &k, &alpha, B, &lb, A, &la, &beta, C, &lc);
}
// the registered BLAS routines for F (overloads on a null tag pointer)
sgemm_fn registered(const float*) { return g_sgemm; }
dgemm_fn registered(const double*) { return g_dgemm; }
sgemm64_fn registered64(const float*) { return g_sgemm64; }
dgemm64_fn registered64(const double*) { return g_dgemm64; }
}  // namespace

void set_blas(sgemm_fn s, dgemm_fn d) {
  g_sgemm = s;
  g_dgemm = d;
  if (s == nullptr || d == nullptr) g_sgemm64 = nullptr, g_dgemm64 = nullptr;
}

void set_blas_threads(blas_get_threads_fn get, blas_set_threads_fn set) {
  std::lock_guard<std::mutex> lk(g_threads_mutex);
  g_get_threads = get;
  g_set_threads = set;
}

BlasOneThread::BlasOneThread(bool engage) : engaged_(engage) {
  if (!engaged_) return;
  std::lock_guard<std::mutex> lk(g_threads_mutex);
  if (g_one_thread_users++ == 0 && g_get_threads != nullptr && g_set_threads != nullptr) {
    g_saved_threads = g_get_threads();
    if (g_saved_threads > 1) g_set_threads(1);
  }
}

BlasOneThread::~BlasOneThread() {
  if (!engaged_) return;
  std::lock_guard<std::mutex> lk(g_threads_mutex);
  if (--g_one_thread_users == 0 && g_set_threads != nullptr && g_saved_threads > 1) g_set_threads(g_saved_threads);
}

void set_blas64(sgemm64_fn s, dgemm64_fn d) {
  g_sgemm64 = s;
  g_dgemm64 = d;
}

const char* blas_interface() {
  if (g_sgemm64 != nullptr && g_dgemm64 != nullptr) return "ilp64";
  return g_sgemm != nullptr && g_dgemm != nullptr ? "lp64" : "loops";
}

// One BLAS call, or the loops when none is registered.
template <typename F>
void gemm_once(bool ta, bool tb, int64_t M, int64_t N, int64_t K, F alpha, const F* A, int64_t lda, const F* B,
               int64_t ldb, F beta, F* C, int64_t ldc) {
  const F* tag = nullptr;
  if (const auto fn64 = registered64(tag); fn64 != nullptr && K > 0)
    gemm_blas<int64_t>(fn64, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else if (const auto fn = registered(tag); fn != nullptr && K > 0)
    gemm_blas<int>(fn, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    gemm_loops(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// OpenBLAS' multi-threaded driver cuts the K axis into blocks elsewhere than its single-threaded
// one when K is not a multiple of 32, so such a product changes in the last bits with the BLAS's
// thread count (weight gradients of a partial last batch did). The largest multiple of 32 of K
// goes in one call and the remainder (< 32: one block) in a second, added after it: the sums are
// the same for any thread count (pyrnn/backends/ordered.py does the same for NumPy's matmuls).
constexpr int64_t kUnitK = 32;

template <typename F>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, F alpha, const F* A, int64_t lda, const F* B, int64_t ldb,
          F beta, F* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const int64_t rest = K % kUnitK;
  if (rest == 0 || K < kUnitK) return gemm_once(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  const int64_t head = K - rest;
  gemm_once(ta, tb, M, N, head, alpha, A, lda, B, ldb, beta, C, ldc);
  // op(A) (M, K): column offset head, or row offset when A is stored transposed; op(B) (K, N) likewise.
  const F* A2 = ta ? A + head * lda : A + head;
  const F* B2 = tb ? B + head : B + head * ldb;
  gemm_once(ta, tb, M, N, rest, alpha, A2, lda, B2, ldb, F(1), C, ldc);
}

template <typename F>
void gemm_team(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const F* A, int64_t lda, const F* B, int64_t ldb,
               F beta, F* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const long long flops = 2LL * M * N * K;
  const bool by_rows = M > N;  // the cut axis: C's rows re-pack op(B) per block, its columns op(A)
  const int64_t L = by_rows ? M : N;
  // twice the blocks for 4x the flops: each block packs the shared operand again, so few and large ones
  int64_t blocks = 1;
  for (long long f = flops / kGemmBlockFlops; f >= 4 && 2 * blocks <= kGemmBlocks && 2 * blocks * kGemmMinWidth <= L;
       f /= 4)
    blocks *= 2;
  const int64_t width = (L + blocks - 1) / blocks;
  WorkQueue queue(blocks);
  auto member = [&](int) {
    DenormalsFlushed ftz;
    for (int64_t k; queue.take(k);) {
      const int64_t l0 = k * width, n = std::min(width, L - l0);
      if (n <= 0) continue;
      if (by_rows)  // rows l0.. of op(A) and C
        gemm_once<F>(ta, tb, n, N, K, F(1), ta ? A + l0 : A + l0 * lda, lda, B, ldb, beta, C + l0 * ldc, ldc);
      else  // columns l0.. of op(B) and C
        gemm_once<F>(ta, tb, M, n, K, F(1), A, lda, tb ? B + l0 * ldb : B + l0, ldb, beta, C + l0, ldc);
    }
  };
  BlasOneThread one;
  // a team from parallel_min_flops(), a recurrent step's GEMM's threshold (team_for asks 4x that of a region)
  parallel_optional(team_for(4 * flops, blocks), member);
}

template void gemm_team<float>(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t,
                               float, float*, int64_t);
template void gemm_team<double>(bool, bool, int64_t, int64_t, int64_t, const double*, int64_t, const double*, int64_t,
                                double, double*, int64_t);

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t);

}  // namespace pyrnn
