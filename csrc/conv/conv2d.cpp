// See conv2d.h. Implicit GEMM: the output is a (B*HO*WO, O) matrix whose rows, taken a chunk of
// output lines (b, i) at a time, are cols (rows, KH*KW*C) times the packed weight. A column row is
// in (g, kh, kw, c) order, cols[r, g*KH*KW*Cg + (kh*KW + kw)*Cg + c], so that one tap copies one
// contiguous channel run of x (for G = 1 and dw = 1 a whole row of taps at once) and group g's
// block is contiguous (one GEMM per group, lda = KH*KW*C). The weight is packed once per call to
// wk (G, KH*KW*Cg, Og). A 1x1 stride-1 unpadded convolution is a plain GEMM on x: no im2col. A depthwise
// one (one input channel per group) is a direct loop over the taps, vectorised over the channels: as G
// GEMMs of inner size KH*KW it would spend its time in BLAS calls.
//
// Threads: the output lines are split over the kernels' thread team, each member with its own
// im2col scratch (one chunk of lines, near kChunkElements) and a single-threaded BLAS. The data
// gradient scatters (col2im adds into dx), so there members own whole samples; the weight and
// bias gradients are accumulated per member and summed after the region. The caller (tid 0) polls
// the cancellation hook between its chunks, every member stops at its next chunk once it is
// cancelled, and dw, db are added only after a region that ran to the end.
#include "conv2d.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "../common/cpu.h"
#include "../common/gemm.h"
#include "../common/threads.h"

namespace pyrnn {

namespace {

constexpr int64_t kChunkElements = int64_t(1) << 18;

struct Plan {
  int64_t Cg, Og, KK, KKCg, KKC;  // KKC = KH*KW*C: the length of a column row
  int64_t lines;                  // B*HO output lines (b, i), each WO rows of the GEMM
  bool depthwise;                 // Cg = 1 < G: a direct loop over the taps (G GEMMs of K = KH*KW would crawl)
  bool pointwise;                 // 1x1, stride 1, no padding (and not depthwise): the columns are x itself
};

Plan plan_of(const Conv2dDims& d) {
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
  return p;
}

// output lines per chunk: one chunk's columns near kChunkElements
int64_t chunk_lines(const Conv2dDims& d, const Plan& p) {
  return std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, d.WO * p.KKC));
}

// a team for a convolution worth several barriers (see threads.h), one member per unit at most
int team_size(const Conv2dDims& d, const Plan& p, int64_t units) {
  const int64_t flops = 2 * p.lines * d.WO * d.O * p.KKCg;
  if (flops < 4 * parallel_min_flops() || units < 2) return 1;
  return static_cast<int>(std::min<int64_t>(units, max_threads()));
}

// lines [l0, l1) of member tid of n, in whole units of `unit` lines (lines is a multiple of unit)
inline void lines_of(int64_t lines, int64_t unit, int tid, int n, int64_t& l0, int64_t& l1) {
  const int64_t units = lines / unit;
  l0 = units * tid / n * unit;
  l1 = units * (tid + 1) / n * unit;
}

// before a chunk: the leader polls; every member stops once the work is cancelled
inline bool stopped(Cancel& cancel, int tid, int64_t chunk) {
  if (tid == 0) cancel.poll(chunk);
  return cancel.cancelled();
}

template <typename F>
std::unique_ptr<F[]> scratch(int64_t n) {  // uninitialised: every element is written before it is read
  return std::unique_ptr<F[]>(n > 0 ? new F[static_cast<size_t>(n)] : nullptr);
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
// taps inside x (the transpose of im2col)
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

}  // namespace

// per chunk of output lines: y[rows] = bias; y[rows, group g] += cols_g wk_g (one GEMM per group); depthwise:
// the direct loop
template <typename F>
void conv2d_forward(const Conv2dDims& d, const F* x, const F* w, const F* b, F* y, Cancel& cancel) {
  const Plan p = plan_of(d);
  const int64_t rows = p.lines * d.WO;
  if (rows == 0 || d.O == 0) return;
  if (p.KKCg == 0) {  // no input channel: only the bias
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < d.O; ++o) y[r * d.O + o] = b ? b[o] : F(0);
    return;
  }
  const std::vector<F> wk = p.depthwise ? pack_taps(d, p, w) : pack_weight(d, p, w);
  const int64_t nl = chunk_lines(d, p);
  const int want = team_size(d, p, p.lines);
  BlasOneThread blas_single(want > 1);
  auto region = [&](int tid, int n, SpinBarrier&) {
    DenormalsFlushed ftz;
    int64_t l0, l1;
    lines_of(p.lines, 1, tid, n, l0, l1);
    const auto cols = scratch<F>(p.pointwise || p.depthwise ? 0 : std::min(nl, l1 - l0) * d.WO * p.KKC);
    for (int64_t a = l0; a < l1 && !stopped(cancel, tid, a); a += nl) {
      const int64_t m = std::min(nl, l1 - a), r0 = a * d.WO, mr = m * d.WO;
      if (p.depthwise) {
        depthwise_forward(d, p, x, wk.data(), b, a, m, y);
        continue;
      }
      F* yc = y + r0 * d.O;
      if (b)
        for (int64_t r = 0; r < mr; ++r) std::copy(b, b + d.O, yc + r * d.O);
      const F* A = x + r0 * d.C;  // pointwise: x's pixels are the output's rows
      if (!p.pointwise) {
        im2col(d, p, x, a, m, cols.get());
        A = cols.get();
      }
      for (int64_t g = 0; g < d.G; ++g)
        gemm<F>(false, false, mr, p.Og, p.KKCg, F(1), A + g * p.KKCg, p.KKC, wk.data() + g * p.KKCg * p.Og, p.Og,
                b ? F(1) : F(0), yc + g * p.Og, d.O);
    }
  };
  parallel(want, region);
}

