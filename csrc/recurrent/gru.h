// GRU cell, G = 3, gate rows r|z|n.  Legend: B = batch, H = hidden.
#pragma once

#include "../common/activations.h"
#include "sequence.h"

namespace pyrnn {

struct GruCell {
  static constexpr int64_t G = 3;
  static constexpr bool kFoldHiddenBias = false;  // b_hn stays inside r * (W_hn h + b_hn)
  static constexpr bool kSeparateHiddenGrad = true;
  static constexpr bool kCellState = false;

  // r = s(xp_r + gh_r + b_hr);  z = s(xp_z + gh_z + b_hz);  hn = gh_n + b_hn
  // n = tanh(xp_n + r hn);  h = (1 - z) n + z h_prev;  saved: gates = [r|z|n], aux = hn
  template <typename F>
  static void forward_step(int64_t B, int64_t H, const StepView<F>& v) {
    const int64_t GH = 3 * H;
    const F* b_hh = v.b_hh;
    for (int64_t b = 0; b < B; ++b) {
      const F* xp = v.xp + b * GH;
      const F* gh = v.gh + b * GH;
      const F* h_prev = v.h_prev + b * H;
      F* gates = v.gates + b * GH;
      F* hn_out = v.aux + b * H;
      F* h = v.h + b * H;
      PYRNN_IVDEP
      for (int64_t j = 0; j < H; ++j) {
        const F r = sigmoid(xp[j] + gh[j] + b_hh[j]);
        const F z = sigmoid(xp[H + j] + gh[H + j] + b_hh[H + j]);
        const F hn = gh[2 * H + j] + b_hh[2 * H + j];
        const F n = act_tanh(xp[2 * H + j] + r * hn);
        gates[j] = r, gates[H + j] = z, gates[2 * H + j] = n;
        hn_out[j] = hn;
        h[j] = (F(1) - z) * n + z * h_prev[j];
      }
    }
  }

  // dh_t = dh + dhs;  da_n = dh_t (1 - z)(1 - n^2);  da_z = dh_t (h_prev - n) z(1-z);  da_r = da_n hn r(1-r)
  // input side [da_r|da_z|da_n];  hidden side [da_r|da_z|da_n r];  dh_direct = dh_t z
  template <typename F>
  static void backward_step(int64_t B, int64_t H, const StepView<F>& v, const StepGrad<F>& g) {
    const int64_t GH = 3 * H;
    for (int64_t b = 0; b < B; ++b) {
      const F* gates = v.gates + b * GH;
      const F* hn = v.aux + b * H;
      const F* h_prev = v.h_prev + b * H;
      const F* dh = g.dh + b * H;
      const F* dhs = g.dhs + b * H;
      F* dai = g.da_ih + b * GH;
      F* dah = g.da_hh + b * GH;
      F* direct = g.dh_direct + b * H;
      PYRNN_IVDEP
      for (int64_t j = 0; j < H; ++j) {
        const F r = gates[j], z = gates[H + j], n = gates[2 * H + j];
        const F dht = dh[j] + dhs[j];
        const F dan = dht * (F(1) - z) * dtanh_from_output(n);
        const F daz = dht * (h_prev[j] - n) * dsigmoid_from_output(z);
        const F dar = dan * hn[j] * dsigmoid_from_output(r);
        dai[j] = dar, dai[H + j] = daz, dai[2 * H + j] = dan;
        dah[j] = dar, dah[H + j] = daz, dah[2 * H + j] = dan * r;
        direct[j] = dht * z;
      }
    }
  }
};

}  // namespace pyrnn
