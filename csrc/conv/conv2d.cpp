// See conv2d.h. Forward: an indirect GEMM (igemm.h, XNNPACK's igemm; oneDNN's channels-last direct
// convolution is the same loop nest): the output is a (B*HO*WO, O) matrix, row r = output pixel, and
// each row's column values are found through an indirection table of one pointer per (pixel, tap) into
// x itself (a zero row for padding taps), so no im2col buffer is built; the weight is packed once per
// call into the micro-kernel's panels, one set per group. The data gradient of a stride-1 convolution
// is itself a forward convolution (of dy, with the kernel flipped and the channels swapped, padding
// (K-1)*d - p), so it runs through the same kernel, gathering instead of scattering. The weight
// gradient (but for Winograd's layers' and the few-channel layers': planar.h), and the data gradient of strided
// convolutions and of those with few input channels, are im2col of a chunk of output lines + the project's GEMM: a
// column row is in (g, kh, kw, c) order, cols[r, g*KH*KW*Cg + (kh*KW + kw)*Cg + c], so that one tap copies one
// contiguous channel run of x (for G = 1 and dw = 1 a whole row of taps at once) and group g's block is contiguous (one
// GEMM per group, lda = KH*KW*C), against the weight packed to wk (G, KH*KW*Cg, Og); a 1x1 stride-1 unpadded
// convolution is a plain GEMM on x. A depthwise one (one input channel per group) is a direct loop over the taps,
// vectorised over the channels: as G GEMMs of inner size KH*KW it would spend its time in calls.
//
// Threads: the members of the kernels' thread team take chunks of output lines (rows, tiles) from a queue
// (WorkQueue), each with its own scratch (an indirection table or im2col columns for one chunk) and a single-threaded
// BLAS, so a member whose vCPU the host deschedules holds back only its current chunk. The data gradient through
// col2im scatters (adds into dx), so there chunks are whole samples; the weight and bias gradients are summed per slot
// (common/threads.h Slots: two per member, each a fixed range of chunks) and the slots added in order after the
// region, so the sums do not depend on which member ran what. The caller (tid 0) polls the cancellation hook between
// its chunks, every member stops at its next chunk once it is cancelled, and dw, db are added only after a region that
// ran to the end. The gradients that run on their own (Winograd's dw, the output-channel-lane dx and dw) are
// conv2d_grads.cpp's; the plan and the shares are plan.h's.
#include "conv2d.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <vector>

#include "../common/cpu.h"
#include "../common/gemm.h"
#include "../common/scratch.h"
#include "../common/threads.h"
#include "conv2d_grads.h"
#include "igemm.h"
#include "plan.h"

namespace pyrnn {

namespace {
std::atomic<bool> g_winograd{true};
}  // namespace

void set_winograd(bool on) { g_winograd = on; }
bool winograd_enabled() { return g_winograd; }

namespace {

constexpr int64_t kIndirectRows = 1024;  // output rows per chunk of the direct weight gradient

// output lines per chunk: one chunk's columns near kChunkElements
int64_t chunk_lines(const Conv2dDims& d, const Plan& p) {
  return std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, d.WO * p.KKC));
}

// The taps kw of output column j that read inside x along W, [lo, hi) (for dw = 1).
inline void inside_taps(const Conv2dDims& d, int64_t j, int64_t& lo, int64_t& hi) {
  const int64_t w0 = j * d.sw - d.pl;  // the column of tap 0
  lo = std::clamp<int64_t>(-w0, 0, d.KW);
  hi = std::clamp<int64_t>(d.W - w0, lo, d.KW);
}

// cols[r, g*KK*Cg + (kh*KW + kw)*Cg + c] = xp[b, i*sh + kh*dh, j*sw + kw*dw, g*Cg + c] for the rows
// r = (l - l0)*WO + j of output lines l = b*HO + i in [l0, l0 + n); 0 where the tap is padding
template <typename F>
void im2col(const Conv2dDims& d, const Plan& p, const F* x, int64_t l0, int64_t n, F* cols) {
  const bool runs = d.G == 1 && d.dw == 1;  // the taps of one kh are one contiguous run of x and of cols
  for (int64_t l = l0; l < l0 + n; ++l) {
    const int64_t b = l / d.HO, i = l % d.HO;
    for (int64_t j = 0; j < d.WO; ++j) {
      F* row = cols + ((l - l0) * d.WO + j) * p.KKC;
      for (int64_t kh = 0; kh < d.KH; ++kh) {
        const int64_t ih = i * d.sh + kh * d.dh - d.pt;
        F* dst = row + kh * d.KW * p.Cg;
        if (ih < 0 || ih >= d.H) {
          for (int64_t g = 0; g < d.G; ++g) std::fill(dst + g * p.KKCg, dst + g * p.KKCg + d.KW * p.Cg, F(0));
          continue;
        }
        const int64_t pixel0 = (b * d.H + ih) * d.W + j * d.sw - d.pl;  // tap kw reads pixel0 + kw*dw
        if (runs) {
          int64_t lo, hi;
          inside_taps(d, j, lo, hi);
          std::fill(dst, dst + lo * d.C, F(0));
          if (hi > lo) std::copy(x + (pixel0 + lo) * d.C, x + (pixel0 + hi) * d.C, dst + lo * d.C);
          std::fill(dst + hi * d.C, dst + d.KW * d.C, F(0));
          continue;
        }
        for (int64_t kw = 0; kw < d.KW; ++kw) {
          const int64_t iw = j * d.sw + kw * d.dw - d.pl;
          const bool in = iw >= 0 && iw < d.W;
          for (int64_t g = 0; g < d.G; ++g) {
            F* out = dst + g * p.KKCg + kw * p.Cg;
            if (in) {
              const F* src = x + (pixel0 + kw * d.dw) * d.C + g * p.Cg;
              std::copy(src, src + p.Cg, out);
            } else {
              std::fill(out, out + p.Cg, F(0));
            }
          }
        }
      }
    }
  }
}

