// See conv1d.h. The columns are in (K, C) order, cols[r, k*C + c], so that one tap copies one
// contiguous channel row of x; the weight is transposed once per call to wk (O, K*C) to match.
// Samples are split over the kernels' thread team (each member its own samples, its own im2col
// scratch and a single-threaded BLAS), and processed in chunks so that each member's scratch
// stays near kChunkElements. The caller (tid 0) polls the cancellation hook between its chunks
// and every member stops at its next chunk once it is cancelled (no barrier: nothing to agree
// on); the weight and bias gradients are added only after a region that ran to the end.
#include "conv1d.h"

#include <algorithm>
#include <vector>

#include "../common/cpu.h"
#include "../common/gemm.h"
#include "../common/threads.h"

namespace pyrnn {

namespace {

constexpr int64_t kChunkElements = int64_t(1) << 20;

int64_t chunk_samples(const Conv1dDims& d) {
  const int64_t per_sample = std::max<int64_t>(1, d.U * d.K * d.C);
  return std::max<int64_t>(1, std::min<int64_t>(d.B, kChunkElements / per_sample));
}

// a team for a convolution worth several barriers (see threads.h), one member per sample at most
int team_size(const Conv1dDims& d) {
  const int64_t flops = 2 * d.B * d.U * d.O * d.K * d.C;
  if (flops < 4 * parallel_min_flops() || d.B < 2) return 1;
  return static_cast<int>(std::min<int64_t>(d.B, max_threads()));
}

// before a chunk: the leader polls; every member stops once the work is cancelled
inline bool stopped(Cancel& cancel, int tid, int64_t chunk) {
  if (tid == 0) cancel.poll(chunk);
  return cancel.cancelled();
}

// samples [b0, b1) of thread tid of n
inline void samples_of(const Conv1dDims& d, int tid, int n, int64_t& b0, int64_t& b1) {
  b0 = d.B * tid / n;
  b1 = d.B * (tid + 1) / n;
}

// the time index of x read by output step u at tap k (outside [0, T) in the padding)
inline int64_t tap(const Conv1dDims& d, int64_t u, int64_t k) { return u * d.stride + k * d.dilation - d.pad_left; }

// cols[r, k*C + c] = x[b0 + r / U, tap(u = r % U, k), c]; 0 where the tap is padding
template <typename F>
void im2col(const Conv1dDims& d, const F* x, int64_t b0, int64_t n, F* cols) {
  const int64_t KC = d.K * d.C;
  for (int64_t r = 0; r < n * d.U; ++r) {
    const int64_t b = b0 + r / d.U, u = r % d.U;
    for (int64_t k = 0; k < d.K; ++k) {
      const int64_t i = tap(d, u, k);
      F* dst = cols + r * KC + k * d.C;
      if (i >= 0 && i < d.T)
        std::copy(x + (b * d.T + i) * d.C, x + (b * d.T + i + 1) * d.C, dst);
      else
        std::fill(dst, dst + d.C, F(0));
    }
  }
}

// dx[b0 + r / U, tap(u, k), c] += dcols[r, k*C + c] for the taps inside x (the transpose of im2col)
template <typename F>
void col2im(const Conv1dDims& d, const F* dcols, int64_t b0, int64_t n, F* dx) {
  const int64_t KC = d.K * d.C;
  for (int64_t r = 0; r < n * d.U; ++r) {
    const int64_t b = b0 + r / d.U, u = r % d.U;
    for (int64_t k = 0; k < d.K; ++k) {
      const int64_t i = tap(d, u, k);
      if (i < 0 || i >= d.T) continue;
      const F* src = dcols + r * KC + k * d.C;
      F* dst = dx + (b * d.T + i) * d.C;
      for (int64_t c = 0; c < d.C; ++c) dst[c] += src[c];
    }
  }
}

// wk[o, k*C + c] = w[o, c, k]
template <typename F>
std::vector<F> weight_kc(const Conv1dDims& d, const F* w) {
  std::vector<F> wk(static_cast<size_t>(d.O * d.K * d.C));
  for (int64_t o = 0; o < d.O; ++o)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t k = 0; k < d.K; ++k) wk[(o * d.K + k) * d.C + c] = w[(o * d.C + c) * d.K + k];
  return wk;
}

}  // namespace

