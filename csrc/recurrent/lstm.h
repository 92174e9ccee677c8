// LSTM cell, G = 4, gate rows i|f|g|o.  Legend: B = batch, H = hidden.
#pragma once

#include "../common/activations.h"
#include "sequence.h"

namespace pyrnn {

struct LstmCell {
  static constexpr int64_t G = 4;
  static constexpr bool kFoldHiddenBias = true;
  static constexpr bool kSeparateHiddenGrad = false;
  static constexpr bool kCellState = true;

  // a = xp + gh;  i, f, o = s(a_i), s(a_f), s(a_o);  g = tanh(a_g)
  // c = f c_prev + i g;  h = o tanh(c);  saved: gates = [i|f|g|o], aux = tanh(c)
  template <typename F>
  static void forward_step(int64_t B, int64_t H, const StepView<F>& v) {
    const int64_t GH = 4 * H;
    for (int64_t b = 0; b < B; ++b) {
      const F* xp = v.xp + b * GH;
      const F* gh = v.gh + b * GH;
      const F* c_prev = v.c_prev + b * H;
      F* gates = v.gates + b * GH;
      F* c = v.c + b * H;
      F* tanh_c = v.aux + b * H;
      F* h = v.h + b * H;
      PYRNN_IVDEP
      for (int64_t j = 0; j < H; ++j) {
        const F i = sigmoid(xp[j] + gh[j]);
        const F f = sigmoid(xp[H + j] + gh[H + j]);
        const F g = act_tanh(xp[2 * H + j] + gh[2 * H + j]);
        const F o = sigmoid(xp[3 * H + j] + gh[3 * H + j]);
        const F cj = f * c_prev[j] + i * g;
        const F tc = act_tanh(cj);
        gates[j] = i, gates[H + j] = f, gates[2 * H + j] = g, gates[3 * H + j] = o;
        c[j] = cj, tanh_c[j] = tc, h[j] = o * tc;
      }
    }
  }

  // dh_t = dh + dhs;  dc_t = dc + dh_t o (1 - tanh(c)^2)
  // da_i = dc_t g i(1-i);  da_f = dc_t c_prev f(1-f);  da_g = dc_t i (1-g^2);  da_o = dh_t tanh(c) o(1-o)
  // dc_prev = dc_t f;  nothing bypasses W_hh
  template <typename F>
  static void backward_step(int64_t B, int64_t H, const StepView<F>& v, const StepGrad<F>& g) {
    const int64_t GH = 4 * H;
    for (int64_t b = 0; b < B; ++b) {
      const F* gates = v.gates + b * GH;
      const F* tanh_c = v.aux + b * H;
      const F* c_prev = v.c_prev + b * H;
      const F* dh = g.dh + b * H;
      const F* dhs = g.dhs + b * H;
      F* dc = g.dc + b * H;
      F* da = g.da_ih + b * GH;
      F* direct = g.dh_direct + b * H;
      PYRNN_IVDEP
      for (int64_t j = 0; j < H; ++j) {
        const F i = gates[j], f = gates[H + j], gg = gates[2 * H + j], o = gates[3 * H + j];
        const F dht = dh[j] + dhs[j];
        const F tc = tanh_c[j];
        const F dct = dc[j] + dht * o * dtanh_from_output(tc);
        da[j] = dct * gg * dsigmoid_from_output(i);
        da[H + j] = dct * c_prev[j] * dsigmoid_from_output(f);
        da[2 * H + j] = dct * i * dtanh_from_output(gg);
        da[3 * H + j] = dht * tc * dsigmoid_from_output(o);
        dc[j] = dct * f;
        direct[j] = F(0);
      }
    }
  }
};

}  // namespace pyrnn
