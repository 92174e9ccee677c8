// The driver of one layer-direction: it packs the weights and biases, then runs the time loop
// (loop.inc, in the widest instruction set the CPU has, via isa.inc) and, after the backward one,
// the BLAS GEMMs, in one parallel region of the kernels' thread team. Legend and names: see
// sequence.h.
//
// Forward:  W_ih^T, W_hh^T and the biases packed once; the time loop: per step, per unit panel,
//           preact = x_t W_ih^T + h_{t-1} W_hh^T + bias in one register tile (packed micro-kernel;
//           no input-projection buffer: the gates cache is written once, by the pointwise step)
//           and the fused pointwise step, split over the team by hidden units, one barrier per step.
// Backward: the time loop: per step one fused pointwise step (dA written over the saved gates
//           it has just read, LSTM and GRU) and dh_prev = direct + dA_hh W_hh (packed GEMM);
//           then dX = dA_ih W_ih (each thread its rows), dW_ih += dA_ih^T X, dW_hh += dA_hh^T
//           H_prev, db += column sums of dA (each thread its gate rows): BLAS calls, skipped
//           when the loop was cancelled (the weight gradients are never partly accumulated).
// Scratch is allocated once per call, never per time step; while the team runs, the BLAS runs
// single-threaded inside each member (no second thread pool competes for the cores), and every
// member flushes denormals.
#include "recurrent.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "../common/cpu.h"
#include "../common/gemm.h"
#include "../common/threads.h"
#include "kernels.h"

namespace pyrnn {

namespace {

template <typename F>
std::unique_ptr<F[]> scratch(int64_t n) {  // uninitialised: every element is written before it is read
  return std::unique_ptr<F[]>(new F[static_cast<size_t>(n > 0 ? n : 1)]);
}

int team_size(int64_t B, int64_t GH, int64_t H, int64_t panel_width) {
  const int64_t np = (H + panel_width - 1) / panel_width;
  if (2 * B * GH * H < parallel_min_flops() || np < 2) return 1;  // a step too small for a barrier
  const int n = max_threads();
  return static_cast<int>(np < n ? np : n);
}

struct Slice {  // rows [r0, r1) of m, thread tid's share of n
  int64_t r0, r1;
  Slice(int64_t m, int tid, int n) : r0(m * tid / n), r1(m * (tid + 1) / n) {}
  int64_t size() const { return r1 - r0; }
};

}  // namespace

int64_t gates_per_unit(CellKind cell) {
  switch (cell) {
    case CellKind::RnnTanh:
    case CellKind::RnnRelu: return 1;
    case CellKind::Lstm: return 4;
    case CellKind::Gru: return 3;
  }
  throw std::invalid_argument("unknown cell code");
}


const KernelTable& kernels_for(Isa isa) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (isa == Isa::Avx512) return kernel_table<Isa::Avx512>();
  if (isa == Isa::Avx2) return kernel_table<Isa::Avx2>();
#endif
  (void)isa;
  return kernel_table<Isa::Generic>();
}

template <typename F>
void recurrent_forward(CellKind cell, const SeqDims& d, const CellParams<F>& p, const SeqTensors<F>& io,
                       Cancel& cancel) {
  const int64_t T = d.T, B = d.B, I = d.I, H = d.H, G = gates_per_unit(cell), GH = G * H;
  if (T == 0 || B == 0) return;
  const IsaKernels<F>& k = isa_kernels<F>(kernels_for(active_isa()));
  const bool gru = cell == CellKind::Gru;
  const int64_t wide = ((H + k.panel_width - 1) / k.panel_width) * k.panel_width;  // H padded to panels
  const bool hn_scratch = gru && io.gates == nullptr;  // GRU at inference: hn is not saved
  std::unique_ptr<F[]> buf = scratch<F>(G * wide * (I + H + 1) + wide + GH + B * GH + (hn_scratch ? B * H : 0));
  F* w_ih = buf.get();
  F* w_hh = w_ih + G * wide * I;
  F* bias = w_hh + G * wide * H;  // packed b_ih + b_hh, but b_ih alone for the linear-before-reset gate
  F* b_hn = bias + G * wide;      // packed b_hn (GRU)
  F* sum = b_hn + wide;           // (G*H) the bias before packing
  F* preact = sum + GH;
  k.pack_forward(p.w_ih, G, H, I, w_ih);
  k.pack_forward(p.w_hh, G, H, H, w_hh);
  for (int64_t c = 0; c < GH; ++c) sum[c] = p.b_ih[c] + (gru && c >= 2 * H ? F(0) : p.b_hh[c]);
  k.pack_bias(sum, G, H, bias);
  if (gru) k.pack_bias(p.b_hh + 2 * H, 1, H, b_hn);
  const ForwardPlan<F> plan{cell, d, w_ih, w_hh, bias, gru ? b_hn : nullptr, io, preact,
                            hn_scratch ? preact + B * GH : nullptr, &cancel};
  auto region = [&](int tid, int n, SpinBarrier& barrier) {
    DenormalsFlushed ftz;
    k.forward(plan, tid, n, barrier);
  };
  parallel(team_size(B, GH, H, k.panel_width), region);
}

