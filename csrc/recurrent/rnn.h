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
    const F* xp = v.xp;
    const F* gh = v.gh;
    F* h = v.h;
    PYRNN_IVDEP
    for (int64_t i = 0; i < B * H; ++i) {
      const F a = xp[i] + gh[i];
      h[i] = Relu ? (a < F(0) ? F(0) : a) : act_tanh(a);  // relu(NaN) = NaN, as in PyTorch
    }
  }

  // da = (dh + dhs) f'(a);  tanh'(a) = 1 - h^2,  relu'(a) = [h > 0];  nothing bypasses W_hh
  template <typename F>
  static void backward_step(int64_t B, int64_t H, const StepView<F>& v, const StepGrad<F>& g) {
    const F* h = v.h;
    const F* dh = g.dh;
    const F* dhs = g.dhs;
    F* da = g.da_ih;
    F* direct = g.dh_direct;
    PYRNN_IVDEP
    for (int64_t i = 0; i < B * H; ++i) {
      const F d = dh[i] + dhs[i];
      da[i] = Relu ? (h[i] > F(0) ? d : F(0)) : d * dtanh_from_output(h[i]);
      direct[i] = F(0);
    }
  }
};

}  // namespace pyrnn