// dx[b, i*sh + kh*dh - pt, j*sw + kw*dw - pl, g*Cg + c] += dcols[r, g*KK*Cg + (kh*KW + kw)*Cg + c] for the
// taps inside x (the transpose of im2col); where the taps tile x (p.tiles) each pixel receives one tap: =, not +=
template <typename F>
void col2im(const Conv2dDims& d, const Plan& p, const F* dcols, int64_t l0, int64_t n, F* dx) {
  const bool runs = d.G == 1 && d.dw == 1;
  for (int64_t l = l0; l < l0 + n; ++l) {
    const int64_t b = l / d.HO, i = l % d.HO;
    for (int64_t j = 0; j < d.WO; ++j) {
      const F* row = dcols + ((l - l0) * d.WO + j) * p.KKC;
      for (int64_t kh = 0; kh < d.KH; ++kh) {
        const int64_t ih = i * d.sh + kh * d.dh - d.pt;
        if (ih < 0 || ih >= d.H) continue;
        const F* src = row + kh * d.KW * p.Cg;
        const int64_t pixel0 = (b * d.H + ih) * d.W + j * d.sw - d.pl;  // tap kw writes pixel0 + kw*dw
        if (runs) {
          int64_t lo, hi;
          inside_taps(d, j, lo, hi);
          F* t = dx + (pixel0 + lo) * d.C;
          const F* s = src + lo * d.C;
          if (p.tiles)
            std::copy(s, s + (hi - lo) * d.C, t);
          else
            for (int64_t e = 0; e < (hi - lo) * d.C; ++e) t[e] += s[e];
          continue;
        }
        for (int64_t kw = 0; kw < d.KW; ++kw) {
          const int64_t iw = j * d.sw + kw * d.dw - d.pl;
          if (iw < 0 || iw >= d.W) continue;
          for (int64_t g = 0; g < d.G; ++g) {
            const F* s = src + g * p.KKCg + kw * p.Cg;
            F* t = dx + (pixel0 + kw * d.dw) * d.C + g * p.Cg;
            for (int64_t c = 0; c < p.Cg; ++c) t[c] += s[c];
          }
        }
      }
    }
  }
}

// wk[g][(kh*KW + kw)*Cg + c][o] = w[g*Og + o, c, kh, kw]: (G, KK*Cg, Og)
template <typename F>
std::vector<F> pack_weight(const Conv2dDims& d, const Plan& p, const F* w) {
  std::vector<F> wk(static_cast<size_t>(d.G * p.KKCg * p.Og));
  for (int64_t g = 0; g < d.G; ++g)
    for (int64_t o = 0; o < p.Og; ++o)
      for (int64_t c = 0; c < p.Cg; ++c)
        for (int64_t k = 0; k < p.KK; ++k)
          wk[(g * p.KKCg + k * p.Cg + c) * p.Og + o] = w[((g * p.Og + o) * p.Cg + c) * p.KK + k];
  return wk;
}

// dw[g*Og + o, c, kh, kw] += wk[g][(kh*KW + kw)*Cg + c][o]: the inverse of pack_weight, adding
template <typename F>
void unpack_add(const Conv2dDims& d, const Plan& p, const F* wk, F* dw) {
  for (int64_t g = 0; g < d.G; ++g)
    for (int64_t o = 0; o < p.Og; ++o)
      for (int64_t c = 0; c < p.Cg; ++c)
        for (int64_t k = 0; k < p.KK; ++k)
          dw[((g * p.Og + o) * p.Cg + c) * p.KK + k] += wk[(g * p.KKCg + k * p.Cg + c) * p.Og + o];
}

// dw[g*Og + o, c, kh, kw] += D[g][o][(kh*KW + kw)*Cg + c]: the direct weight gradient's layout, adding
template <typename F>
void unpack_taps_outside_add(const Conv2dDims& d, const Plan& p, const F* D, F* dw) {
  for (int64_t go = 0; go < d.O; ++go)
    for (int64_t c = 0; c < p.Cg; ++c)
      for (int64_t k = 0; k < p.KK; ++k) dw[(go * p.Cg + c) * p.KK + k] += D[go * p.KKCg + k * p.Cg + c];
}

// Depthwise: wt[(kh*KW + kw)*O + o] = w[o, 0, kh, kw], (KH*KW, O); output channel o reads input channel o / m
// (m = Og), so for m = 1 a tap is one product of contiguous channel rows.
template <typename F>
std::vector<F> pack_taps(const Conv2dDims& d, const Plan& p, const F* w) {
  std::vector<F> wt(static_cast<size_t>(p.KK * d.O));
  for (int64_t o = 0; o < d.O; ++o)
    for (int64_t k = 0; k < p.KK; ++k) wt[k * d.O + o] = w[o * p.KK + k];
  return wt;
}

// dw[o, 0, kh, kw] += wt[(kh*KW + kw)*O + o]: the inverse of pack_taps, adding
template <typename F>
void unpack_taps_add(const Conv2dDims& d, const Plan& p, const F* wt, F* dw) {
  for (int64_t o = 0; o < d.O; ++o)
    for (int64_t k = 0; k < p.KK; ++k) dw[o * p.KK + k] += wt[k * d.O + o];
}

// Calls tap(pixel of x, offset of the tap in wt) for every tap of output pixel (b, i, j) inside x.
template <typename Tap>
inline void for_each_tap(const Conv2dDims& d, int64_t b, int64_t i, int64_t j, Tap&& tap) {
  for (int64_t kh = 0; kh < d.KH; ++kh) {
    const int64_t ih = i * d.sh + kh * d.dh - d.pt;
    if (ih < 0 || ih >= d.H) continue;
    for (int64_t kw = 0; kw < d.KW; ++kw) {
      const int64_t iw = j * d.sw + kw * d.dw - d.pl;
      if (iw >= 0 && iw < d.W) tap((b * d.H + ih) * d.W + iw, (kh * d.KW + kw) * d.O);
    }
  }
}

