// See batchnorm.h. Each function is at most two passes over the rows, a region of the thread team each:
// the sums (one pair per slice of rows, added by the caller after the region), then the rows written,
// with the loops of the active instruction set (kernels.h, rows.inc).
#include "batchnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../common/cpu.h"
#include "../common/threads.h"
#include "kernels.h"

namespace pyrnn {

namespace {

constexpr int64_t kChunkElements = int64_t(1) << 16;  // work between two polls of the cancellation hook
// The rows are summed in this many slices (fewer when there are fewer rows), whatever the team: the sums,
// added slice by slice in slice order, are the same bits on any number of threads.
constexpr int64_t kSlices = 16;
constexpr int64_t kTileElements = 1024;  // the normalisation's coefficients: a few rows' worth, in L1

const NormTable& table_for(Isa isa) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (isa == Isa::Avx512) return norm_table<Isa::Avx512>();
  if (isa == Isa::Avx2) return norm_table<Isa::Avx2>();
#endif
  (void)isa;
  return norm_table<Isa::Generic>();
}

template <typename F>
const NormRows<F>& active_rows();
template <>
const NormRows<float>& active_rows<float>() {
  return table_for(active_isa()).f32;
}
template <>
const NormRows<double>& active_rows<double>() {
  return table_for(active_isa()).f64;
}

// before a pass and a chunk of pass `step` (0: the sums, 1: the rows written): the leader polls; every
// member stops once the work is cancelled
inline bool stopped(Cancel& cancel, int tid, int64_t step) {
  if (tid == 0) cancel.poll(step);
  return cancel.cancelled();
}

// The N rows (C values each) in kSlices slices (fewer when N is smaller), which the members of a team (when
// `flops` of work pay for one) take from a queue, each slice in chunks of about kChunkElements: one region
// of the team per pass, its members optional (threads.h parallel_optional). If `sums_first`, sums(r, n,
// s_a, s_b) runs on every chunk into its slice's two (C,) sums (zeros at first), then, unless the work was
// cancelled, the caller runs combine(partial, slab, slices), slice s's sums at partial + s*slab and
// + s*slab + C; then write(r, n) runs on every chunk. The leader polls before each pass and each chunk.
template <typename Sums, typename Combine, typename Write>
void two_passes(int64_t N, int64_t C, long long flops, bool sums_first, Cancel& cancel, Sums&& sums, Combine&& combine,
                Write&& write) {
  const int64_t slices = std::min(kSlices, N), chunk = std::max<int64_t>(1, kChunkElements / C);
  const int want = team_for(flops, slices);
  // one pass: fn(s, r, n) on the chunks of every slice s, over the team, until done or cancelled
  auto pass = [&](int64_t step, auto&& fn) {
    WorkQueue queue(slices);
    auto region = [&](int tid) {
      DenormalsFlushed ftz;
      if (stopped(cancel, tid, step)) return;
      for (int64_t s; queue.take(s);)
        for (int64_t r = N * s / slices, end = N * (s + 1) / slices; r < end && !stopped(cancel, tid, step); r += chunk)
          fn(s, r, std::min(chunk, end - r));
    };
    parallel_optional(want, region);
  };
  if (sums_first) {
    const int64_t slab = (2 * C + 7) / 8 * 8;  // a slice's two sums, whole cache lines apart from the next slice's
    std::vector<double> partial(static_cast<size_t>(slab * slices), 0.0);
    pass(0, [&](int64_t s, int64_t r, int64_t n) {
      double* p = partial.data() + slab * s;
      sums(r, n, p, p + C);
    });
    if (cancel.cancelled()) return;
    combine(static_cast<const double*>(partial.data()), slab, slices);
  }
  pass(1, [&](int64_t, int64_t r, int64_t n) { write(r, n); });
}

}  // namespace

