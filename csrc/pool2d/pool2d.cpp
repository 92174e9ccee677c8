// See pool2d.h. Each kernel is a set of lines (output lines forward, input lines of dx backward) in
// chunks of about kChunkElements, which the members of the thread team take from a queue when the work
// pays for a team (common/threads.h team_for, WorkQueue; a member that has not started when the caller
// is done is let off, parallel_optional); each runs its chunks with the loops of the active instruction
// set (kernels.h, lines.inc), its geometry tables and rows in scratch of its own, and the caller (tid 0)
// polls the cancellation hook before it starts and before each of its chunks.
#include "pool2d.h"

#include <algorithm>
#include <memory>

#include "../common/cpu.h"
#include "../common/scratch.h"
#include "../common/threads.h"
#include "kernels.h"

namespace pyrnn {

namespace {

constexpr int64_t kChunkElements = int64_t(1) << 16;  // work between two polls of the cancellation hook
constexpr int64_t kMinChunks = 16;                    // chunks of a kernel at least (when it has as many lines)

const Pool2dTable& table_for(Isa isa) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (isa == Isa::Avx512) return pool2d_table<Isa::Avx512>();
  if (isa == Isa::Avx2) return pool2d_table<Isa::Avx2>();
#endif
  (void)isa;
  return pool2d_table<Isa::Generic>();
}

template <typename F>
const Pool2dLines<F>& active_lines();
template <>
const Pool2dLines<float>& active_lines<float>() {
  return table_for(active_isa()).f32;
}
template <>
const Pool2dLines<double>& active_lines<double>() {
  return table_for(active_isa()).f64;
}

// before a chunk: the leader polls; every member stops once the work is cancelled
inline bool stopped(Cancel& cancel, int tid, int64_t chunk) {
  if (tid == 0) cancel.poll(chunk);
  return cancel.cancelled();
}

// `lines` lines of about `per_line` elements of work each, over a team when the work pays: every member
// calls make() once for its worker (which owns the member's scratch), then takes chunks of lines from a
// queue and runs worker(l0, l1) on each, until none is left or the work is cancelled. The leader polls
// before it starts and before each of its chunks.
template <typename Make>
void for_lines(int64_t lines, int64_t per_line, Cancel& cancel, Make&& make) {
  if (lines <= 0 || per_line <= 0) return;
  // about kChunkElements each, and at least min(lines, kMinChunks) chunks: something to share
  const int64_t chunk = std::max<int64_t>(1, std::min(kChunkElements / per_line, lines / kMinChunks));
  const int64_t chunks = (lines + chunk - 1) / chunk;
  const int want = team_for(lines * per_line * kStreamFlopsPerElement, chunks);
  WorkQueue queue(chunks);
  auto region = [&](int tid) {
    DenormalsFlushed ftz;
    if (stopped(cancel, tid, 0)) return;
    auto worker = make();
    for (int64_t k; queue.take(k) && !stopped(cancel, tid, k + 1);) worker(k * chunk, std::min(lines, (k + 1) * chunk));
  };
  parallel_optional(want, region);
}

// The windows table of one axis (see kernels.h) into t (L*window_stride(k, O) entries), in tap order;
// a kernel longer than the output is walked window by window, not tap by tap
void windows_of(int64_t L, int64_t O, int64_t k, int64_t s, int64_t p, int64_t dil, int64_t* t) {
  const int64_t stride = window_stride(k, O);
  for (int64_t i = 0; i < L; ++i) {
    int64_t* row = t + i * stride;
    row[0] = 0;
    if (k <= O) {
      for (int64_t j = 0; j < k; ++j) {
        const int64_t start = i + p - j * dil;  // o*s of the window whose tap j is i
        if (start >= 0 && start % s == 0 && start / s < O) row[1 + row[0]++] = start / s;
      }
    } else {
      for (int64_t o = O - 1; o >= 0; --o) {  // tap j = (i + p - o*s) / dil grows as o falls
        const int64_t off = i + p - o * s;
        if (off >= 0 && off % dil == 0 && off / dil < k) row[1 + row[0]++] = o;
      }
    }
  }
}

// The windows tables of H and W, in one block: rows at t, columns at t + H*window_stride(kh, OH).
Scratch<int64_t> window_tables(const Pool2dDims& d) {
  const int64_t rows = d.H * window_stride(d.kh, d.OH);
  auto t = scratch<int64_t>(rows + d.W * window_stride(d.kw, d.OW));
  windows_of(d.H, d.OH, d.kh, d.sh, d.ph, d.dh, t.get());
  windows_of(d.W, d.OW, d.kw, d.sw, d.pw, d.dw, t.get() + rows);
  return t;
}

// The span table of an upsampled axis (see kernels.h) into span (2L entries).
template <typename F>
void spans_of(int64_t L, int64_t O, const UpsampleAxis<F>& a, int64_t* span) {
  for (int64_t i = 0; i < L; ++i) span[2 * i] = O, span[2 * i + 1] = 0;
  for (int64_t o = 0; o < O; ++o)
    for (const int64_t i : {a.i0[o], a.i1[o]}) {
      span[2 * i] = std::min(span[2 * i], o);
      span[2 * i + 1] = std::max(span[2 * i + 1], o + 1);
    }
}

// windows holding a pixel, about (taps per window / stride) per axis
inline int64_t overlap(const Pool2dDims& d) {
  return ((d.kh * d.dh + d.sh - 1) / d.sh) * ((d.kw * d.dw + d.sw - 1) / d.sw);
}

}  // namespace