// y = bias; then per chunk of samples y[rows] += cols wk^T (one GEMM)
template <typename F>
void conv1d_forward(const Conv1dDims& d, const F* x, const F* w, const F* b, F* y, Cancel& cancel) {
  const int64_t rows = d.B * d.U, KC = d.K * d.C;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < d.O; ++o) y[r * d.O + o] = b ? b[o] : F(0);
  if (rows == 0 || d.O == 0 || KC == 0) return;
  const std::vector<F> wk = weight_kc(d, w);
  const int64_t nb = chunk_samples(d);
  const int want = team_size(d);
  BlasOneThread blas_single(want > 1);
  auto region = [&](int tid, int n, SpinBarrier&) {
    DenormalsFlushed ftz;
    int64_t s0, s1;
    samples_of(d, tid, n, s0, s1);
    std::vector<F> cols(static_cast<size_t>(std::min(nb, s1 - s0) * d.U * KC));
    for (int64_t b0 = s0; b0 < s1 && !stopped(cancel, tid, b0); b0 += nb) {
      const int64_t m = std::min(nb, s1 - b0);
      im2col(d, x, b0, m, cols.data());
      gemm<F>(false, true, m * d.U, d.O, KC, F(1), cols.data(), KC, wk.data(), KC, F(1), y + b0 * d.U * d.O, d.O);
    }
  };
  parallel(want, region);
}

// per chunk: dwk += dy^T cols, dcols = dy wk (two GEMMs), dx += col2im(dcols); then dw += dwk
// transposed back (each member accumulates its own dwk; they are summed after the region) and
// db += column sums of dy
template <typename F>
void conv1d_backward(const Conv1dDims& d, const F* x, const F* w, const F* dy, F* dx, F* dw, F* db, Cancel& cancel) {
  const int64_t rows = d.B * d.U, KC = d.K * d.C;
  std::fill(dx, dx + d.B * d.T * d.C, F(0));
  auto add_db = [&] {
    if (db)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < d.O; ++o) db[o] += dy[r * d.O + o];
  };
  if (rows == 0 || d.O == 0 || KC == 0) return add_db();
  const std::vector<F> wk = weight_kc(d, w);
  const int64_t nb = chunk_samples(d);
  const int want = team_size(d);
  std::vector<F> dwk(wk.size() * static_cast<size_t>(want), F(0));  // one per member
  BlasOneThread blas_single(want > 1);
  auto region = [&](int tid, int n, SpinBarrier&) {
    DenormalsFlushed ftz;
    int64_t s0, s1;
    samples_of(d, tid, n, s0, s1);
    std::vector<F> cols(static_cast<size_t>(std::min(nb, s1 - s0) * d.U * KC)), dcols(cols.size());
    F* my_dwk = dwk.data() + wk.size() * static_cast<size_t>(tid);
    for (int64_t b0 = s0; b0 < s1 && !stopped(cancel, tid, b0); b0 += nb) {
      const int64_t m = std::min(nb, s1 - b0);
      const F* g = dy + b0 * d.U * d.O;
      im2col(d, x, b0, m, cols.data());
      gemm<F>(true, false, d.O, KC, m * d.U, F(1), g, d.O, cols.data(), KC, F(1), my_dwk, KC);
      gemm<F>(false, false, m * d.U, KC, d.O, F(1), g, d.O, wk.data(), KC, F(0), dcols.data(), KC);
      col2im(d, dcols.data(), b0, m, dx);
    }
  };
  const int used = parallel(want, region);
  if (cancel.cancelled()) return;  // dw and db untouched
  add_db();
  for (int t = 1; t < used; ++t)
    for (size_t i = 0; i < wk.size(); ++i) dwk[i] += dwk[wk.size() * static_cast<size_t>(t) + i];
  for (int64_t o = 0; o < d.O; ++o)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t k = 0; k < d.K; ++k) dw[(o * d.C + c) * d.K + k] += dwk[(o * d.K + k) * d.C + c];
}

#define PYRNN_CONV1D_INSTANTIATE(F)                                                              \
  template void conv1d_forward<F>(const Conv1dDims&, const F*, const F*, const F*, F*, Cancel&); \
  template void conv1d_backward<F>(const Conv1dDims&, const F*, const F*, const F*, F*, F*, F*, Cancel&);
PYRNN_CONV1D_INSTANTIATE(float)
PYRNN_CONV1D_INSTANTIATE(double)
#undef PYRNN_CONV1D_INSTANTIATE

}  // namespace pyrnn
