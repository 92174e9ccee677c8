// Pointwise activations and their derivatives, written once for every cell.
//
// float uses a branch-free rational tanh so that the cells' loops vectorise;
// double uses std::tanh (the float64 path is the one held to the reference at 1e-10).
#pragma once

#include <algorithm>
#include <cmath>

// Before a pointwise loop whose arrays never overlap: lets it vectorise without run-time alias checks.
#if defined(__clang__)
#define PYRNN_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define PYRNN_IVDEP _Pragma("GCC ivdep")
#else
#define PYRNN_IVDEP
#endif

namespace pyrnn {

// tanh(x) ~ x P(x^2) / Q(x^2) on [-7.9053, 7.9053] (where it reaches 1 in float), the 13/6
// rational approximation of Eigen and TensorFlow; max |error| 3.6e-7 (tested in test_cpp.py).
inline float tanh_rational(float x) {
  const float c = 7.90531110763549805f;
  x = x > c ? c : x;  // comparisons are false for NaN, so NaN passes through
  x = x < -c ? -c : x;
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return x * p / q;
}

inline float act_tanh(float x) { return tanh_rational(x); }
inline double act_tanh(double x) { return std::tanh(x); }

// s(z) = 1 / (1 + exp(-z)) = (tanh(z/2) + 1) / 2, which never overflows
// s'(z) = s(z)(1 - s(z))
template <typename F>
inline F sigmoid(F z) {
  return F(0.5) * (act_tanh(F(0.5) * z) + F(1));
}

// tanh'(z) = 1 - tanh(z)^2, from the saved output y = tanh(z)
template <typename F>
inline F dtanh_from_output(F y) {
  return F(1) - y * y;
}

// s'(z) = y (1 - y), from the saved output y = s(z)
template <typename F>
inline F dsigmoid_from_output(F y) {
  return y * (F(1) - y);
}

}  // namespace pyrnn