// y[b, i, j, o] = bias[o] + sum over the taps inside x of wt[tap, o] x[b, ih, iw, o / m], lines [l0, l0 + n)
template <typename F>
void depthwise_forward(const Conv2dDims& d, const Plan& p, const F* x, const F* wt, const F* b, int64_t l0, int64_t n,
                       F* y) {
  const int64_t m = p.Og;
  for (int64_t l = l0; l < l0 + n; ++l)
    for (int64_t j = 0; j < d.WO; ++j) {
      F* acc = y + (l * d.WO + j) * d.O;
      for (int64_t o = 0; o < d.O; ++o) acc[o] = b ? b[o] : F(0);
      for_each_tap(d, l / d.HO, l % d.HO, j, [&](int64_t pixel, int64_t k) {
        const F* xp = x + pixel * d.C;
        const F* wp = wt + k;
        if (m == 1) {
          for (int64_t c = 0; c < d.C; ++c) acc[c] += wp[c] * xp[c];
        } else {
          for (int64_t c = 0; c < d.C; ++c)
            for (int64_t t = 0; t < m; ++t) acc[c * m + t] += wp[c * m + t] * xp[c];
        }
      });
    }
}

// For lines [l0, l0 + n): dx[b, ih, iw, c] += sum_t dy[b, i, j, c*m + t] wt[tap, c*m + t] (dx may be null) and
// dwt[tap, o] += dy[b, i, j, o] x[b, ih, iw, o / m] (dwt may be null), over the taps inside x
template <typename F>
void depthwise_backward(const Conv2dDims& d, const Plan& p, const F* x, const F* wt, const F* dy, int64_t l0, int64_t n,
                        F* dx, F* dwt) {
  const int64_t m = p.Og;
  for (int64_t l = l0; l < l0 + n; ++l)
    for (int64_t j = 0; j < d.WO; ++j) {
      const F* g = dy + (l * d.WO + j) * d.O;
      for_each_tap(d, l / d.HO, l % d.HO, j, [&](int64_t pixel, int64_t k) {
        if (dx) {
          F* dxp = dx + pixel * d.C;
          const F* wp = wt + k;
          if (m == 1) {
            for (int64_t c = 0; c < d.C; ++c) dxp[c] += g[c] * wp[c];
          } else {
            for (int64_t c = 0; c < d.C; ++c)
              for (int64_t t = 0; t < m; ++t) dxp[c] += g[c * m + t] * wp[c * m + t];
          }
        }
        if (dwt) {
          const F* xp = x + pixel * d.C;
          F* dwp = dwt + k;
          if (m == 1) {
            for (int64_t c = 0; c < d.C; ++c) dwp[c] += g[c] * xp[c];
          } else {
            for (int64_t c = 0; c < d.C; ++c)
              for (int64_t t = 0; t < m; ++t) dwp[c * m + t] += g[c * m + t] * xp[c];
          }
        }
      });
    }
}

// Output rows per chunk of the indirect GEMM: its table (rows x KH*KW pointers) and the input lines
// it reads stay in cache.
constexpr int64_t kIgemmRows = 512;
constexpr int64_t kQueueRows = 48;  // a chunk's rows at the least: whole micro-tiles of 6, 8, 12 or 16 rows

// ind[(r - r0)*KK + kh*KW + kw] = &x[b, i*sh + kh*dh - pt, j*sw + kw*dw - pl, 0] for the output rows
// r = (b*HO + i)*WO + j in [r0, r1), or zero (a row of C zeros) where the tap is padding
template <typename F>
void indirection(const Conv2dDims& d, const F* x, const F* zero, int64_t r0, int64_t r1, const F** ind) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t l = r / d.WO, j = r % d.WO, b = l / d.HO, i = l % d.HO;
    for (int64_t kh = 0; kh < d.KH; ++kh) {
      const int64_t ih = i * d.sh + kh * d.dh - d.pt;
      for (int64_t kw = 0; kw < d.KW; ++kw, ++ind) {
        const int64_t iw = j * d.sw + kw * d.dw - d.pl;
        *ind = ih >= 0 && ih < d.H && iw >= 0 && iw < d.W ? x + ((b * d.H + ih) * d.W + iw) * d.C : zero;
      }
    }
  }
}

// The weights of an indirect convolution, packed: per group g, rows (tap t, input channel c), columns
// output channels o, value w_at(g, t, c, o); and the bias (or none) likewise per group.
template <typename F>
struct IgemmWeights {
  int64_t per_group;  // packed values per group
  std::vector<F> w, b;
};

template <typename F, typename WAt>
IgemmWeights<F> igemm_weights(const Conv2dDims& d, const Plan& p, int64_t nr, WAt&& w_at, const F* bias) {
  IgemmWeights<F> k;
  k.per_group = igemm_packed_size(nr, p.KKCg, p.Og);
  k.w.resize(static_cast<size_t>(d.G * k.per_group));
  for (int64_t g = 0; g < d.G; ++g)
    igemm_pack<F>(
        nr, p.KKCg, p.Og, [&](int64_t row, int64_t o) { return w_at(g, row / p.Cg, row % p.Cg, o); },
        k.w.data() + g * k.per_group);
  if (bias) {
    const int64_t per = igemm_packed_size(nr, 1, p.Og);
    k.b.resize(static_cast<size_t>(d.G * per));
    for (int64_t g = 0; g < d.G; ++g) igemm_pack_bias<F>(nr, p.Og, bias + g * p.Og, k.b.data() + g * per);
  }
  return k;
}

// y = the convolution of x (d's sizes; padding may be negative) with packed weights k (then post):
// the output rows split evenly over the team (a long single line too), each member building the indirection table
// of one chunk of rows at a time
template <typename F>
void igemm_convolve(const Conv2dDims& d, const Plan& p, const IgemmKernels<F>& kern, const IgemmWeights<F>& k,
                    PostOp post, const F* x, F* y, Cancel& cancel) {
  const std::vector<F> zero(static_cast<size_t>(d.C), F(0));
  const int64_t rows = p.lines * d.WO;
  ChunkQueue chunks(rows, kIgemmRows, kQueueRows);
  const int want = team_size(d, p, chunks.units());
  const IgemmPanels<F>& pan = kern.panels(p.Og);
  const int64_t bias_per = k.b.empty() ? 0 : igemm_packed_size(pan.nr, 1, p.Og);
  auto region = [&](int tid) {
    DenormalsFlushed ftz;
    std::vector<const F*> ind(static_cast<size_t>(std::min(chunks.chunk(), rows) * p.KK));
    ChunkQueue::Cursor cur;
    for (int64_t a, m; chunks.next(cur, a, m) && !stopped(cancel, tid, a);) {
      indirection(d, x, zero.data(), a, a + m, ind.data());
      for (int64_t g = 0; g < d.G; ++g)
        pan.run(IgemmCall<F>{m, p.Og, p.KK, p.Cg, ind.data(), g * p.Cg, k.w.data() + g * k.per_group,
                             bias_per ? k.b.data() + g * bias_per : nullptr, false, y + a * d.O + g * p.Og, d.O});
      if (post != PostOp::None) kern.post(post, y + a * d.O, m * d.O);  // the chunk's rows, still in cache
    }
  };
  parallel_optional(want, region);
}

