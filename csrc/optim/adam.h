// Adam and AdamW (torch.optim.Adam / AdamW, L2 or decoupled weight decay, AMSGrad) on one parameter
// tensor of n contiguous values: the optimizer's whole step in one pass over p, g, m, v (and vmax),
// where NumPy's version makes ~11 passes and as many calls per tensor.
//
// Legend: n = values, p = parameter, g = its gradient, m / v = first / second moment (exp_avg,
// exp_avg_sq), vmax = the running maximum of v (AMSGrad), t = the step count (from 1).
//
//   Adam:  d = g + wd p                      AdamW: p = (1 - lr wd) p, d = g
//   m = lerp(m, d, 1 - beta1)                (torch's lerp: w < 0.5: m + w (d - m), else d - (1 - w)(d - m))
//   v = beta2 v + ((1 - beta2) d) d
//   AMSGrad: vmax = max(vmax, v) (NaN wins, as np.maximum), used as v below
//   p = p - (lr / (1 - beta1^t)) (m / (sqrt(v) / sqrt(1 - beta2^t) + eps))
//
// Every operation rounds once in F, in this order, with the scalars rounded to F as NumPy rounds a
// Python float meeting an F array: the results are pyrnn.optim's NumPy update's, bit for bit. (This
// file is built for baseline x86-64, so no multiply-add is fused.) No cancellation: a step stops
// whole or not at all, so a Ctrl-C never leaves some tensors updated and others not.
#pragma once

#include <cstdint>

namespace pyrnn {

struct AdamStep {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled;  // AdamW
  int64_t t;       // the step count, >= 1
};

// one tensor; vmax null unless AMSGrad
template <typename F>
void adam_update(const AdamStep& s, int64_t n, F* p, const F* g, F* m, F* v, F* vmax);

}  // namespace pyrnn
