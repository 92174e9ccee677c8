// See recurrent_bf16.h. Everything here runs once per call, before the time loop: the constructors on the calling
// thread, the packs (Bf16Forward::pack, Bf16Backward::pack) by each member of the loop's team for its own panels. The
// packs write every word of theirs; the rows are zeroed, so that the pad column of an odd K is read as zeros.
#include "recurrent_bf16.h"

#include <algorithm>

namespace pyrnn {

Bf16Forward::Bf16Forward(int64_t G, int64_t NR, const SeqDims& d, const float* w_ih, const float* w_hh, const float* x,
                         int64_t x_ldt, int64_t x_ldb, const float* h0) {
  const int64_t T = d.T, B = d.B, I = d.I, H = d.H, np = (H + NR - 1) / NR;
  const int64_t Ip = even_up(I), Hp = even_up(H);
  const int64_t n_ih = G * np * Ip * NR, n_hh = G * np * Hp * NR;
  buf_ = bf16_buffer(n_ih + n_hh, false);
  rows_ = bf16_buffer(2 * B * (Ip + Hp), true);
  bf16_t* p_ih = buf_.get();
  bf16_t* p_hh = p_ih + n_ih;
  bf16_t* ring = rows_.get();
  bf16_t* xb = ring + 2 * B * Hp;
  G_ = G, I_ = I, H_ = H, w_ih_ = w_ih, w_hh_ = w_hh, p_ih_ = p_ih, p_hh_ = p_hh;
  if (T > 0) convert_bf16(B, 0, I, x + time_index(d, 0) * x_ldt, x_ldb, xb, Ip);  // the first step's x
  convert_bf16(B, 0, H, h0, H, ring, Hp);
  ops_ = Bf16Operands{bf16_panel_for(NR), NR, p_ih, p_hh, Ip, Hp, {ring, ring + B * Hp}, {xb, xb + B * Ip}};
}

void Bf16Forward::pack(int64_t p0, int64_t p1) {
  const int64_t NR = ops_.NR, np = (H_ + NR - 1) / NR, Ip = ops_.Ip, Hp = ops_.Kh, c0 = p0 * NR;
  const int64_t cols = std::min(p1 * NR, H_) - c0;  // the units of panels [p0, p1)
  if (cols <= 0) return;
  for (int64_t g = 0; g < G_; ++g) {  // W^T (K, H) of gate g: element (k, n) = W[(g*H + n)*K + k]
    pack_bf16_panels(w_ih_ + (g * H_ + c0) * I_, 1, I_, I_, cols, NR, p_ih_ + (g * np + p0) * Ip * NR);
    pack_bf16_panels(w_hh_ + (g * H_ + c0) * H_, 1, H_, H_, cols, NR, p_hh_ + (g * np + p0) * Hp * NR);
  }
}

Bf16Backward::Bf16Backward(int64_t G, int64_t NR, const SeqDims& d, const float* w_hh, const float* w_ih) {
  const int64_t B = d.B, I = d.I, H = d.H, GH = G * H, np = (H + NR - 1) / NR, Kh = even_up(GH);
  const int64_t NRx = bf16_gemm_panel_width(), n_ih = (I + NRx - 1) / NRx * Kh * NRx;
  buf_ = bf16_buffer(n_ih + np * Kh * NR, false);
  rows_ = bf16_buffer(2 * B * Kh, true);
  bf16_t* p_ih = buf_.get();
  bf16_t* p_hh = p_ih + n_ih;
  bf16_t* ring = rows_.get();
  w_ih_ = p_ih, p_hh_ = p_hh, src_ih_ = w_ih, src_hh_ = w_hh, GH_ = GH, I_ = I, H_ = H;
  ops_ = Bf16Operands{bf16_panel_for(NR), NR, nullptr, p_hh, 0, Kh, {ring, ring + B * Kh}, {nullptr, nullptr}};
}

int64_t Bf16Backward::x_panels() const {
  const int64_t NRx = bf16_gemm_panel_width();
  return (I_ + NRx - 1) / NRx;
}

void Bf16Backward::pack(int64_t p0, int64_t p1, int64_t x0, int64_t x1) {
  const int64_t NR = ops_.NR, NRx = bf16_gemm_panel_width(), Kh = ops_.Kh;
  const int64_t c0 = p0 * NR, cols = std::min(p1 * NR, H_) - c0, i0 = x0 * NRx, icols = std::min(x1 * NRx, I_) - i0;
  if (cols > 0)  // W_hh (G*H, H) as the (K, N) operand of dA_hh W_hh: columns [c0, c0 + cols)
    pack_bf16_panels(src_hh_ + c0, H_, 1, GH_, cols, NR, p_hh_ + p0 * Kh * NR);
  if (icols > 0)  // W_ih (G*H, I) as the (K, N) operand of dA W_ih
    pack_bf16_panels(src_ih_ + i0, I_, 1, GH_, icols, NRx, w_ih_ + x0 * Kh * NRx);
}

}  // namespace pyrnn