// Tiles per chunk: the chunk's transformed input and products, (16, nt, C) and (16, nt, O), near
// kWinogradBytes (L1-sized: 12 tiles for the wide layers; on the 16-channel U-Net layers 2^18 bytes,
// 128 tiles, ran 11 % slower, one thread).
constexpr int64_t kWinogradBytes = int64_t(1) << 15;

// U[xi] = (G g G^T)[xi] of every (o, c), g = w_at(0, kh*3 + kw, c, o), packed as 16 GEMM weights
// (rows c, columns o; IgemmWeights' groups stand for xi). One input channel at a time: its 3x3 kernels
// gathered to gt[t][o], transformed with the output channels as the (vectorised) inner loop, each of the
// 16 results then copied into its panels' row c.
template <typename F, typename WAt>
IgemmWeights<F> winograd_weights(const Conv2dDims& d, int64_t nr, WAt&& w_at) {
  const int64_t O = d.O, np = (O + nr - 1) / nr;
  IgemmWeights<F> k;
  k.per_group = igemm_packed_size(nr, d.C, O);
  k.w.resize(static_cast<size_t>(16 * k.per_group));
  std::vector<F> gt(static_cast<size_t>(9 * O)), u(static_cast<size_t>(16 * np * nr), F(0));  // u[xi][o], 0 past O
  for (int64_t c = 0; c < d.C; ++c) {
    for (int64_t t = 0; t < 9; ++t)
      for (int64_t o = 0; o < O; ++o) gt[static_cast<size_t>(t * O + o)] = w_at(0, t, c, o);
    const int64_t us = np * nr;  // u's row stride
    for (int64_t o = 0; o < O; ++o) {
      F gg[4][3];  // G g: rows a, columns e
      for (int64_t e = 0; e < 3; ++e) {
        const F g0 = gt[static_cast<size_t>(e * O + o)], g1 = gt[static_cast<size_t>((3 + e) * O + o)],
                g2 = gt[static_cast<size_t>((6 + e) * O + o)];
        gg[0][e] = g0, gg[1][e] = F(0.5) * (g0 + g1 + g2), gg[2][e] = F(0.5) * (g0 - g1 + g2), gg[3][e] = g2;
      }
      for (int64_t a = 0; a < 4; ++a) {  // (G g) G^T
        const F h0 = gg[a][0], h1 = gg[a][1], h2 = gg[a][2];
        F* row = u.data() + a * 4 * us + o;
        row[0] = h0, row[us] = F(0.5) * (h0 + h1 + h2), row[2 * us] = F(0.5) * (h0 - h1 + h2), row[3 * us] = h2;
      }
    }
    for (int64_t xi = 0; xi < 16; ++xi)  // igemm_pack's layout: panel p, row c, columns [p*nr, (p + 1)*nr)
      for (int64_t p = 0; p < np; ++p)
        std::copy(u.data() + xi * us + p * nr, u.data() + xi * us + (p + 1) * nr,
                  k.w.data() + xi * k.per_group + (p * d.C + c) * nr);
  }
  return k;
}

// y = bias + the convolution of x by Winograd: per chunk of tiles, transform the input (V), 16 GEMMs
// M[xi] = V[xi] U[xi] through the indirect GEMM (one pointer per row of V), transform the products back
// (and post, as each tile is written)
template <typename F>
void winograd_convolve(const Conv2dDims& d, const IgemmKernels<F>& kern, const IgemmWeights<F>& k, const F* bias,
                       PostOp post, const F* x, F* y, Cancel& cancel) {
  const std::vector<F> zero(static_cast<size_t>(4 * d.C), F(0));  // a row of the 4x4 window outside x
  const int64_t tiles = d.B * ((d.HO + 1) / 2) * ((d.WO + 1) / 2);
  const int64_t nt =  // a multiple of 12: whole micro-tiles of rows (12 or 6 rows, by ISA)
      std::max<int64_t>(12, kWinogradBytes / (16 * (d.C + d.O) * static_cast<int64_t>(sizeof(F))) / 12 * 12);
  ChunkQueue chunks(tiles, nt, nt);
  const int want = team_size(d, plan_of(d), chunks.units());
  auto region = [&](int tid) {
    DenormalsFlushed ftz;
    const int64_t most = std::min(nt, tiles);
    std::vector<F> V(static_cast<size_t>(16 * most * d.C)), M(static_cast<size_t>(16 * most * d.O));
    std::vector<const F*> ind(static_cast<size_t>(16 * most));
    ChunkQueue::Cursor cur;
    for (int64_t a, m; chunks.next(cur, a, m) && !stopped(cancel, tid, a);) {
      kern.winograd_input(d, x, zero.data(), a, m, V.data());
      for (int64_t r = 0; r < 16 * m; ++r) ind[r] = V.data() + r * d.C;
      for (int64_t xi = 0; xi < 16; ++xi)
        kern.panels(d.O).run(IgemmCall<F>{m, d.O, 1, d.C, ind.data() + xi * m, 0, k.w.data() + xi * k.per_group,
                                          nullptr, false, M.data() + xi * m * d.O, d.O});
      kern.winograd_output(d, M.data(), bias, post, a, m, y);
    }
  };
  parallel_optional(want, region);
}

// Layers with few output channels (the first layers: 6 of them against a panel of 16 or 32 columns)
// turn the product around so the output pixels fill the vector lanes: Y^T (O, rows) = Wr (O, KK*C) P,
// where P is the chunk's im2col packed as the GEMM's panels, P[q][k][j] = column k of row q*nr + j with
// k = c*KK + t (the weight's own order), and Wr's rows are the A operand (one pointer per output
// channel, T = 1). Y^T is then transposed into y with the bias.
// (and few input channels: the packing costs KH*KW*C per pixel, more than the product saves beyond ~4)
inline bool pixel_lanes(const Conv2dDims& d, int64_t narrow_nr) { return d.G == 1 && 2 * d.O <= narrow_nr && d.C <= 4; }

