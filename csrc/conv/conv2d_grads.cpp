// See conv2d_grads.h.
#include "conv2d_grads.h"

#include <algorithm>
#include <vector>

#include "../common/cpu.h"
#include "../common/threads.h"
#include "plan.h"

namespace pyrnn {

// db[o] += sum over m rows of dy[r, o]: per channel kFlatRows partial sums (a flat run's lanes), then added
template <typename F>
void add_column_sums(int64_t m, int64_t O, const F* dy, F* db) {
  if (O >= 16) {  // 64 columns at a time, four rows into four partial sums (summed into db row by row, each
                  // row's add waited for the previous row's store: 1 -> 16 on 8x64x64, 100 us of a 360 us dw)
    constexpr int64_t kCols = 64;
    for (int64_t o0 = 0; o0 < O; o0 += kCols) {
      const int64_t n = std::min(kCols, O - o0);
      F a[4][kCols] = {};
      int64_t r = 0;
      for (; r + 4 <= m; r += 4)
        for (int k = 0; k < 4; ++k)
          for (int64_t e = 0; e < n; ++e) a[k][e] += dy[(r + k) * O + o0 + e];
      for (; r < m; ++r)
        for (int64_t e = 0; e < n; ++e) a[0][e] += dy[r * O + o0 + e];
      for (int64_t e = 0; e < n; ++e) db[o0 + e] += (a[0][e] + a[1][e]) + (a[2][e] + a[3][e]);
    }
    return;
  }
  F acc[kFlatRows * 16] = {};
  const int64_t run = kFlatRows * O;
  int64_t r = 0;
  for (; r + kFlatRows <= m; r += kFlatRows)
    for (int64_t e = 0; e < run; ++e) acc[e] += dy[r * O + e];
  for (int64_t e = 0; e < (m - r) * O; ++e) acc[e] += dy[r * O + e];
  for (int64_t e = 0; e < run; ++e) db[e % O] += acc[e];
}

// Tiles per chunk of the Winograd weight gradient: its V and dM, (16, nt, C) and (16, nt, O), near
// kWinogradGradBytes. The product sums over a chunk's tiles in registers and then adds into dU, so its chunks are
// longer than the forward's (2^15, 2^16, 2^17 bytes on U-Net's 16- to 64-channel layers, one thread: 2^16 was
// 1.3-1.5x faster than the direct weight gradient on every one, the others 1.15-1.47x).
constexpr int64_t kWinogradGradBytes = int64_t(1) << 16;

// dw += the weight gradient of a Winograd-fitting convolution (and db += dy's column sums unless db is null):
// per chunk of tiles V (the forward's input transform) and dM = A dY A^T (winograd.inc), then per xi
// dU[xi] (O, C) += dM[xi]^T V[xi] on the weight gradient's product (one tap, the rows of V through the table);
// the members' dU summed, then dw[o, c] += G^T dU[:, o, c] G. Both untouched when cancelled.
template <typename F>
void winograd_weight_grad(const Conv2dDims& d, const IgemmKernels<F>& kern, const F* x, const F* dy, F* dw, F* db,
                          Cancel& cancel) {
  const std::vector<F> zero(static_cast<size_t>(4 * std::max(d.C, d.O)), F(0));  // winograd_input's row outside x
  const int64_t tiles = d.B * ((d.HO + 1) / 2) * ((d.WO + 1) / 2), rows = d.B * d.HO * d.WO;
  const int64_t nt = std::max<int64_t>(12, kWinogradGradBytes / (16 * (d.C + d.O) * static_cast<int64_t>(sizeof(F))));
  const int64_t chunks = (tiles + nt - 1) / nt;
  const int want = team_size(d, plan_of(d), chunks);
  Slots slots(chunks, want);
  const size_t usize = static_cast<size_t>(16 * d.O * d.C);
  std::vector<F> dU(usize * static_cast<size_t>(slots.count()), F(0));  // one (16, O, C) per slot
  std::vector<F> dbs(db ? static_cast<size_t>(d.O * slots.count()) : 0, F(0));
  auto region = [&](int tid) {
    DenormalsFlushed ftz;
    const int64_t most = std::min(nt, tiles);
    std::vector<F> V(static_cast<size_t>(16 * most * d.C)), dM(static_cast<size_t>(16 * most * d.O));
    std::vector<const F*> ind(static_cast<size_t>(16 * most));
    for (int64_t s, c0, c1; !cancel.cancelled() && slots.take(s, c0, c1);) {
      if (db) {  // the slot's share of dy's rows
        const int64_t r0 = rows * s / slots.count(), r1 = rows * (s + 1) / slots.count();
        add_column_sums(r1 - r0, d.O, dy + r0 * d.O, dbs.data() + s * d.O);
      }
      F* my_dU = dU.data() + usize * static_cast<size_t>(s);
      for (int64_t c = c0; c < c1 && !stopped(cancel, tid, c); ++c) {
        const int64_t a = c * nt, m = std::min(nt, tiles - a);
        kern.winograd_input(d, x, zero.data(), a, m, V.data());
        kern.winograd_grad(d, dy, zero.data(), a, m, dM.data());
        for (int64_t r = 0; r < 16 * m; ++r) ind[r] = V.data() + r * d.C;
        for (int64_t xi = 0; xi < 16; ++xi)
          kern.wgrad(WgradCall<F>{m, d.O, 1, d.C, ind.data() + xi * m, 0, dM.data() + xi * m * d.O, d.O,
                                  my_dU + xi * d.O * d.C});
      }
    }
  };
  parallel_optional(want, region);
  if (cancel.cancelled()) return;  // dw and db untouched
  if (db) add_member_parts(dbs.data(), d.O, slots.count(), db);
  fold_members(dU.data(), static_cast<int64_t>(usize), slots.count());
  // dg = G^T dU G: G^T's rows u0 + (u1 + u2)/2, (u1 - u2)/2, (u1 + u2)/2 + u3, over xi = a*4 + b's rows, then columns
  const int64_t OC = d.O * d.C;
  for (int64_t o = 0; o < d.O; ++o)
    for (int64_t c = 0; c < d.C; ++c) {
      const F* u = dU.data() + o * d.C + c;  // u[xi * OC] = dU[xi][o][c]
      F q[3][4];                             // G^T dU: rows e (kh), columns b
      for (int64_t b = 0; b < 4; ++b) {
        const F u0 = u[b * OC], u1 = u[(4 + b) * OC], u2 = u[(8 + b) * OC], u3 = u[(12 + b) * OC];
        q[0][b] = u0 + F(0.5) * (u1 + u2), q[1][b] = F(0.5) * (u1 - u2), q[2][b] = F(0.5) * (u1 + u2) + u3;
      }
      F* g = dw + (o * d.C + c) * 9;
      for (int64_t e = 0; e < 3; ++e) {
        const F u0 = q[e][0], u1 = q[e][1], u2 = q[e][2], u3 = q[e][3];
        g[e * 3 + 0] += u0 + F(0.5) * (u1 + u2);
        g[e * 3 + 1] += F(0.5) * (u1 - u2);
        g[e * 3 + 2] += F(0.5) * (u1 + u2) + u3;
      }
    }
}

// Whether dx_lanes and dw_lanes (out_lanes.inc) run this convolution's gradients: stride 1, one group, 6 or 8 input
// channels, the output channels one or two registers (`lanes` per register). Measured against the columns and col2im
// (AVX-512) or the adjoint's indirect GEMM (AVX2), one thread / two: LeNet-5's 6 -> 16 5x5 on 64x14x14 723/509 against
// 989/564 us (AVX-512), 1003/732 against 2286/1940 us (AVX2); 8 -> 16 3x3 on 32x16x16 399/197 against 671/352 us;
// 6 -> 32 and 8 -> 32 faster too. With 1-4 channels it was slower than the planar adjoint (3 -> 16 3x3: 779 against
// 514 us), and on AVX2 than the columns (4 -> 8 3x3: 870 against 409 us). The weight gradient against the planar
// kernel: LeNet-5's conv2 378/205 against 750/402 us (AVX2 508/282 against 4025/1989), 8 -> 32 3x3 435/247 against
// 1068/557 us.
bool lanes_fit(const Conv2dDims& d, int64_t lanes) {
  return d.G == 1 && d.sh == 1 && d.sw == 1 && (d.C == 6 || d.C == 8) && (d.O == lanes || d.O == 2 * lanes);
}

// Whether dw_lanes runs the weight gradient: lanes_fit's layers, and the first layers' 1 or 3 channels to one, two or
// four registers. Against the planar kernel, one thread (us): 1 -> 16 3x3 on 8x64x64 (the U-Net's first layer) 155
// against 345 (AVX-512), 160 against 870 (AVX2); 3 -> 32 on 32x32x32 (VGG's) 660 against 1,290-1,450 (AVX-512), 720
// against 5,150 (AVX2); 3 -> 64 on 32x32x32 1,270 against 3,100-3,600 (AVX-512).
bool dw_lanes_fit(const Conv2dDims& d, int64_t lanes) {
  return lanes_fit(d, lanes) || (d.G == 1 && d.sh == 1 && d.sw == 1 && (d.C == 1 || d.C == 3) &&
                                 (d.O == lanes || d.O == 2 * lanes || d.O == 4 * lanes));
}

// dx (written) by dx_lanes, the team splitting dx's lines
template <typename F>
void dx_lanes_backward(const Conv2dDims& d, const IgemmKernels<F>& kern, const F* w, const F* dy, F* dx,
                       Cancel& cancel) {
  const int64_t T = d.KH * d.KW, lines = d.B * d.H;
  std::vector<F> wt(static_cast<size_t>(T * d.C * d.O));  // (T, C, O)
  for (int64_t o = 0; o < d.O; ++o)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t t = 0; t < T; ++t) wt[static_cast<size_t>((t * d.C + c) * d.O + o)] = w[(o * d.C + c) * T + t];
  ChunkQueue chunks(lines, std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, d.W * d.C * T)));
  auto region = [&](int tid) {
    DenormalsFlushed ftz;
    ChunkQueue::Cursor cur;
    for (int64_t a, m; chunks.next(cur, a, m) && !stopped(cancel, tid, a);)
      kern.dx_lanes(DxLanesCall<F>{&d, dy, wt.data(), a, m, dx});
  };
  parallel_optional(team_size(d, plan_of(d), lines), region);
}

