// See batchnorm.h. Two passes over the data each way; per-channel double accumulators.
#include "batchnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace pyrnn {

namespace {
constexpr int64_t kRowsPerPoll = 4096;

// before row n: poll every kRowsPerPoll rows (one thread: no team to agree with); whether to stop
inline bool stopped(Cancel& cancel, int64_t n) {
  if (n % kRowsPerPoll != 0) return false;
  cancel.poll(n / kRowsPerPoll);
  return cancel.cancelled();
}

// s1[c] += x[c] - shift[c];  s2[c] += (x[c] - shift[c])^2
template <typename F>
inline void accumulate_row(int64_t C, const F* x, const double* shift, double* s1, double* s2) {
  for (int64_t c = 0; c < C; ++c) {
    const double v = static_cast<double>(x[c]) - shift[c];
    s1[c] += v;
    s2[c] += v * v;
  }
}

// y[c] = (x[c] - mean[c]) * scale[c] + shift[c]
template <typename F>
inline void normalize_row(int64_t C, const F* x, const double* mean, const double* scale, const double* shift, F* y) {
  for (int64_t c = 0; c < C; ++c) y[c] = static_cast<F>((static_cast<double>(x[c]) - mean[c]) * scale[c] + shift[c]);
}

// sum_dy[c] += dy[c];  sum_dy_xhat[c] += dy[c] (x[c] - mean[c]) inv_std[c]
template <typename F>
inline void reduce_row(int64_t C, const F* x, const F* dy, const double* mean, const double* inv_std, double* sum_dy,
                       double* sum_dy_xhat) {
  for (int64_t c = 0; c < C; ++c) {
    const double g = static_cast<double>(dy[c]);
    sum_dy[c] += g;
    sum_dy_xhat[c] += g * ((static_cast<double>(x[c]) - mean[c]) * inv_std[c]);
  }
}

// dx[c] = a[c] dy[c] - k1[c] - x_hat[c] k2[c]
template <typename F>
inline void dx_row(int64_t C, const F* x, const F* dy, const double* mean, const double* inv_std, const double* a,
                   const double* k1, const double* k2, F* dx) {
  for (int64_t c = 0; c < C; ++c) {
    const double x_hat = (static_cast<double>(x[c]) - mean[c]) * inv_std[c];
    dx[c] = static_cast<F>(a[c] * static_cast<double>(dy[c]) - k1[c] - x_hat * k2[c]);
  }
}
}  // namespace

template <typename F>
void batchnorm_forward(const BatchNormDims& d, const F* x, const F* weight, const F* bias, F* running_mean,
                       F* running_var, bool training, double momentum, double eps, F* y, double* mean, double* inv_std,
                       Cancel& cancel) {
  const int64_t N = d.N, C = d.C;
  std::vector<double> var(static_cast<size_t>(C));
  if (training) {  // N >= 2, checked by the caller
    std::vector<double> shift(x, x + C), s1(static_cast<size_t>(C), 0.0), s2(static_cast<size_t>(C), 0.0);
    for (int64_t n = 0; n < N; ++n) {
      if (stopped(cancel, n)) return;
      accumulate_row(C, x + n * C, shift.data(), s1.data(), s2.data());
    }
    const double Nd = static_cast<double>(N);
    for (int64_t c = 0; c < C; ++c) {
      mean[c] = shift[c] + s1[c] / Nd;
      var[c] = std::max(s2[c] - s1[c] * s1[c] / Nd, 0.0) / Nd;
    }
    if (running_mean != nullptr)
      for (int64_t c = 0; c < C; ++c) {
        running_mean[c] = static_cast<F>((1.0 - momentum) * running_mean[c] + momentum * mean[c]);
        running_var[c] = static_cast<F>((1.0 - momentum) * running_var[c] + momentum * (var[c] * (Nd / (Nd - 1.0))));
      }
  } else {
    for (int64_t c = 0; c < C; ++c) {
      mean[c] = static_cast<double>(running_mean[c]);
      var[c] = static_cast<double>(running_var[c]);
    }
  }
  std::vector<double> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C), 0.0);
  for (int64_t c = 0; c < C; ++c) {
    inv_std[c] = 1.0 / std::sqrt(var[c] + eps);
    scale[c] = inv_std[c] * (weight != nullptr ? static_cast<double>(weight[c]) : 1.0);
    if (bias != nullptr) shift[c] = static_cast<double>(bias[c]);
  }
  for (int64_t n = 0; n < N; ++n) {
    if (stopped(cancel, n)) return;
    normalize_row(C, x + n * C, mean, scale.data(), shift.data(), y + n * C);
  }
}

template <typename F>
void batchnorm_backward(const BatchNormDims& d, const F* x, const F* dy, const double* mean, const double* inv_std,
                        const F* weight, bool batch_stats, F* dx, F* dweight, F* dbias, Cancel& cancel) {
  const int64_t N = d.N, C = d.C;
  std::vector<double> sum_dy(static_cast<size_t>(C), 0.0), sum_dy_xhat(static_cast<size_t>(C), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    if (stopped(cancel, n)) return;
    reduce_row(C, x + n * C, dy + n * C, mean, inv_std, sum_dy.data(), sum_dy_xhat.data());
  }
  std::vector<double> a(static_cast<size_t>(C)), k1(static_cast<size_t>(C), 0.0), k2(static_cast<size_t>(C), 0.0);
  for (int64_t c = 0; c < C; ++c) {
    a[c] = (weight != nullptr ? static_cast<double>(weight[c]) : 1.0) * inv_std[c];
    if (batch_stats && N > 0) {
      k1[c] = a[c] * sum_dy[c] / static_cast<double>(N);
      k2[c] = a[c] * sum_dy_xhat[c] / static_cast<double>(N);
    }
  }
  for (int64_t n = 0; n < N; ++n) {
    if (stopped(cancel, n)) return;
    dx_row(C, x + n * C, dy + n * C, mean, inv_std, a.data(), k1.data(), k2.data(), dx + n * C);
  }
  for (int64_t c = 0; c < C; ++c) {
    if (dweight != nullptr) dweight[c] += static_cast<F>(sum_dy_xhat[c]);
    if (dbias != nullptr) dbias[c] += static_cast<F>(sum_dy[c]);
  }
}

#define PYRNN_BATCHNORM_INSTANTIATE(F)                                                                                 \
  template void batchnorm_forward<F>(const BatchNormDims&, const F*, const F*, const F*, F*, F*, bool, double, double, \
                                     F*, double*, double*, Cancel&);                                                   \
  template void batchnorm_backward<F>(const BatchNormDims&, const F*, const F*, const double*, const double*,          \
                                      const F*, bool, F*, F*, F*, Cancel&);
PYRNN_BATCHNORM_INSTANTIATE(float)
PYRNN_BATCHNORM_INSTANTIATE(double)
#undef PYRNN_BATCHNORM_INSTANTIATE

}  // namespace pyrnn
