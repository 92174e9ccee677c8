// The bf16 operands of one recurrent kernel call (dtype="bfloat16"): weights packed and rounded to
// bf16 once per call in the time loop's panel layout, and the (B, K) bf16 rows by step parity that
// the loop refreshes each step (h_t and x_t forward, dA_hh backward). Legend: see
// sequence.h; layouts: common/gemm_bf16.h; how the loop uses them: loop.inc (Bf16Operands).
#pragma once

#include <cstdint>
#include <memory>

#include "kernels.h"

namespace pyrnn {

// W_ih^T, W_hh^T as G * panels(H) panels each (written by pack); ring (B, even(H)) x 2, h0 in [0]; x (B, Ip) x 2,
// the first step's in [0]
class Bf16Forward {
 public:
  Bf16Forward(int64_t G, int64_t NR, const SeqDims& d, const float* w_ih, const float* w_hh, const float* x,
              int64_t x_ldt, int64_t x_ldb, const float* h0);  // x's steps x_ldt and rows x_ldb apart
  const Bf16Operands* operands() const { return &ops_; }
  void pack(int64_t p0, int64_t p1);  // panels [p0, p1) of every gate (member_panels), before the loop reads them

 private:
  Bf16Buffer buf_, rows_;
  Bf16Operands ops_;
  int64_t G_, I_, H_;
  const float *w_ih_, *w_hh_;
  bf16_t *p_ih_, *p_hh_;  // where pack writes (ops_'s w_ih, w_hh)
};

// W_hh (G*H, H) as panels(H) panels of even(G*H) rows, ring (B, even(G*H)) x 2 (the loop's); W_ih (G*H, I)
// as gemm_bf16_packed's B of dX = dA W_ih (after the loop), panels(I) panels of 32 columns; both written by pack
class Bf16Backward {
 public:
  Bf16Backward(int64_t G, int64_t NR, const SeqDims& d, const float* w_hh, const float* w_ih);
  const Bf16Operands* operands() const { return &ops_; }
  const bf16_t* w_ih_for_dx() const { return w_ih_; }
  int64_t x_panels() const;  // W_ih's panels
  // W_hh's panels [p0, p1) and W_ih's [x0, x1) (member_panels), before the loop or the GEMMs after it read them
  void pack(int64_t p0, int64_t p1, int64_t x0, int64_t x1);

 private:
  Bf16Buffer buf_, rows_;
  Bf16Operands ops_;
  bf16_t *w_ih_, *p_hh_;
  const float *src_ih_, *src_hh_;
  int64_t GH_, I_, H_;
};

}  // namespace pyrnn