// per chunk of output lines: db += column sums of dy; dwk_g += cols_g^T dy_g; dcols_g = dy_g wk_g^T and
// dx += col2im(dcols) (pointwise: dx_g = dy_g wk_g^T directly; depthwise: the direct loop); then dw += dwk
// (the members' sum) unpacked
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
  const std::vector<F> wk = p.depthwise ? pack_taps(d, p, w) : pack_weight(d, p, w);
  const bool scatter = dx && !p.pointwise;  // col2im (or the depthwise loop) adds into dx: members own whole samples
  const int64_t unit = scatter ? d.HO : 1;
  const int64_t nl = chunk_lines(d, p);
  const int want = team_size(d, p, p.lines / unit);
  const size_t wsize = wk.size();
  std::vector<F> dwk(dw ? wsize * static_cast<size_t>(want) : 0, F(0));                     // one per member
  std::vector<F> dbs(db ? static_cast<size_t>(d.O) * static_cast<size_t>(want) : 0, F(0));  // one per member
  BlasOneThread blas_single(want > 1);
  auto region = [&](int tid, int n, SpinBarrier&) {
    DenormalsFlushed ftz;
    int64_t l0, l1;
    lines_of(p.lines, unit, tid, n, l0, l1);
    if (scatter) std::fill(dx + l0 / d.HO * d.H * d.W * d.C, dx + l1 / d.HO * d.H * d.W * d.C, F(0));
    const int64_t chunk_rows = std::min(nl, l1 - l0) * d.WO;
    const auto cols = scratch<F>(dw && !p.pointwise && !p.depthwise ? chunk_rows * p.KKC : 0);
    const auto dcols = scratch<F>(scatter && !p.depthwise ? chunk_rows * p.KKC : 0);
    F* my_dwk = dw ? dwk.data() + wsize * static_cast<size_t>(tid) : nullptr;
    F* my_db = db ? dbs.data() + static_cast<size_t>(d.O) * static_cast<size_t>(tid) : nullptr;
    for (int64_t a = l0; a < l1 && !stopped(cancel, tid, a); a += nl) {
      const int64_t m = std::min(nl, l1 - a), r0 = a * d.WO, mr = m * d.WO;
      const F* g_dy = dy + r0 * d.O;
      if (my_db)
        for (int64_t r = 0; r < mr; ++r)
          for (int64_t o = 0; o < d.O; ++o) my_db[o] += g_dy[r * d.O + o];
      if (p.depthwise) {
        depthwise_backward(d, p, x, wk.data(), dy, a, m, dx, my_dwk);
        continue;
      }
      if (my_dwk) {
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
        F* D = p.pointwise ? dx + r0 * d.C : dcols.get();
        for (int64_t g = 0; g < d.G; ++g)
          gemm<F>(false, true, mr, p.KKCg, p.Og, F(1), g_dy + g * p.Og, d.O, wk.data() + g * p.KKCg * p.Og, p.Og, F(0),
                  D + g * p.KKCg, p.KKC);
        if (scatter) col2im(d, p, dcols.get(), a, m, dx);
      }
    }
  };
  const int used = parallel(want, region);
  if (cancel.cancelled()) return;  // dw and db untouched
  if (db)
    for (int t = 0; t < used; ++t)
      for (int64_t o = 0; o < d.O; ++o) db[o] += dbs[static_cast<size_t>(t * d.O + o)];
  if (dw) {
    for (int t = 1; t < used; ++t)
      for (size_t i = 0; i < wsize; ++i) dwk[i] += dwk[wsize * static_cast<size_t>(t) + i];
    if (p.depthwise)
      unpack_taps_add(d, p, dwk.data(), dw);
    else
      unpack_add(d, p, dwk.data(), dw);
  }
}

#define PYRNN_CONV2D_INSTANTIATE(F)                                                              \
  template void conv2d_forward<F>(const Conv2dDims&, const F*, const F*, const F*, F*, Cancel&); \
  template void conv2d_backward<F>(const Conv2dDims&, const F*, const F*, const F*, F*, F*, F*, Cancel&);
PYRNN_CONV2D_INSTANTIATE(float)
PYRNN_CONV2D_INSTANTIATE(double)
#undef PYRNN_CONV2D_INSTANTIATE

}  // namespace pyrnn