// ceil(a / s) for s > 0
inline int64_t ceil_div(int64_t a, int64_t s) { return a >= 0 ? (a + s - 1) / s : -((-a) / s); }

// P[q][k][j] for rows [r0, r0 + n) (0 past them and in the padding). A panel's rows are taken a run
// of one output line at a time: for each tap, the run reads one input row at a fixed step (sw*C), the
// columns inside x in one strided copy and the padding as two fills.
template <typename F>
void pack_pixels(const Conv2dDims& d, const F* x, int64_t r0, int64_t n, int64_t nr, F* P) {
  const int64_t KK = d.KH * d.KW, K = KK * d.C, step = d.sw * d.C;
  for (int64_t q = 0; q * nr < n; ++q) {
    F* panel = P + q * K * nr;
    for (int64_t j = 0; j < nr;) {
      const int64_t r = r0 + q * nr + j;
      if (r >= r0 + n) {  // past the rows: zero columns
        for (int64_t k = 0; k < K; ++k) std::fill(panel + k * nr + j, panel + (k + 1) * nr, F(0));
        break;
      }
      const int64_t l = r / d.WO, jj = r % d.WO, b = l / d.HO, i = l % d.HO;
      const int64_t seg = std::min({nr - j, d.WO - jj, r0 + n - r});  // rows of this output line
      for (int64_t kh = 0; kh < d.KH; ++kh) {
        const int64_t ih = i * d.sh + kh * d.dh - d.pt;
        for (int64_t kw = 0; kw < d.KW; ++kw) {
          const int64_t w0 = jj * d.sw + kw * d.dw - d.pl;  // the input column of the run's first row
          int64_t lo = 0, hi = 0;                           // the run's rows [lo, hi) read inside x
          if (ih >= 0 && ih < d.H) {
            lo = std::clamp<int64_t>(ceil_div(-w0, d.sw), 0, seg);
            hi = std::clamp<int64_t>(ceil_div(d.W - w0, d.sw), lo, seg);
          }
          const int64_t at = ((b * d.H + ih) * d.W + w0) * d.C;  // x's index of row 0 (read from row lo on)
          for (int64_t c = 0; c < d.C; ++c) {
            F* dst = panel + (c * KK + kh * d.KW + kw) * nr + j;
            std::fill(dst, dst + lo, F(0));
            if (step == 1)  // one channel, stride 1: the run is contiguous in x
              std::copy(x + at + lo, x + at + hi, dst + lo);
            else
              for (int64_t e = lo; e < hi; ++e) dst[e] = x[at + e * step + c];
            std::fill(dst + hi, dst + seg, F(0));
          }
        }
      }
      j += seg;
    }
  }
}

// Bytes of packed columns per chunk of rows (pixel lanes).
constexpr int64_t kPixelPanelBytes = int64_t(1) << 17;

// y = bias + the convolution of x (then post), the pixels as the lanes (see pixel_lanes), rows split
// over the team
template <typename F, typename WAt>
void pixel_lane_convolve(const Conv2dDims& d, const Plan& p, const IgemmKernels<F>& kern, WAt&& w_at, const F* bias,
                         PostOp post, const F* x, F* y, Cancel& cancel) {
  const int64_t K = p.KK * d.C, nr = kern.wide.nr, rows = p.lines * d.WO;
  std::vector<F> wr(static_cast<size_t>(d.O * K));  // Wr[o][c*KK + t]
  for (int64_t o = 0; o < d.O; ++o)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t t = 0; t < p.KK; ++t) wr[o * K + c * p.KK + t] = w_at(0, t, c, o);
  std::vector<const F*> rows_of_w(static_cast<size_t>(d.O));
  for (int64_t o = 0; o < d.O; ++o) rows_of_w[o] = wr.data() + o * K;
  ChunkQueue chunks(  // whole panels
      rows, std::max<int64_t>(1, kPixelPanelBytes / (K * nr * static_cast<int64_t>(sizeof(F)))) * nr, nr);
  const int want = team_size(d, p, chunks.units());
  auto region = [&](int tid) {
    DenormalsFlushed ftz;
    const int64_t most = std::min(chunks.chunk(), rows);
    std::vector<F> P(static_cast<size_t>((most + nr - 1) / nr * nr * K)), yt(static_cast<size_t>(d.O * most));
    ChunkQueue::Cursor cur;
    for (int64_t a, m; chunks.next(cur, a, m) && !stopped(cancel, tid, a);) {
      pack_pixels(d, x, a, m, nr, P.data());
      kern.wide.run(IgemmCall<F>{d.O, m, 1, K, rows_of_w.data(), 0, P.data(), nullptr, false, yt.data(), m});
      for (int64_t r = 0; r < m; ++r) {
        F* out = y + (a + r) * d.O;
        for (int64_t o = 0; o < d.O; ++o) out[o] = (bias ? bias[o] : F(0)) + yt[o * m + r];
      }
      if (post != PostOp::None) kern.post(post, y + a * d.O, m * d.O);
    }
  };
  parallel_optional(want, region);
}

// y[r, o] += bias[o], m rows of O values
template <typename F>
void add_bias_rows(int64_t m, int64_t O, const F* bias, F* y) {
  if (O >= 16) {
    for (int64_t r = 0; r < m; ++r)
      for (int64_t o = 0; o < O; ++o) y[r * O + o] += bias[o];
    return;
  }
  F pattern[kFlatRows * 16];  // kFlatRows copies of the bias
  const int64_t run = kFlatRows * O;
  for (int64_t e = 0; e < run; ++e) pattern[e] = bias[e % O];
  int64_t r = 0;
  for (; r + kFlatRows <= m; r += kFlatRows)
    for (int64_t e = 0; e < run; ++e) y[r * O + e] += pattern[e];
  for (int64_t e = 0; e < (m - r) * O; ++e) y[r * O + e] += pattern[e];
}

