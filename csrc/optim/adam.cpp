// See adam.h. A tensor large enough for the team to pay is cut into chunks the members take from a
// queue (common/threads.h: parallel_optional); smaller ones run on the caller.
#include "adam.h"

#include <algorithm>
#include <cmath>

#include "../common/threads.h"

namespace pyrnn {

namespace {

constexpr int64_t kChunkElements = int64_t(1) << 14;  // 64 KiB of float per stream

// The scalars of a step, rounded to F once (as NumPy rounds a Python float meeting an F array).
template <typename F>
struct Scalars {
  F decay, wd, w, one_minus_w, c2, beta2, sqrt_bc2, eps, step_size;
  bool small_w;
  explicit Scalars(const AdamStep& s) {
    const double w_ = 1.0 - s.beta1;
    decay = static_cast<F>(1.0 - s.lr * s.weight_decay);
    wd = static_cast<F>(s.weight_decay);
    small_w = std::fabs(w_) < 0.5;
    w = static_cast<F>(w_);
    one_minus_w = static_cast<F>(1.0 - w_);
    beta2 = static_cast<F>(s.beta2);
    c2 = static_cast<F>(1.0 - s.beta2);
    sqrt_bc2 = static_cast<F>(std::pow(1.0 - std::pow(s.beta2, static_cast<double>(s.t)), 0.5));
    eps = static_cast<F>(s.eps);
    step_size = static_cast<F>(s.lr / (1.0 - std::pow(s.beta1, static_cast<double>(s.t))));
  }
};

// np.maximum's: the larger, a NaN on either side wins
template <typename F>
inline F nan_max(F a, F b) {
  return (a >= b || std::isnan(a)) ? a : b;
}

// values [i0, i1); the step's branches are template arguments, so that the loop has none and vectorises
template <bool kL2, bool kDecoupled, bool kSmallW, bool kAmsgrad, typename F>
void update_span(const Scalars<F>& k, int64_t i0, int64_t i1, F* __restrict p, const F* __restrict g, F* __restrict m,
                 F* __restrict v, F* __restrict vmax) {
  for (int64_t i = i0; i < i1; ++i) {
    F d = g[i];
    if (kDecoupled) p[i] = p[i] * k.decay;
    if (kL2) d = d + k.wd * p[i];
    const F diff = d - m[i];  // m = lerp(m, d, w)
    m[i] = kSmallW ? m[i] + diff * k.w : d - diff * k.one_minus_w;
    v[i] = v[i] * k.beta2 + (k.c2 * d) * d;
    F vv = v[i];
    if (kAmsgrad) vv = vmax[i] = nan_max(vmax[i], vv);
    const F den = std::sqrt(vv) / k.sqrt_bc2 + k.eps;
    p[i] = p[i] - k.step_size * (m[i] / den);
  }
}

template <typename F>
using SpanFn = void (*)(const Scalars<F>&, int64_t, int64_t, F*, const F*, F*, F*, F*);

template <typename F, bool kL2, bool kDecoupled>
SpanFn<F> span_for(bool small_w, bool amsgrad) {
  if (small_w)
    return amsgrad ? update_span<kL2, kDecoupled, true, true, F> : update_span<kL2, kDecoupled, true, false, F>;
  return amsgrad ? update_span<kL2, kDecoupled, false, true, F> : update_span<kL2, kDecoupled, false, false, F>;
}

template <typename F>
SpanFn<F> span_for(const AdamStep& s, bool small_w, bool amsgrad) {
  if (s.weight_decay == 0.0) return span_for<F, false, false>(small_w, amsgrad);
  return s.decoupled ? span_for<F, false, true>(small_w, amsgrad) : span_for<F, true, false>(small_w, amsgrad);
}

}  // namespace

template <typename F>
void adam_update(const AdamStep& s, int64_t n, F* p, const F* g, F* m, F* v, F* vmax) {
  if (n <= 0) return;
  const Scalars<F> k(s);
  const int64_t chunks = (n + kChunkElements - 1) / kChunkElements;
  WorkQueue queue(chunks);
  const SpanFn<F> span = span_for<F>(s, k.small_w, vmax != nullptr);
  auto region = [&](int) {
    for (int64_t c; queue.take(c);)
      span(k, c * kChunkElements, std::min(n, (c + 1) * kChunkElements), p, g, m, v, vmax);
  };
  // a streaming kernel: kStreamFlopsPerElement per value (threads.h) for each of the ~7 arrays it streams
  parallel_optional(team_for(7 * n * kStreamFlopsPerElement, chunks), region);
}

template void adam_update<float>(const AdamStep&, int64_t, float*, const float*, float*, float*, float*);
template void adam_update<double>(const AdamStep&, int64_t, double*, const double*, double*, double*, double*);

}  // namespace pyrnn
