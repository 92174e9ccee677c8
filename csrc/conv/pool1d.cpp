// See pool1d.h. One pass over the windows; the channel loop is innermost (contiguous).
#include "pool1d.h"

#include <algorithm>
#include <limits>

namespace pyrnn {

namespace {
// the taps [lo, hi) of window u that lie inside x
inline void window(const Pool1dDims& d, int64_t u, int64_t& start, int64_t& lo, int64_t& hi) {
  start = u * d.stride - d.pad_left;
  lo = std::max<int64_t>(start, 0);
  hi = std::min<int64_t>(start + d.K, d.T);
}

// before sample b: poll (one thread: no team to agree with) and say whether to stop
inline bool stopped(Cancel& cancel, int64_t b) {
  cancel.poll(b);
  return cancel.cancelled();
}
}  // namespace

// y = max over the taps (padding -inf), arg = the first maximum; NaN beats everything but an earlier NaN
template <typename F>
void max_pool1d_forward(const Pool1dDims& d, const F* x, F* y, int64_t* arg, Cancel& cancel) {
  for (int64_t b = 0; b < d.B && !stopped(cancel, b); ++b)
    for (int64_t u = 0; u < d.U; ++u) {
      int64_t start, lo, hi;
      window(d, u, start, lo, hi);
      F* yr = y + (b * d.U + u) * d.C;
      int64_t* ar = arg + (b * d.U + u) * d.C;
      std::fill(yr, yr + d.C, -std::numeric_limits<F>::infinity());
      std::fill(ar, ar + d.C, start);
      for (int64_t i = lo; i < hi; ++i) {
        const F* xr = x + (b * d.T + i) * d.C;
        for (int64_t c = 0; c < d.C; ++c) {
          const F v = xr[c], best = yr[c];
          if (v > best || (v != v && best == best)) {
            yr[c] = v;
            ar[c] = i;
          }
        }
      }
    }
}

// dx[b, arg, c] += dy[b, u, c] where the winner lies inside x
template <typename F>
void max_pool1d_backward(const Pool1dDims& d, const F* dy, const int64_t* arg, F* dx, Cancel& cancel) {
  std::fill(dx, dx + d.B * d.T * d.C, F(0));
  for (int64_t b = 0; b < d.B && !stopped(cancel, b); ++b)
    for (int64_t u = 0; u < d.U; ++u) {
      const F* g = dy + (b * d.U + u) * d.C;
      const int64_t* ar = arg + (b * d.U + u) * d.C;
      for (int64_t c = 0; c < d.C; ++c)
        if (ar[c] >= 0 && ar[c] < d.T) dx[(b * d.T + ar[c]) * d.C + c] += g[c];
    }
}

// y = (sum of the taps inside x) / K
template <typename F>
void avg_pool1d_forward(const Pool1dDims& d, const F* x, F* y, Cancel& cancel) {
  const F kernel = static_cast<F>(d.K);
  for (int64_t b = 0; b < d.B && !stopped(cancel, b); ++b)
    for (int64_t u = 0; u < d.U; ++u) {
      int64_t start, lo, hi;
      window(d, u, start, lo, hi);
      F* yr = y + (b * d.U + u) * d.C;
      std::fill(yr, yr + d.C, F(0));
      for (int64_t i = lo; i < hi; ++i) {
        const F* xr = x + (b * d.T + i) * d.C;
        for (int64_t c = 0; c < d.C; ++c) yr[c] += xr[c];
      }
      for (int64_t c = 0; c < d.C; ++c) yr[c] /= kernel;
    }
}

// dx[b, i, c] += dy[b, u, c] / K for every tap i of window u inside x
template <typename F>
void avg_pool1d_backward(const Pool1dDims& d, const F* dy, F* dx, Cancel& cancel) {
  const F kernel = static_cast<F>(d.K);
  std::fill(dx, dx + d.B * d.T * d.C, F(0));
  for (int64_t b = 0; b < d.B && !stopped(cancel, b); ++b)
    for (int64_t u = 0; u < d.U; ++u) {
      int64_t start, lo, hi;
      window(d, u, start, lo, hi);
      const F* g = dy + (b * d.U + u) * d.C;
      for (int64_t i = lo; i < hi; ++i) {
        F* dr = dx + (b * d.T + i) * d.C;
        for (int64_t c = 0; c < d.C; ++c) dr[c] += g[c] / kernel;
      }
    }
}

#define PYRNN_POOL1D_INSTANTIATE(F)                                                               \
  template void max_pool1d_forward<F>(const Pool1dDims&, const F*, F*, int64_t*, Cancel&);        \
  template void max_pool1d_backward<F>(const Pool1dDims&, const F*, const int64_t*, F*, Cancel&); \
  template void avg_pool1d_forward<F>(const Pool1dDims&, const F*, F*, Cancel&);                  \
  template void avg_pool1d_backward<F>(const Pool1dDims&, const F*, F*, Cancel&);
PYRNN_POOL1D_INSTANTIATE(float)
PYRNN_POOL1D_INSTANTIATE(double)
#undef PYRNN_POOL1D_INSTANTIATE

}  // namespace pyrnn