// Rows of a pointwise product per BLAS call (a chunk of x and y stays in L2).
constexpr int64_t kPointwiseRows = 2048;

// y = bias + x Wt (then post) for a 1x1 stride-1 unpadded convolution with fewer output channels
// than a register has lanes (a segmentation head's 16 -> 2): x is already the (rows, C) matrix, so each member runs
// the BLAS on chunks of its rows, where the indirect GEMM's lanes (the output channels) would be mostly empty
template <typename F, typename WAt>
void pointwise_convolve(const Conv2dDims& d, const Plan& p, WAt&& w_at, const F* bias, PostOp post, const F* x, F* y,
                        Cancel& cancel) {
  const int64_t rows = p.lines * d.WO;
  std::vector<F> wt(static_cast<size_t>(d.C * d.O));  // Wt[c][o]
  for (int64_t c = 0; c < d.C; ++c)
    for (int64_t o = 0; o < d.O; ++o) wt[static_cast<size_t>(c * d.O + o)] = w_at(0, 0, c, o);
  const int want = team_size(d, p, (rows + kPointwiseRows - 1) / kPointwiseRows);
  BlasOneThread blas_single(want > 1);
  WorkQueue chunks((rows + kPointwiseRows - 1) / kPointwiseRows);
  auto region = [&](int tid) {
    DenormalsFlushed ftz;
    for (int64_t k; chunks.take(k) && !stopped(cancel, tid, k);) {
      const int64_t r0 = k * kPointwiseRows, m = std::min(kPointwiseRows, rows - r0);
      F* out = y + r0 * d.O;
      gemm<F>(false, false, m, d.O, d.C, F(1), x + r0 * d.C, d.C, wt.data(), d.O, F(0), out, d.O);
      if (bias) add_bias_rows(m, d.O, bias, out);
      if (post != PostOp::None) igemm_kernels<F>().post(post, out, m * d.O);
    }
  };
  parallel_optional(want, region);
}

// y = bias + the convolution of x (d's sizes; padding may be negative) with the weight w_at(g, t, c, o)
// (tap t = kh*KW + kw, input channel c and output channel o of group g), then post (conv2d.h): Winograd
// where it fits, the planar kernels for few input channels at stride 1 (planar.h), the pixels as the lanes for
// few output channels, else the indirect GEMM
template <typename F, typename WAt>
void convolve(const Conv2dDims& d, WAt&& w_at, const F* b, PostOp post, const F* x, F* y, Cancel& cancel) {
  const Plan p = plan_of(d);
  const IgemmKernels<F>& kern = igemm_kernels<F>();
  if (winograd_fits(d) && winograd_enabled())
    winograd_convolve(d, kern, winograd_weights<F>(d, kern.panels(d.O).nr, w_at), b, post, x, y, cancel);
  else if (p.pointwise && d.G == 1 && d.O < kern.narrow.nr)
    pointwise_convolve(d, p, w_at, b, post, x, y, cancel);
  else if (planar_forward_fits(d, kern.narrow.nr)) {
    std::vector<F> wt(static_cast<size_t>(d.C * p.KK * d.O));  // planar.h's (C, T, O)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t t = 0; t < p.KK; ++t)
        for (int64_t o = 0; o < d.O; ++o) wt[static_cast<size_t>((c * p.KK + t) * d.O + o)] = w_at(0, t, c, o);
    planar_convolve(d, kern.planar, x, wt.data(), b, post, y, cancel);
  } else if (pixel_lanes(d, kern.narrow.nr))
    pixel_lane_convolve(d, p, kern, w_at, b, post, x, y, cancel);
  else
    igemm_convolve(d, p, kern, igemm_weights<F>(d, p, kern.panels(p.Og).nr, w_at, b), post, x, y, cancel);
}

// The data gradient of a stride-1 convolution as a forward one: dx = conv(dy, w') with w'[c, o, kh, kw] =
// w[o, c, KH-1-kh, KW-1-kw] per group, the input dy (B, HO, WO, O), the output dx (B, H, W, C) and the
// padding (K-1)*d - p on each side
inline Conv2dDims adjoint_dims(const Conv2dDims& d) {
  Conv2dDims a = d;
  a.H = d.HO, a.W = d.WO, a.C = d.O, a.O = d.C, a.HO = d.H, a.WO = d.W;
  a.pt = (d.KH - 1) * d.dh - d.pt, a.pb = (d.KH - 1) * d.dh - d.pb;
  a.pl = (d.KW - 1) * d.dw - d.pl, a.pr = (d.KW - 1) * d.dw - d.pr;
  return a;
}
}  // namespace

// y = bias + the convolution of x (convolve: Winograd or the indirect GEMM); depthwise: the direct loop; then
// post, chunk by chunk
template <typename F>
void conv2d_forward(const Conv2dDims& d, const F* x, const F* w, const F* b, F* y, PostOp post, Cancel& cancel) {
  const Plan p = plan_of(d);
  const int64_t rows = p.lines * d.WO;
  if (rows == 0 || d.O == 0) return;
  if (p.KKCg == 0) {  // no input channel: only the bias
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < d.O; ++o) y[r * d.O + o] = b ? b[o] : F(0);
    if (post != PostOp::None) igemm_kernels<F>().post(post, y, rows * d.O);
    return;
  }
  if (!p.depthwise) {
    convolve(
        d, [&](int64_t g, int64_t t, int64_t c, int64_t o) { return w[((g * p.Og + o) * p.Cg + c) * p.KK + t]; }, b,
        post, x, y, cancel);
    return;
  }
  const std::vector<F> wt = pack_taps(d, p, w);
  ChunkQueue chunks(p.lines, chunk_lines(d, p));
  auto region = [&](int tid) {
    DenormalsFlushed ftz;
    ChunkQueue::Cursor cur;
    for (int64_t a, m; chunks.next(cur, a, m) && !stopped(cancel, tid, a);) {
      depthwise_forward(d, p, x, wt.data(), b, a, m, y);
      if (post != PostOp::None) igemm_kernels<F>().post(post, y + a * d.WO * d.O, m * d.WO * d.O);
    }
  };
  parallel_optional(team_size(d, p, p.lines), region);
}

