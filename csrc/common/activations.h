// Pointwise activations and their derivatives, written once for every cell.
#pragma once

#include <cmath>

namespace pyrnn {

// s(z) = 1 / (1 + exp(-z)) = (tanh(z/2) + 1) / 2, which never overflows
// s'(z) = s(z)(1 - s(z))
template <typename F>
inline F sigmoid(F z) {
  return F(0.5) * (std::tanh(F(0.5) * z) + F(1));
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