// sums: s1, s2 of x - x[0]; combine: mean, var, inv_std, and y's coefficients; write: y
template <typename F>
void batchnorm_forward(const BatchNormDims& d, const F* x, const F* weight, const F* bias, F* running_mean,
                       F* running_var, bool training, double momentum, double eps, F* y, double* mean, double* inv_std,
                       bool relu, Cancel& cancel) {
  const int64_t N = d.N, C = d.C;
  if (C == 0) return;
  const NormRows<F>& k = active_rows<F>();
  std::vector<double> coef(static_cast<size_t>(2 * C));
  double *shift = coef.data(), *var = shift + C;
  // y = (x - mean_hi) scale + offset in F, offset = bias - (mean - mean_hi) scale: x - mean_hi is exact near
  // the mean and the rest of the double mean (0 in eval: the running mean is an F) is in the offset, so the
  // normalisation runs at F's width, not double's, and loses F's precision only in its last operation. The
  // coefficients are tiles of tile_rows rows: one loop over that many rows, not one short loop per row
  const int64_t tile_rows = std::max<int64_t>(1, kTileElements / C), tile = tile_rows * C;
  std::vector<F> tiles(static_cast<size_t>(3 * tile));
  F *mean_hi = tiles.data(), *scale = mean_hi + tile, *offset = scale + tile;
  auto coefficients = [&] {  // inv_std from var, and the tiles
    for (int64_t c = 0; c < C; ++c) {
      inv_std[c] = 1.0 / std::sqrt(var[c] + eps);
      const double s = inv_std[c] * (weight != nullptr ? static_cast<double>(weight[c]) : 1.0);
      mean_hi[c] = static_cast<F>(mean[c]);
      scale[c] = static_cast<F>(s);
      offset[c] = static_cast<F>((bias != nullptr ? static_cast<double>(bias[c]) : 0.0) -
                                 (mean[c] - static_cast<double>(mean_hi[c])) * s);
    }
    for (F* t : {mean_hi, scale, offset})
      for (int64_t r = 1; r < tile_rows; ++r) std::copy(t, t + C, t + r * C);
  };
  if (training) {  // N >= 2, checked by the caller
    for (int64_t c = 0; c < C; ++c) shift[c] = static_cast<double>(x[c]);
  } else {
    for (int64_t c = 0; c < C; ++c) {
      mean[c] = static_cast<double>(running_mean[c]);
      var[c] = static_cast<double>(running_var[c]);
    }
    coefficients();
  }
  const double Nd = static_cast<double>(N);
  two_passes(
      N, C, N * C * (training ? 3 : 2) * kStreamFlopsPerElement, training, cancel,
      [&](int64_t r, int64_t n, double* s1, double* s2) { k.stats(C, x + r * C, n, shift, s1, s2); },
      [&](const double* partial, int64_t slab, int64_t slices) {
        for (int64_t c = 0; c < C; ++c) {
          double s1 = 0.0, s2 = 0.0;
          for (int64_t s = 0; s < slices; ++s) s1 += partial[s * slab + c], s2 += partial[s * slab + C + c];
          mean[c] = shift[c] + s1 / Nd;
          var[c] = std::max(s2 - s1 * s1 / Nd, 0.0) / Nd;
        }
        coefficients();
      },
      [&](int64_t r, int64_t n) { k.normalize(C, tile_rows, x + r * C, n, mean_hi, scale, offset, relu, y + r * C); });
  if (cancel.cancelled() || !training || running_mean == nullptr) return;
  for (int64_t c = 0; c < C; ++c) {
    running_mean[c] = static_cast<F>((1.0 - momentum) * running_mean[c] + momentum * mean[c]);
    running_var[c] = static_cast<F>((1.0 - momentum) * running_var[c] + momentum * (var[c] * (Nd / (Nd - 1.0))));
  }
}

// sums: sum dy and sum dy (x - mean) (wanted for batch statistics or for dweight, dbias); combine: the
// coefficients of dx; write: dx
template <typename F>
void batchnorm_backward(const BatchNormDims& d, const F* x, const F* dy, const F* relu_y, const double* mean,
                        const double* inv_std, const F* weight, bool batch_stats, F* dx, F* dweight, F* dbias,
                        Cancel& cancel) {
  const int64_t N = d.N, C = d.C;
  if (N == 0 || C == 0) return;  // nothing to write, nothing to add
  const NormRows<F>& k = active_rows<F>();
  const bool sums = batch_stats || dweight != nullptr || dbias != nullptr;
  std::vector<double> coef(static_cast<size_t>(5 * C), 0.0);
  double *a = coef.data(), *k1 = a + C, *k2 = k1 + C, *sum_dy = k2 + C, *sum_dy_xhat = sum_dy + C;
  for (int64_t c = 0; c < C; ++c) a[c] = (weight != nullptr ? static_cast<double>(weight[c]) : 1.0) * inv_std[c];
  const double Nd = static_cast<double>(N);
  two_passes(
      N, C, N * C * (sums ? 5 : 2) * kStreamFlopsPerElement, sums, cancel,
      [&](int64_t r, int64_t n, double* s_dy, double* s_dy_xc) {
        k.reduce(C, x + r * C, dy + r * C, relu_y ? relu_y + r * C : nullptr, n, mean, s_dy, s_dy_xc);
      },
      [&](const double* partial, int64_t slab, int64_t slices) {
        for (int64_t c = 0; c < C; ++c) {
          double s_dy = 0.0, s_dy_xc = 0.0;
          for (int64_t s = 0; s < slices; ++s) s_dy += partial[s * slab + c], s_dy_xc += partial[s * slab + C + c];
          sum_dy[c] = s_dy;
          sum_dy_xhat[c] = s_dy_xc * inv_std[c];
          if (batch_stats) {  // dx = a dy - a sum(dy)/N - (x - mean) inv_std a sum(dy x_hat)/N
            k1[c] = a[c] * sum_dy[c] / Nd;
            k2[c] = a[c] * sum_dy_xhat[c] / Nd * inv_std[c];
          }
        }
      },
      [&](int64_t r, int64_t n) {
        if (batch_stats)
          k.dx(C, x + r * C, dy + r * C, relu_y ? relu_y + r * C : nullptr, n, mean, a, k1, k2, dx + r * C);
        else
          k.dx_scaled(C, dy + r * C, relu_y ? relu_y + r * C : nullptr, n, a, dx + r * C);
      });
  if (cancel.cancelled() || !sums) return;
  for (int64_t c = 0; c < C; ++c) {
    if (dweight != nullptr) dweight[c] += static_cast<F>(sum_dy_xhat[c]);
    if (dbias != nullptr) dbias[c] += static_cast<F>(sum_dy[c]);
  }
}

#define PYRNN_BATCHNORM_INSTANTIATE(F)                                                                                 \
  template void batchnorm_forward<F>(const BatchNormDims&, const F*, const F*, const F*, F*, F*, bool, double, double, \
                                     F*, double*, double*, bool, Cancel&);                                             \
  template void batchnorm_backward<F>(const BatchNormDims&, const F*, const F*, const F*, const double*,               \
                                      const double*, const F*, bool, F*, F*, F*, Cancel&);
PYRNN_BATCHNORM_INSTANTIATE(float)
PYRNN_BATCHNORM_INSTANTIATE(double)
#undef PYRNN_BATCHNORM_INSTANTIATE

}  // namespace pyrnn