template <typename F>
void max_pool2d_forward(const Pool2dDims& d, const F* x, F* y, int64_t* arg, Cancel& cancel) {
  const Pool2dLines<F>& k = active_lines<F>();
  for_lines(d.B * d.OH, d.OW * d.C * (d.kh * d.kw + 3), cancel,
            [&] { return [&](int64_t l0, int64_t l1) { k.max_forward(d, x, y, arg, l0, l1); }; });
}

template <typename F>
void max_pool2d_backward(const Pool2dDims& d, const F* dy, const int64_t* arg, F* dx, Cancel& cancel) {
  const Pool2dLines<F>& k = active_lines<F>();
  for_lines(d.B * d.H, d.W * d.C * (1 + 3 * overlap(d)), cancel, [&] {
    return [&, t = window_tables(d)](int64_t l0, int64_t l1) {
      k.max_backward(d, dy, arg, t.get(), t.get() + d.H * window_stride(d.kh, d.OH), dx, l0, l1);
    };
  });
}

template <typename F>
void avg_pool2d_forward(const Pool2dDims& d, const F* x, const int64_t* div_h, const int64_t* div_w, F* y,
                        Cancel& cancel) {
  const Pool2dLines<F>& k = active_lines<F>();
  for_lines(d.B * d.OH, d.OW * d.C * (d.kh * d.kw + 1), cancel,
            [&] { return [&](int64_t l0, int64_t l1) { k.avg_forward(d, x, div_h, div_w, y, l0, l1); }; });
}

template <typename F>
void avg_pool2d_backward(const Pool2dDims& d, const F* dy, const int64_t* div_h, const int64_t* div_w, F* dx,
                         Cancel& cancel) {
  const Pool2dLines<F>& k = active_lines<F>();
  for_lines(d.B * d.H, d.W * d.C * (1 + 2 * overlap(d)), cancel, [&] {
    return [&, t = window_tables(d)](int64_t l0, int64_t l1) {
      k.avg_backward(d, dy, div_h, div_w, t.get(), t.get() + d.H * window_stride(d.kh, d.OH), dx, l0, l1);
    };
  });
}

template <typename F>
void upsample2d_forward(const Pool2dDims& d, bool nearest, const UpsampleAxis<F>& ah, const UpsampleAxis<F>& aw,
                        const F* x, F* y, Cancel& cancel) {
  const Pool2dLines<F>& k = active_lines<F>();
  for_lines(d.B * d.OH, d.OW * d.C * 3 + (nearest ? 0 : 3 * d.W * d.C), cancel, [&] {
    return [&, row = scratch<F>(nearest ? 0 : d.W * d.C)](int64_t l0, int64_t l1) {
      k.upsample_forward(d, nearest, ah, aw, x, y, row.get(), l0, l1);
    };
  });
}

template <typename F>
void upsample2d_backward(const Pool2dDims& d, bool nearest, const UpsampleAxis<F>& ah, const UpsampleAxis<F>& aw,
                         const F* dy, F* dx, Cancel& cancel) {
  const Pool2dLines<F>& k = active_lines<F>();
  const int64_t per_line = 3 * d.OW * d.C * ((d.OH + d.H - 1) / std::max<int64_t>(d.H, 1)) + 3 * d.W * d.C;
  for_lines(d.B * d.H, per_line, cancel, [&] {
    auto spans = scratch<int64_t>(2 * (d.H + d.W));
    spans_of(d.H, d.OH, ah, spans.get());
    spans_of(d.W, d.OW, aw, spans.get() + 2 * d.H);
    return [&, spans = std::move(spans), row = scratch<F>(d.OW * d.C)](int64_t l0, int64_t l1) {
      k.upsample_backward(d, nearest, ah, aw, spans.get(), spans.get() + 2 * d.H, dy, dx, row.get(), l0, l1);
    };
  });
}

#define PYRNN_POOL2D_INSTANTIATE(F)                                                                               \
  template void max_pool2d_forward<F>(const Pool2dDims&, const F*, F*, int64_t*, Cancel&);                        \
  template void max_pool2d_backward<F>(const Pool2dDims&, const F*, const int64_t*, F*, Cancel&);                 \
  template void avg_pool2d_forward<F>(const Pool2dDims&, const F*, const int64_t*, const int64_t*, F*, Cancel&);  \
  template void avg_pool2d_backward<F>(const Pool2dDims&, const F*, const int64_t*, const int64_t*, F*, Cancel&); \
  template void upsample2d_forward<F>(const Pool2dDims&, bool, const UpsampleAxis<F>&, const UpsampleAxis<F>&,    \
                                      const F*, F*, Cancel&);                                                     \
  template void upsample2d_backward<F>(const Pool2dDims&, bool, const UpsampleAxis<F>&, const UpsampleAxis<F>&,   \
                                       const F*, F*, Cancel&);
PYRNN_POOL2D_INSTANTIATE(float)
PYRNN_POOL2D_INSTANTIATE(double)
#undef PYRNN_POOL2D_INSTANTIATE

}  // namespace pyrnn