template <typename F>
void recurrent_backward(CellKind cell, const SeqDims& d, const CellParams<F>& p, const SeqTensors<F>& saved,
                        const SeqGrads<F>& io, const CellGrads<F>& g, Cancel& cancel) {
  const int64_t T = d.T, B = d.B, I = d.I, H = d.H, G = gates_per_unit(cell), GH = G * H;
  const bool lstm = cell == CellKind::Lstm, gru = cell == CellKind::Gru;
  if (B == 0) return;
  if (T == 0) {  // the empty recurrence passes the gradient straight through
    std::memcpy(io.dh0, io.dhT, sizeof(F) * B * H);
    if (lstm) std::memcpy(io.dc0, io.dcT, sizeof(F) * B * H);
    return;
  }
  const IsaKernels<F>& k = isa_kernels<F>(kernels_for(active_isa()));
  // dA over the saved gates (each step reads its gates, then overwrites them); RNN saves none
  std::unique_ptr<F[]> da_ih_own = saved.gates ? nullptr : scratch<F>(T * B * GH);
  std::unique_ptr<F[]> da_hn_own = gru ? scratch<F>(T * B * H) : nullptr;
  F* da_ih = saved.gates ? saved.gates : da_ih_own.get();
  F* da_hn = da_hn_own.get();
  const int64_t lbr_col = gru ? 2 * H : GH;  // hidden-side dA: da_ih's columns below, da_hn's from here
  const int64_t np = (H + k.panel_width - 1) / k.panel_width;
  std::unique_ptr<F[]> packed = scratch<F>(GH * np * k.panel_width);
  k.pack_backward(p.w_hh, G, H, packed.get());
  std::unique_ptr<F[]> state = scratch<F>(4 * B * H + 2 * GH + T * B);  // dh, dh_next, dc, dc_kept, db x2, ones
  F *dh = state.get(), *dh_next = dh + B * H, *dc = dh_next + B * H, *dc_kept = dc + B * H;
  F *db = dc_kept + B * H, *db_hn = db + GH, *ones = db_hn + GH;
  std::memcpy(dh, io.dhT, sizeof(F) * B * H);
  if (lstm) std::memcpy(dc, io.dcT, sizeof(F) * B * H);
  for (int64_t r = 0; r < T * B; ++r) ones[r] = F(1);
  const BackwardPlan<F> plan{cell, d, packed.get(), saved, io, da_ih, da_hn, dh, dh_next, dc, dc_kept, &cancel};
  const int64_t first = d.reverse ? T - 1 : 0;  // the step whose h_prev is h0
  const int64_t rest = d.reverse ? 0 : 1;       // the other steps' h_prev: hs[t-1] (forward), hs[t+1] (reverse)
  const F* h_rest = d.reverse ? saved.hs + B * H : saved.hs;

  // dW_hh[c0:c1] += dA_hh[:, c0:c1]^T H_prev and db_hh[c0:c1] += its column sums, dA_hh read from
  // da_ih (lda G*H) below lbr_col and from da_hn (lda H) from there on
  auto hidden_side = [&](bool lbr_part, int64_t c0, int64_t c1) {
    const F* A = lbr_part ? da_hn + (c0 - lbr_col) : da_ih + c0;
    const int64_t m = c1 - c0, lda = lbr_part ? H : GH;
    gemm<F>(true, false, m, H, B, F(1), A + first * B * lda, lda, saved.h0, H, F(1), g.w_hh + c0 * H, H);
    if (T > 1) gemm<F>(true, false, m, H, (T - 1) * B, F(1), A + rest * B * lda, lda, h_rest, H, F(1), g.w_hh + c0 * H, H);
    if (lbr_part) gemm<F>(false, false, 1, m, T * B, F(1), ones, T * B, A, lda, F(0), db_hn + c0, GH);
    for (int64_t c = c0; c < c1; ++c) g.b_hh[c] += lbr_part ? db_hn[c] : db[c];
  };
  const int want = team_size(B, GH, H, k.panel_width);
  BlasOneThread blas_single(want > 1);
  auto region = [&](int tid, int n, SpinBarrier& barrier) {
    DenormalsFlushed ftz;
    // ends after a barrier that follows the last dA write; cancelled, every member returns false
    if (!k.backward(plan, tid, n, barrier)) return;
    const Slice rows(T * B, tid, n);    // dX = dA_ih W_ih, this thread's rows
    gemm<F>(false, false, rows.size(), I, GH, F(1), da_ih + rows.r0 * GH, GH, p.w_ih, I, F(0), io.dx + rows.r0 * I, I);
    const Slice gr(GH, tid, n);         // this thread's gate rows of dW_ih, dW_hh, db
    const int64_t m = gr.size();
    gemm<F>(true, false, m, I, T * B, F(1), da_ih + gr.r0, GH, saved.x, I, F(1), g.w_ih + gr.r0 * I, I);
    // db_ih += ones(T*B) dA_ih: column sums as a GEMM
    gemm<F>(false, false, 1, m, T * B, F(1), ones, T * B, da_ih + gr.r0, GH, F(0), db + gr.r0, GH);
    for (int64_t c = gr.r0; c < gr.r1; ++c) g.b_ih[c] += db[c];
    if (gr.r0 < lbr_col) hidden_side(false, gr.r0, std::min(gr.r1, lbr_col));
    if (gr.r1 > lbr_col) hidden_side(true, std::max(gr.r0, lbr_col), gr.r1);
  };
  parallel(want, region);
}

#define PYRNN_RECURRENT_INSTANTIATE(F)                                                                         \
  template void recurrent_forward<F>(CellKind, const SeqDims&, const CellParams<F>&, const SeqTensors<F>&, Cancel&); \
  template void recurrent_backward<F>(CellKind, const SeqDims&, const CellParams<F>&, const SeqTensors<F>&,          \
                                      const SeqGrads<F>&, const CellGrads<F>&, Cancel&);
PYRNN_RECURRENT_INSTANTIATE(float)
PYRNN_RECURRENT_INSTANTIATE(double)
#undef PYRNN_RECURRENT_INSTANTIATE

}  // namespace pyrnn
