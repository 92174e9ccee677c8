// A convolution's plan, shared by conv2d.cpp and conv2d_grads.cpp: its derived sizes (Plan), whether Winograd fits
// it (the lane gradients' tests are conv2d_grads.h's), and how a kernel's work is shared out over the thread team:
// team_size, the units of chunks a WorkQueue hands out (ChunkQueue) or a reduction's Slots (common/threads.h), the
// caller polling the cancellation between chunks (stopped). Legend: conv2d.h.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../common/cancel.h"
#include "../common/threads.h"
#include "conv2d.h"

namespace pyrnn {

constexpr int64_t kChunkElements = int64_t(1) << 16;  // values of im2col columns per chunk (L2-resident)

struct Plan {
  int64_t Cg, Og, KK, KKCg, KKC;  // KKC = KH*KW*C: the length of a column row
  int64_t lines;                  // B*HO output lines (b, i), each WO rows of the GEMM
  bool depthwise;                 // Cg = 1 < G: a direct loop over the taps (G GEMMs of K = KH*KW would crawl)
  bool pointwise;                 // 1x1, stride 1, no padding (and not depthwise): the columns are x itself
  bool tiles;  // kernel = stride, no dilation, padding or leftover rows and columns, one group: the taps tile x,
               // each pixel of x read by exactly one tap (a transposed convolution's 2x2 stride-2 upsampling)
};

inline Plan plan_of(const Conv2dDims& d) {
  Plan p;
  p.Cg = d.C / d.G;
  p.Og = d.O / d.G;
  p.KK = d.KH * d.KW;
  p.KKCg = p.KK * p.Cg;
  p.KKC = p.KK * d.C;
  p.lines = d.B * d.HO;
  p.depthwise = p.Cg == 1 && d.G > 1;
  p.pointwise = !p.depthwise && d.KH == 1 && d.KW == 1 && d.sh == 1 && d.sw == 1 && d.pt == 0 && d.pb == 0 &&
                d.pl == 0 && d.pr == 0;
  p.tiles = d.G == 1 && d.KH == d.sh && d.KW == d.sw && d.dh == 1 && d.dw == 1 && d.pt == 0 && d.pb == 0 && d.pl == 0 &&
            d.pr == 0 && d.H == d.HO * d.sh && d.W == d.WO * d.sw;
  return p;
}

// a team for a convolution worth several barriers (see threads.h), one member per unit at most
inline int team_size(const Conv2dDims& d, const Plan& p, int64_t units) {
  const int64_t flops = 2 * p.lines * d.WO * d.O * p.KKCg;
  if (flops < 4 * parallel_min_flops() || units < 2) return 1;
  return static_cast<int>(std::min<int64_t>(units, max_threads()));
}

// A region's items [0, total) as the units a WorkQueue hands out, each about a quarter of a member's even share and a
// whole number of chunks, which the member that took it runs in order. A chunk is what a member's scratch holds: the
// cache-sized `most` items, but small enough for 4 chunks per member, in multiples of `least`. A member that runs late
// (its vCPU descheduled by a busy host) holds back at most its current unit while the others take the rest, where a
// fixed share per member made the whole region wait for it; every chunk is written by one member, so the results are
// the same whoever runs it. Units, not chunks, go through the queue: a take per chunk made the members contend for
// the queue's cache line hundreds of times per Winograd layer.
class ChunkQueue {
 public:
  struct Cursor {  // a member's place in its current unit
    int64_t a = 0, end = 0;
  };
  ChunkQueue(int64_t total, int64_t most, int64_t least = 1)
      : total_(total),
        chunk_(chunk_of(total, most, least)),
        unit_(quarter_in(total, chunk_) * chunk_),
        queue_((total + unit_ - 1) / unit_) {}
  int64_t chunk() const { return chunk_; }  // items per chunk at most
  int64_t units() const { return (total_ + unit_ - 1) / unit_; }
  // the member's next chunk [a, a + m): on in its unit, else the first of the next unit; false when none is left
  bool next(Cursor& c, int64_t& a, int64_t& m) {
    if (c.a >= c.end) {
      int64_t u;
      if (!queue_.take(u)) return false;
      c.a = u * unit_, c.end = std::min(total_, c.a + unit_);
    }
    a = c.a, m = std::min(chunk_, c.end - c.a);
    c.a += m;
    return true;
  }

 private:
  // ceil(a quarter of an even share / step), at least 1: a quarter share in whole steps
  static int64_t quarter_in(int64_t total, int64_t step) {
    const int64_t quarter = (total + 4 * max_threads() - 1) / (4 * max_threads());
    return std::max<int64_t>(1, (quarter + step - 1) / step);
  }
  static int64_t chunk_of(int64_t total, int64_t most, int64_t least) {
    least = std::max<int64_t>(1, least);
    return std::max<int64_t>(1, std::min(most, quarter_in(total, least) * least));
  }
  int64_t total_, chunk_, unit_;
  WorkQueue queue_;
};

// before a chunk: the leader polls; every member stops once the work is cancelled
inline bool stopped(Cancel& cancel, int tid, int64_t chunk) {
  if (tid == 0) cancel.poll(chunk);
  return cancel.cancelled();
}

// The per-channel vectors of rows of few channels (O values each) as flat runs of kFlatRows rows: a run's
// element e belongs to channel e % O, so its O * kFlatRows values are vectors whatever O is.
constexpr int64_t kFlatRows = 16;

// Winograd F(2x2, 3x3) where it pays (ncnn's rule): 3x3, stride 1, no dilation, one group, more than 8
// channels in and out. 16 products of inner size C replace 36 per 2x2 output tile (2.25x fewer
// multiply-adds); the transforms are winograd.inc's.
inline bool winograd_fits(const Conv2dDims& d) {
  return d.KH == 3 && d.KW == 3 && d.sh == 1 && d.sw == 1 && d.dh == 1 && d.dw == 1 && d.G == 1 && d.C > 8 && d.O > 8;
}

}  // namespace pyrnn
