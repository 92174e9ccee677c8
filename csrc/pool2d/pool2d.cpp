// See pool2d.h. One pass over the windows; the channel loop is innermost (contiguous).
#include "pool2d.h"

#include <algorithm>
#include <limits>

namespace pyrnn {

namespace {
// before sample b: poll (one thread: no team to agree with) and say whether to stop
inline bool stopped(Cancel& cancel, int64_t b) {
  cancel.poll(b);
  return cancel.cancelled();
}

// [lo, hi): the taps i of one axis with 0 <= start + i*step < L (the others read padding; a huge kernel is not
// walked tap by tap). Both divisions are of non-negative numbers.
inline void tap_range(int64_t start, int64_t step, int64_t k, int64_t L, int64_t& lo, int64_t& hi) {
  lo = start >= 0 ? 0 : (step - 1 - start) / step;
  hi = start > L - 1 ? 0 : std::min(k, (L - 1 - start) / step + 1);
}
}  // namespace

// y = max over the taps inside x, arg = ih*W + iw of the first maximum; NaN beats everything but an earlier NaN
template <typename F>
void max_pool2d_forward(const Pool2dDims& d, const F* x, F* y, int64_t* arg, Cancel& cancel) {
  for (int64_t b = 0; b < d.B && !stopped(cancel, b); ++b)
    for (int64_t oh = 0; oh < d.OH; ++oh)
      for (int64_t ow = 0; ow < d.OW; ++ow) {
        F* yr = y + ((b * d.OH + oh) * d.OW + ow) * d.C;
        int64_t* ar = arg + ((b * d.OH + oh) * d.OW + ow) * d.C;
        std::fill(yr, yr + d.C, -std::numeric_limits<F>::infinity());
        std::fill(ar, ar + d.C, int64_t(-1));
        int64_t i_lo, i_hi, j_lo, j_hi;
        tap_range(oh * d.sh - d.ph, d.dh, d.kh, d.H, i_lo, i_hi);
        tap_range(ow * d.sw - d.pw, d.dw, d.kw, d.W, j_lo, j_hi);
        for (int64_t i = i_lo; i < i_hi; ++i) {
          const int64_t ih = oh * d.sh - d.ph + i * d.dh;
          for (int64_t j = j_lo; j < j_hi; ++j) {
            const int64_t iw = ow * d.sw - d.pw + j * d.dw;
            const F* xr = x + ((b * d.H + ih) * d.W + iw) * d.C;
            for (int64_t c = 0; c < d.C; ++c) {
              const F v = xr[c], best = yr[c];
              if (ar[c] < 0 || v > best || (v != v && best == best)) {
                yr[c] = v;
                ar[c] = ih * d.W + iw;
              }
            }
          }
        }
      }
}

// dx[b, arg, c] += dy[b, oh, ow, c] where the winner lies inside x
template <typename F>
void max_pool2d_backward(const Pool2dDims& d, const F* dy, const int64_t* arg, F* dx, Cancel& cancel) {
  const int64_t HW = d.H * d.W;
  std::fill(dx, dx + d.B * HW * d.C, F(0));
  for (int64_t b = 0; b < d.B && !stopped(cancel, b); ++b)
    for (int64_t o = 0; o < d.OH * d.OW; ++o) {
      const F* g = dy + (b * d.OH * d.OW + o) * d.C;
      const int64_t* ar = arg + (b * d.OH * d.OW + o) * d.C;
      for (int64_t c = 0; c < d.C; ++c)
        if (ar[c] >= 0 && ar[c] < HW) dx[(b * HW + ar[c]) * d.C + c] += g[c];
    }
}

// y = (sum of the taps inside x, in window order) / (div_h[oh] * div_w[ow])
template <typename F>
void avg_pool2d_forward(const Pool2dDims& d, const F* x, const int64_t* div_h, const int64_t* div_w, F* y,
                        Cancel& cancel) {
  for (int64_t b = 0; b < d.B && !stopped(cancel, b); ++b)
    for (int64_t oh = 0; oh < d.OH; ++oh)
      for (int64_t ow = 0; ow < d.OW; ++ow) {
        F* yr = y + ((b * d.OH + oh) * d.OW + ow) * d.C;
        std::fill(yr, yr + d.C, F(0));
        const int64_t h0 = oh * d.sh - d.ph, w0 = ow * d.sw - d.pw;
        for (int64_t ih = std::max<int64_t>(h0, 0); ih < std::min(h0 + d.kh, d.H); ++ih)
          for (int64_t iw = std::max<int64_t>(w0, 0); iw < std::min(w0 + d.kw, d.W); ++iw) {
            const F* xr = x + ((b * d.H + ih) * d.W + iw) * d.C;
            for (int64_t c = 0; c < d.C; ++c) yr[c] += xr[c];
          }
        const F D = static_cast<F>(div_h[oh] * div_w[ow]);
        for (int64_t c = 0; c < d.C; ++c) yr[c] /= D;
      }
}

// dx[b, ih, iw, c] += dy[b, oh, ow, c] / D for every tap inside x
template <typename F>
void avg_pool2d_backward(const Pool2dDims& d, const F* dy, const int64_t* div_h, const int64_t* div_w, F* dx,
                         Cancel& cancel) {
  std::fill(dx, dx + d.B * d.H * d.W * d.C, F(0));
  for (int64_t b = 0; b < d.B && !stopped(cancel, b); ++b)
    for (int64_t oh = 0; oh < d.OH; ++oh)
      for (int64_t ow = 0; ow < d.OW; ++ow) {
        const F* g = dy + ((b * d.OH + oh) * d.OW + ow) * d.C;
        const F D = static_cast<F>(div_h[oh] * div_w[ow]);
        const int64_t h0 = oh * d.sh - d.ph, w0 = ow * d.sw - d.pw;
        for (int64_t ih = std::max<int64_t>(h0, 0); ih < std::min(h0 + d.kh, d.H); ++ih)
          for (int64_t iw = std::max<int64_t>(w0, 0); iw < std::min(w0 + d.kw, d.W); ++iw) {
            F* dr = dx + ((b * d.H + ih) * d.W + iw) * d.C;
            for (int64_t c = 0; c < d.C; ++c) dr[c] += g[c] / D;
          }
      }
}

template <typename F>
void upsample2d_forward(const Pool2dDims& d, bool nearest, const UpsampleAxis<F>& ah, const UpsampleAxis<F>& aw,
                        const F* x, F* y, Cancel& cancel) {
  for (int64_t b = 0; b < d.B && !stopped(cancel, b); ++b)
    for (int64_t p = 0; p < d.OH; ++p)
      for (int64_t q = 0; q < d.OW; ++q) {
        F* yr = y + ((b * d.OH + p) * d.OW + q) * d.C;
        const F* x00 = x + ((b * d.H + ah.i0[p]) * d.W + aw.i0[q]) * d.C;
        if (nearest) {
          std::copy(x00, x00 + d.C, yr);
          continue;
        }
        const F* x01 = x + ((b * d.H + ah.i0[p]) * d.W + aw.i1[q]) * d.C;
        const F* x10 = x + ((b * d.H + ah.i1[p]) * d.W + aw.i0[q]) * d.C;
        const F* x11 = x + ((b * d.H + ah.i1[p]) * d.W + aw.i1[q]) * d.C;
        const F lh0 = ah.l0[p], lh1 = ah.l1[p], lw0 = aw.l0[q], lw1 = aw.l1[q];
        for (int64_t c = 0; c < d.C; ++c)
          yr[c] = lh0 * (lw0 * x00[c] + lw1 * x01[c]) + lh1 * (lw0 * x10[c] + lw1 * x11[c]);
      }
}

template <typename F>
void upsample2d_backward(const Pool2dDims& d, bool nearest, const UpsampleAxis<F>& ah, const UpsampleAxis<F>& aw,
                         const F* dy, F* dx, Cancel& cancel) {
  std::fill(dx, dx + d.B * d.H * d.W * d.C, F(0));
  for (int64_t b = 0; b < d.B && !stopped(cancel, b); ++b)
    for (int64_t p = 0; p < d.OH; ++p)
      for (int64_t q = 0; q < d.OW; ++q) {
        const F* g = dy + ((b * d.OH + p) * d.OW + q) * d.C;
        F* d00 = dx + ((b * d.H + ah.i0[p]) * d.W + aw.i0[q]) * d.C;
        if (nearest) {
          for (int64_t c = 0; c < d.C; ++c) d00[c] += g[c];
          continue;
        }
        F* d01 = dx + ((b * d.H + ah.i0[p]) * d.W + aw.i1[q]) * d.C;
        F* d10 = dx + ((b * d.H + ah.i1[p]) * d.W + aw.i0[q]) * d.C;
        F* d11 = dx + ((b * d.H + ah.i1[p]) * d.W + aw.i1[q]) * d.C;
        const F lh0 = ah.l0[p], lh1 = ah.l1[p], lw0 = aw.l0[q], lw1 = aw.l1[q];
        for (int64_t c = 0; c < d.C; ++c) {
          d00[c] += lh0 * lw0 * g[c];
          d01[c] += lh0 * lw1 * g[c];
          d10[c] += lh1 * lw0 * g[c];
          d11[c] += lh1 * lw1 * g[c];
        }
      }
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