// A stride-1 dx first, as the adjoint forward convolution of dy (convolve) or, for 6 or 8 input channels, with the
// output channels in the lanes (out_lanes.inc); Winograd's layers', those lane layers' and the few-channel layers' dw
// then on their own (winograd_weight_grad, dw_lanes_weight_grad, planar.h); else per chunk of output lines: db +=
// column sums of dy; dwk_g += cols_g^T dy_g (direct: the indirect wgrad product); for a strided dx, dcols_g = dy_g
// wk_g^T and dx += col2im(dcols) (depthwise: the direct loop for both); then dw += dwk (the members' sum) unpacked
template <typename F>
void conv2d_backward(const Conv2dDims& d, const F* x, const F* w, const F* dy, F* dx, F* dw, F* db, Cancel& cancel) {
  const Plan p = plan_of(d);
  const int64_t rows = p.lines * d.WO;
  if (rows == 0 || d.O == 0 || p.KKCg == 0) {  // nothing reaches dx or dw
    if (dx) std::fill(dx, dx + d.B * d.H * d.W * d.C, F(0));
    if (db)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < d.O; ++o) db[o] += dy[r * d.O + o];
    return;
  }
  const IgemmKernels<F>& kern = igemm_kernels<F>();
  // a pointwise layer to fewer output channels than a register has lanes (a segmentation head's 16 -> 2): dx = dy W
  // is a product of inner dimension O, which the BLAS runs on chunks of rows (the indirect GEMM would run taps of
  // O values); dW = x^T dy on the BLAS too, below (16 -> 2 on 8x64x64, one thread: dx 0.35 -> 0.04 ms, dW 0.20 ->
  // 0.04 ms)
  const bool few_out_pointwise = p.pointwise && d.G == 1 && d.O < kern.narrow.nr;
  if (dx && few_out_pointwise) {
    const Conv2dDims a = adjoint_dims(d);
    pointwise_convolve(
        a, plan_of(a), [&](int64_t, int64_t, int64_t o, int64_t c) { return w[o * d.C + c]; },
        static_cast<const F*>(nullptr), PostOp::None, dy, dx, cancel);
    if (cancel.cancelled()) return;  // dw and db untouched
    dx = nullptr;                    // done
    if (!dw && !db) return;
  }
  // dx of 6 or 8 input channels: the output channels in the lanes (out_lanes.inc)
  if (dx && lanes_fit(d, kern.narrow.nr)) {
    dx_lanes_backward(d, kern, w, dy, dx, cancel);
    if (cancel.cancelled()) return;  // dw and db untouched
    dx = nullptr;                    // done
    if (!dw && !db) return;
  }
  // dx: the adjoint, a forward convolution of dy, unless its output (C channels) would fill less than half a
  // register: then dy times the weight into columns and col2im, below, wastes no lanes and no padding taps,
  // unless the planar kernels take the adjoint (a first layer's dx: few output channels, planar.h)
  if (dx && !p.depthwise && d.sh == 1 && d.sw == 1 &&
      (2 * p.Cg > kern.narrow.nr || planar_forward_fits(adjoint_dims(d), kern.narrow.nr))) {
    convolve(
        adjoint_dims(d),  // input channel o, output channel c, the kernel flipped
        [&](int64_t g, int64_t t, int64_t o, int64_t c) {
          return w[((g * p.Og + o) * p.Cg + c) * p.KK + (p.KK - 1 - t)];
        },
        static_cast<const F*>(nullptr), PostOp::None, dy, dx, cancel);
    if (cancel.cancelled()) return;  // dw and db untouched
    dx = nullptr;                    // done
    if (!dw && !db) return;
  }
  // the weight gradient on its own, after dx: by Winograd, with the output channels in the lanes, or the few-channel
  // one (planar.h)
  const bool winograd_dw = dw && winograd_fits(d) && winograd_enabled();
  const bool lanes_dw = dw && dw_lanes_fit(d, kern.narrow.nr);
  if (winograd_dw || lanes_dw || (dw && !p.depthwise && planar_wgrad_fits(d))) {
    if (dx) {
      conv2d_backward(d, x, w, dy, dx, static_cast<F*>(nullptr), static_cast<F*>(nullptr), cancel);
      if (cancel.cancelled()) return;  // dw and db untouched
    }
    if (winograd_dw)
      winograd_weight_grad(d, kern, x, dy, dw, db, cancel);
    else if (lanes_dw)
      dw_lanes_weight_grad(d, kern, x, dy, dw, db, cancel);
    else
      planar_weight_grad(d, kern.planar, x, dy, dw, db, cancel);
    return;
  }
  // the packed weight: read by the depthwise loop and a strided dx's GEMM only (dx is null here when done above)
  const std::vector<F> wk = p.depthwise ? pack_taps(d, p, w) : dx ? pack_weight(d, p, w) : std::vector<F>();
  // dw on the indirection table (no im2col) when a tap's channels fill a register; the first layers'
  // few channels (1, 3) go through im2col + GEMM. Gradient layout then (G, Og, KK*Cg): taps outside.
  const bool direct_dw = dw && !p.depthwise && p.Cg >= kern.narrow.nr && !few_out_pointwise;
  // the first layers' few channels (one group): dW (O, KK*C) = dy^T (O, rows) cols (rows, KK*C) on the micro-kernel,
  // dy's chunk transposed to the A rows (one pointer per output channel) and im2col's columns as its panels
  const bool panel_dw = dw && !direct_dw && !p.depthwise && d.G == 1 && !few_out_pointwise;
  const int64_t nr = kern.wide.nr, ncol = (p.KKC + nr - 1) / nr * nr;  // panel_dw: columns padded to whole panels
  const std::vector<F> zero(direct_dw ? static_cast<size_t>(d.C) : 0, F(0));
  const bool scatter = dx != nullptr;  // col2im (or the depthwise loop) adds into dx: members own whole samples
  const int64_t unit = scatter ? d.HO : 1;
  // lines per chunk: the direct weight gradient sums over a chunk's rows in registers, so it takes long
  // chunks (its scratch is only the indirection table); the column paths keep their columns in cache
  const int64_t nl = direct_dw && !scatter ? std::max<int64_t>(1, kIndirectRows / d.WO) : chunk_lines(d, p);
  const int want = team_size(d, p, p.lines / unit);
  Slots slots(p.lines / unit, want);
  const size_t wsize = static_cast<size_t>(d.O * p.KKCg);  // a slot's weight gradient, in any layout
  std::vector<F> dwk(dw ? wsize * static_cast<size_t>(slots.count()) : 0, F(0));                     // one per slot
  std::vector<F> dbs(db ? static_cast<size_t>(d.O) * static_cast<size_t>(slots.count()) : 0, F(0));  // one per slot
  BlasOneThread blas_single(want > 1);
  auto region = [&](int tid) {
    DenormalsFlushed ftz;
    const int64_t chunk_rows = std::min(nl, slots.largest() * unit) * d.WO;
    const auto cols = scratch<F>(dw && !direct_dw && !p.pointwise && !p.depthwise ? chunk_rows * p.KKC : 0);
    std::vector<const F*> ind(direct_dw ? static_cast<size_t>(std::max<int64_t>(chunk_rows, 0) * p.KK) : 0);
    const auto panels = scratch<F>(panel_dw ? std::max<int64_t>(chunk_rows, 0) * ncol : 0);  // [q][r][nr]
    const auto dyt = scratch<F>(panel_dw ? std::max<int64_t>(chunk_rows, 0) * d.O : 0);      // (O, rows)
    std::vector<const F*> dyt_rows(panel_dw ? static_cast<size_t>(d.O) : 0);
    const auto dcols = scratch<F>(scatter && !p.depthwise ? chunk_rows * p.KKC : 0);
    for (int64_t s, u0, u1; !cancel.cancelled() && slots.take(s, u0, u1);) {
      const int64_t l0 = u0 * unit, l1 = u1 * unit;
      if (scatter && !p.tiles)  // tiles: col2im writes every value of dx once
        std::fill(dx + l0 / d.HO * d.H * d.W * d.C, dx + l1 / d.HO * d.H * d.W * d.C, F(0));
      F* my_dwk = dw ? dwk.data() + wsize * static_cast<size_t>(s) : nullptr;
      F* my_db = db ? dbs.data() + static_cast<size_t>(d.O) * static_cast<size_t>(s) : nullptr;
      for (int64_t a = l0; a < l1 && !stopped(cancel, tid, a); a += nl) {
        const int64_t m = std::min(nl, l1 - a), r0 = a * d.WO, mr = m * d.WO;
        const F* g_dy = dy + r0 * d.O;
        if (my_db) add_column_sums(mr, d.O, g_dy, my_db);
        if (p.depthwise) {
          depthwise_backward(d, p, x, wk.data(), dy, a, m, dx, my_dwk);
          continue;
        }
        if (my_dwk && direct_dw) {
          indirection(d, x, zero.data(), r0, r0 + mr, ind.data());
          for (int64_t g = 0; g < d.G; ++g)
            kern.wgrad(WgradCall<F>{mr, p.Og, p.KK, p.Cg, ind.data(), g * p.Cg, g_dy + g * p.Og, d.O,
                                    my_dwk + g * p.Og * p.KKCg});
        } else if (my_dwk && panel_dw) {
          const F* A = x + r0 * d.C;
          if (!p.pointwise) {
            im2col(d, p, x, a, m, cols.get());
            A = cols.get();
          }
          for (int64_t q = 0; q < ncol / nr; ++q)
            for (int64_t r = 0; r < mr; ++r) {
              F* dst = panels.get() + (q * mr + r) * nr;
              const int64_t k0 = q * nr, n = std::min(nr, p.KKC - k0);
              std::copy(A + r * p.KKC + k0, A + r * p.KKC + k0 + n, dst);
              std::fill(dst + n, dst + nr, F(0));
            }
          for (int64_t r = 0; r < mr; ++r)
            for (int64_t o = 0; o < d.O; ++o) dyt[o * mr + r] = g_dy[r * d.O + o];
          for (int64_t o = 0; o < d.O; ++o) dyt_rows[o] = dyt.get() + o * mr;
          kern.wide.run(
              IgemmCall<F>{d.O, p.KKC, 1, mr, dyt_rows.data(), 0, panels.get(), nullptr, true, my_dwk, p.KKC});
        } else if (my_dwk) {
          const F* A = x + r0 * d.C;
          if (!p.pointwise) {
            im2col(d, p, x, a, m, cols.get());
            A = cols.get();
          }
          for (int64_t g = 0; g < d.G; ++g)
            gemm<F>(true, false, p.KKCg, p.Og, mr, F(1), A + g * p.KKCg, p.KKC, g_dy + g * p.Og, d.O, F(1),
                    my_dwk + g * p.KKCg * p.Og, p.Og);
        }
        if (dx) {
          for (int64_t g = 0; g < d.G; ++g)
            gemm<F>(false, true, mr, p.KKCg, p.Og, F(1), g_dy + g * p.Og, d.O, wk.data() + g * p.KKCg * p.Og, p.Og,
                    F(0), dcols.get() + g * p.KKCg, p.KKC);
          col2im(d, p, dcols.get(), a, m, dx);
        }
      }
    }
  };
  parallel_optional(want, region);
  if (cancel.cancelled()) return;  // dw and db untouched
  if (db) add_member_parts(dbs.data(), d.O, slots.count(), db);
  if (dw) {
    fold_members(dwk.data(), static_cast<int64_t>(wsize), slots.count());
    if (p.depthwise)
      unpack_taps_add(d, p, dwk.data(), dw);
    else if (direct_dw || panel_dw)
      unpack_taps_outside_add(d, p, dwk.data(), dw);
    else
      unpack_add(d, p, dwk.data(), dw);
  }
}

#define PYRNN_CONV2D_INSTANTIATE(F)                                                                      \
  template void conv2d_forward<F>(const Conv2dDims&, const F*, const F*, const F*, F*, PostOp, Cancel&); \
  template void conv2d_backward<F>(const Conv2dDims&, const F*, const F*, const F*, F*, F*, F*, Cancel&);
PYRNN_CONV2D_INSTANTIATE(float)
PYRNN_CONV2D_INSTANTIATE(double)
#undef PYRNN_CONV2D_INSTANTIATE

}  // namespace pyrnn
