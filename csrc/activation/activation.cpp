// See activation.h. One region of the thread team per call when the array is large enough for one to pay
// (common/threads.h team_for; a member that has not started when the caller is done is let off,
// parallel_optional): the members take chunks of kChunkElements values from a queue and run the active
// instruction set's loop on each (kernels.h, spans.inc); the caller polls the cancellation hook before
// it starts and before each of its chunks.
#include "activation.h"

#include <algorithm>

#include "../common/cpu.h"
#include "../common/threads.h"
#include "kernels.h"

namespace pyrnn {

namespace {

// values per chunk: 64 KiB of float (a few microseconds of work), whole cache lines, and the work between
// two polls of the cancellation hook
constexpr int64_t kChunkElements = int64_t(1) << 14;

// The work of one value in team_for's flops (~0.01 ns each on one core, common/threads.h), from one core's
// time in cache (AMD EPYC, AVX-512, one run on a shared machine): the selects stream at ~0.15 ns a float value
// (0.3 a double), the float tanh and sigmoid at ~0.35 and ~0.55 ns, every backward at ~0.2 (0.4); the double
// tanh and exp are libm's, one value at a time: ~35 and ~17 ns. So a team starts at ~40 us of work: about
// 270k float values for ReLU, 120k for Tanh, 75k for Sigmoid, 1.2k double values for Tanh.
long long flops_per_value(Activation kind, bool backward, bool is_double) {
  if (backward) return is_double ? 40 : 20;
  if (kind == Activation::Tanh) return is_double ? 3500 : 35;
  if (kind == Activation::Sigmoid) return is_double ? 1700 : 55;
  return is_double ? 30 : 15;
}

const ActivationTable& table_for(Isa isa) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (isa == Isa::Avx512) return activation_table<Isa::Avx512>();
  if (isa == Isa::Avx2) return activation_table<Isa::Avx2>();
#endif
  (void)isa;
  return activation_table<Isa::Generic>();
}

template <typename F>
const ActivationSpans<F>& active_spans();
template <>
const ActivationSpans<float>& active_spans<float>() {
  return table_for(active_isa()).f32;
}
template <>
const ActivationSpans<double>& active_spans<double>() {
  return table_for(active_isa()).f64;
}

// run(i0, i1) on the chunks of [0, n), over the team when `flops` pay for one; the caller polls before it
// starts and before each of its chunks, and every member stops once the work is cancelled
template <typename Run>
void for_chunks(int64_t n, long long flops, Cancel& cancel, Run&& run) {
  if (n <= 0) return;
  const int64_t chunks = (n + kChunkElements - 1) / kChunkElements;
  WorkQueue queue(chunks);
  auto stopped = [&](int tid, int64_t step) {
    if (tid == 0) cancel.poll(step);
    return cancel.cancelled();
  };
  auto region = [&](int tid) {
    if (stopped(tid, 0)) return;
    for (int64_t k; queue.take(k) && !stopped(tid, k + 1);)
      run(k * kChunkElements, std::min(n, (k + 1) * kChunkElements));
  };
  parallel_optional(team_for(flops, chunks), region);
}

}  // namespace

template <typename F>
void activation_forward(Activation kind, const F* x, F* y, int64_t n, F slope, Cancel& cancel) {
  const auto fn = active_spans<F>().forward[static_cast<int>(kind)];
  for_chunks(n, n * flops_per_value(kind, false, sizeof(F) == 8), cancel,
             [&](int64_t i0, int64_t i1) { fn(x + i0, y + i0, i1 - i0, slope); });
}

template <typename F>
void activation_backward(Activation kind, const F* saved, const F* dy, F* dx, int64_t n, F slope, Cancel& cancel) {
  const auto fn = active_spans<F>().backward[static_cast<int>(kind)];
  for_chunks(n, n * flops_per_value(kind, true, sizeof(F) == 8), cancel,
             [&](int64_t i0, int64_t i1) { fn(saved + i0, dy + i0, dx + i0, i1 - i0, slope); });
}

#define PYRNN_ACTIVATION_INSTANTIATE(F)                                               \
  template void activation_forward<F>(Activation, const F*, F*, int64_t, F, Cancel&); \
  template void activation_backward<F>(Activation, const F*, const F*, F*, int64_t, F, Cancel&);
PYRNN_ACTIVATION_INSTANTIATE(float)
PYRNN_ACTIVATION_INSTANTIATE(double)
#undef PYRNN_ACTIVATION_INSTANTIATE

}  // namespace pyrnn
