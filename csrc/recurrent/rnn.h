// Vanilla (Elman) RNN cell, G = 1.  Legend: B = batch, H = hidden.
#pragma once

#include "../common/activations.h"
#include "sequence.h"

namespace pyrnn {

template <bool Relu>
struct RnnCell {
  static constexpr int64_t G = 1;
  static constexpr bool kFoldHiddenBias = true;
  static constexpr bool kSeparateHiddenGrad = false;
  static constexpr bool kCellState = false;

  // h = f(xp + gh),  xp = W_ih x + b_ih + b_hh,  gh = W_hh h_prev,  f = tanh or relu
  template <typename F>
  static void forward_step(int64_t B, int64_t H, const StepView<F>& v) {
    for (int64_t i = 0; i < B * H; ++i) {
      const F a = v.xp[i] + v.gh[i];
      v.h[i] = Relu ? (a > F(0) ? a : F(0)) : std::tanh(a);
    }
  }

  // da = (dh + dhs) f'(a);  tanh'(a) = 1 - h^2,  relu'(a) = [h > 0];  nothing bypasses W_hh
  template <typename F>
  static void backward_step(int64_t B, int64_t H, const StepView<F>& v, const StepGrad<F>& g) {
    for (int64_t i = 0; i < B * H; ++i) {
      const F dh = g.dh[i] + g.dhs[i];
      g.da_ih[i] = Relu ? (v.h[i] > F(0) ? dh : F(0)) : dh * dtanh_from_output(v.h[i]);
      g.dh_direct[i] = F(0);
    }
  }
};

}  // namespace pyrnn
