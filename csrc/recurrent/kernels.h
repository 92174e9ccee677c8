// The per-instruction-set half of the recurrent family: the time loops and what they need,
// compiled once per ISA from loop.inc (see isa.inc). Legend and names: see sequence.h.
#pragma once

#include <cstdint>
#include <type_traits>

#include "../common/cancel.h"
#include "../common/cpu.h"
#include "../common/gemm_bf16.h"
#include "../common/threads.h"
#include "recurrent.h"

namespace pyrnn {

// Member tid of n's share [p0, p1) of np unit panels: the panels its time loop reads and writes when the team
// splits the hidden units (loop.inc unit_block), and the panels of the weights it packs (recurrent.cpp)
struct PanelRange {
  int64_t p0, p1;
};
inline PanelRange member_panels(int64_t np, int tid, int n) { return {np * tid / n, np * (tid + 1) / n}; }

// The bf16 operands of one call (dtype="bfloat16"; set up by recurrent_bf16.cpp): the time loop's
// GEMMs read these, with panel (VDPBF16PS or its emulation), instead of the float32 packs.
struct Bf16Operands {
  bf16_panel_fn panel;
  int64_t NR;          // the loop's panel width (IsaKernels::panel_width)
  const bf16_t* w_ih;  // forward: W_ih^T as pack_forward's panels (g, p), each Ip rows (pair-interleaved)
  const bf16_t* w_hh;  // forward: W_hh^T likewise, Kh rows each; backward: W_hh as panels p, Kh rows each
  int64_t Ip, Kh;      // even row strides: Ip = I rounded up; Kh = H (forward) or G*H (backward) rounded up
  bf16_t* ring[2];     // per step parity, (B, Kh): forward h_{t-1}, backward dA_hh, in bf16
  bf16_t* x[2];        // forward, per step parity, (B, Ip): x_t in bf16 (the loop converts step s + 1 during step s)
};

template <typename F>
struct ForwardPlan {  // one forward time loop, set up by recurrent.cpp
  CellKind cell;
  SeqDims d;
  const F* w_ih_packed;  // W_ih^T and W_hh^T as pack_forward packed them
  const F* w_hh_packed;
  const F* bias_packed;   // b_ih + b_hh (the linear-before-reset gate: b_ih alone), as pack_bias packed it
  const F* b_hn_packed;   // GRU: b_hn, as pack_bias packed it; else null
  SeqTensors<F> io;       // x, h0, c0 in; hs, cs, gates, hn out (null gates: inference)
  F* preact;              // scratch, member tid's at preact + tid * preact_member: the preact of one unit panel
  int64_t preact_member;  // (B rows of G * the panel width), rewritten panel after panel (StepView::preact)
  F* hn;                  // (B, H) scratch for GRU's hn at inference, else null
  Cancel* cancel;         // polled by tid 0 once per step (see cancel.h)
  // dtype="bfloat16": the GEMMs' operands (then the packs above are unused)
  const Bf16Operands* bf16 = nullptr;
  bool stream_gates = false;  // training: the gates bypass the caches (store_gates in loop.inc)
};

template <typename F>
struct BackwardPlan {  // one BPTT time loop, set up by recurrent.cpp
  CellKind cell;
  SeqDims d;
  const F* w_packed;    // W_hh as pack_backward packed it
  SeqTensors<F> saved;  // the forward's cache
  SeqGrads<F> io;       // dhs in; dh0, dc0 written (dx is the driver's)
  F* da_ih;             // (T, B, G*H) written; may be saved.gates itself (read, then overwritten)
  F* da_hn;             // (T, B, H) the linear-before-reset gate's hidden side (GRU), else null
  F* dh;                // (B, H) scratch holding dhT on entry
  F* dh_next;           // (B, H) scratch
  F* dc;                // (B, H) scratch holding dcT on entry (LSTM)
  F* dc_kept;           // (B, H) scratch when d.lengths is set
  Cancel* cancel;       // polled by tid 0 once per step (see cancel.h)
  // few input features (I <= kNarrowInputs, float operands): W_ih^T (I, G*H); the loop writes io.dx, each step's
  // rows while its dA is in cache (else null: the driver's GEMMs after the loop do)
  const F* w_ih_t = nullptr;
  // dtype="bfloat16": the GEMM's operands (then w_packed is unused)
  const Bf16Operands* bf16 = nullptr;
};

template <typename F>
struct IsaKernels {
  int64_t panel_width;  // w: columns per packed panel
  // W (G*H, K) as forward operand: G*ceil(H/w)*w*K values (W_ih: K = I; W_hh: K = H)
  // (panels [p0, p1) of each gate: member_panels)
  void (*pack_forward)(const F* w, int64_t G, int64_t H, int64_t K, int64_t p0, int64_t p1, F* out);
  // W (K, N) as backward operand, panels over its N columns: K*ceil(N/w)*w values (W_hh: K = G*H, N = H; W_ih: N = I)
  // (panels [p0, p1))
  void (*pack_backward)(const F* w, int64_t K, int64_t N, int64_t p0, int64_t p1, F* out);
  // a (G*H) bias as the rows the forward's tiles start from: G*ceil(H/w)*w values
  void (*pack_bias)(const F* b, int64_t G, int64_t H, F* out);
  // thread tid of n runs the loop for its block of hidden units, meeting the others once per step;
  // backward returns false when plan.cancel stopped it (the same answer for every member)
  void (*forward)(const ForwardPlan<F>& plan, int tid, int n, SpinBarrier& barrier);
  bool (*backward)(const BackwardPlan<F>& plan, int tid, int n, SpinBarrier& barrier);
  // C (m, n) (+)= A^T P, A (K, m) and P (K, n) row-major (strides lda, ldp): the weight gradient's
  // product after the backward loop; and s (m), unless null, (+)= A^T 1, the bias gradient (acc false: C and s are
  // overwritten)
  void (*gemm_tn)(int64_t m, int64_t n, int64_t K, const F* A, int64_t lda, const F* P, int64_t ldp, F* C, int64_t ldc,
                  bool acc, F* s);
  // few input features (n <= kNarrowInputs): C (m, n) (+)= A^T P and s (m) (+)= A^T 1 in one pass over A (dW_ih and
  // the bias gradient after the backward loop)
  void (*gemm_tn_narrow)(int64_t m, int64_t n, int64_t K, const F* A, int64_t lda, const F* P, int64_t ldp, F* C,
                         int64_t ldc, F* s, bool acc);
  // C (M, n) = A P, A (M, K) row-major (row stride lda), P as pack_backward packed W (K, n): dX = dA_ih W_ih
  void (*gemm_packed)(int64_t M, int64_t n, int64_t K, const F* A, int64_t lda, const F* P, F* C, int64_t ldc);
  void (*tanh)(int64_t n, const F* x, F* y);  // the cells' activations, elementwise (for tests)
  void (*sigmoid)(int64_t n, const F* x, F* y);
};

constexpr int64_t kNarrowInputs = 4;  // the most input features the narrow products take

struct KernelTable {
  Isa isa;
  IsaKernels<float> f32;
  IsaKernels<double> f64;
};

// One table per instruction set, each defined by its isa_*.cpp (the wider ones on x86-64 builds only).
template <Isa isa>
const KernelTable& kernel_table();
template <>
const KernelTable& kernel_table<Isa::Generic>();
template <>
const KernelTable& kernel_table<Isa::Avx2>();
template <>
const KernelTable& kernel_table<Isa::Avx512>();
const KernelTable& kernels_for(Isa isa);

template <typename F>
const IsaKernels<F>& isa_kernels(const KernelTable& t);
template <>
inline const IsaKernels<float>& isa_kernels<float>(const KernelTable& t) {
  return t.f32;
}
template <>
inline const IsaKernels<double>& isa_kernels<double>(const KernelTable& t) {
  return t.f64;
}

}  // namespace pyrnn