// dw += the weight gradient by dw_lanes, db += the column sums of dy unless db is null (both untouched when cancelled):
// the members split dy's lines, each summing into its own (T, C, O) gradient
template <typename F>
void dw_lanes_weight_grad(const Conv2dDims& d, const IgemmKernels<F>& kern, const F* x, const F* dy, F* dw, F* db,
                          Cancel& cancel) {
  const Plan p = plan_of(d);
  const int64_t T = p.KK, size = T * d.C * d.O;
  // lines per chunk: its dy and the rows of x it reads stay in cache while every tile of taps passes over them
  const int64_t nl = std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, d.WO * d.O + d.KH * d.W * d.C));
  const int want = team_size(d, p, p.lines);
  Slots slots(p.lines, want);
  std::vector<F> D(static_cast<size_t>(size * slots.count()), F(0));
  std::vector<F> dbs(db ? static_cast<size_t>(d.O * slots.count()) : 0, F(0));
  const std::vector<F> zero(static_cast<size_t>(d.W * d.C), F(0));  // a row of x outside it
  auto region = [&](int tid) {
    DenormalsFlushed ftz;
    for (int64_t s, l0, l1; !cancel.cancelled() && slots.take(s, l0, l1);)
      for (int64_t a = l0; a < l1 && !stopped(cancel, tid, a); a += nl) {
        const int64_t m = std::min(nl, l1 - a);
        kern.dw_lanes(DwLanesCall<F>{&d, x, dy, zero.data(), a, m, D.data() + size * s});
        if (db) add_column_sums(m * d.WO, d.O, dy + a * d.WO * d.O, dbs.data() + s * d.O);
      }
  };
  parallel_optional(want, region);
  if (cancel.cancelled()) return;  // dw and db untouched
  fold_members(D.data(), size, slots.count());
  for (int64_t o = 0; o < d.O; ++o)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t t = 0; t < T; ++t) dw[(o * d.C + c) * T + t] += D[static_cast<size_t>((t * d.C + c) * d.O + o)];
  if (db) add_member_parts(dbs.data(), d.O, slots.count(), db);
}

#define PYRNN_CONV2D_GRADS_INSTANTIATE(F)                                                                         \
  template void add_column_sums<F>(int64_t, int64_t, const F*, F*);                                               \
  template void winograd_weight_grad<F>(const Conv2dDims&, const IgemmKernels<F>&, const F*, const F*, F*, F*,    \
                                        Cancel&);                                                                 \
  template void dx_lanes_backward<F>(const Conv2dDims&, const IgemmKernels<F>&, const F*, const F*, F*, Cancel&); \
  template void dw_lanes_weight_grad<F>(const Conv2dDims&, const IgemmKernels<F>&, const F*, const F*, F*, F*, Cancel&);
PYRNN_CONV2D_GRADS_INSTANTIATE(float)
PYRNN_CONV2D_GRADS_INSTANTIATE(double)
#undef PYRNN_CONV2D_GRADS_INSTANTIATE

}  // namespace pyrnn
