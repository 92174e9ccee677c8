// The driver of one layer-direction: it packs the weights and biases, then runs the time loop
// (loop.inc, in the widest instruction set the CPU has, via isa.inc) and, after the backward one,
// the BLAS GEMMs, in one parallel region of the kernels' thread team. Legend and names: see
// sequence.h.
//
// Forward:  W_ih^T, W_hh^T and the biases packed once per call (the weights inside the region, each member its share:
//           member_panels); the time loop: per step, per unit panel,
//           preact = x_t W_ih^T + h_{t-1} W_hh^T + bias in one register tile (packed micro-kernel;
//           no input-projection buffer: the gates cache is written once, by the pointwise step)
//           and the fused pointwise step, split over the team by hidden units, one barrier per step;
//           or, for small weights and enough rows, by rows of the batch: each member runs the whole loop
//           on its rows and meets no one (loop_team below).
// Backward: the time loop: per step one fused pointwise step (dA written over the saved gates
//           it has just read, LSTM and GRU) and dh_prev = direct + dA_hh W_hh (packed GEMM);
//           then dX = dA_ih W_ih (each thread its rows), dW_ih += dA_ih^T X, dW_hh += dA_hh^T
//           H_prev, db += column sums of dA (each thread its gate rows): over chunks of time steps
//           (a cancellation lands between two), dW_ih and dW_hh by the ISA's gemm_tn (the BLAS where
//           they spill) and dX by its gemm_packed (microkernel.inc), the bias sums by BLAS calls,
//           summed in scratch and added into the weight gradients only once every chunk ran (never
//           partly accumulated).
// Scratch is allocated once per call, never per time step; while the team runs, the BLAS runs
// single-threaded inside each member (no second thread pool competes for the cores), and every
// member flushes denormals.
#include "recurrent.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>

#include "../common/cpu.h"
#include "../common/gemm.h"
#include "../common/scratch.h"
#include "../common/threads.h"
#include "kernels.h"
#include "recurrent_bf16.h"

namespace pyrnn {

namespace {

int team_size(int64_t B, int64_t GH, int64_t H, int64_t panel_width) {
  const int64_t np = (H + panel_width - 1) / panel_width;
  if (2 * B * GH * H < parallel_min_flops() || np < 2) return 1;  // a step too small for a barrier
  const int n = max_threads();
  return static_cast<int>(np < n ? np : n);
}

// The gate columns team_size weighs: a VDPBF16PS product costs half a float32 one (two products per lane
// and instruction), so a bf16 step of G*H columns is as much work as a float32 one of G*H/2. AMX is weighed
// the same (not measured: no AMX machine here).
int64_t bf16_cost_columns(bool bf16, int64_t GH) { return bf16 && bf16_path_native(active_bf16_path()) ? GH / 2 : GH; }

// Work of one chunk of the GEMMs after the backward loop (the team's, all members), float32: at most ~40 ms
// of one core (the whole chunk is one member's when the loop ran on one thread; float64 half as many flops),
// so a cancellation lands soon, and enough rows (K) that the BLAS runs near its peak. bf16 keeps the chunks
// measured for it (kPostChunkFlopsBf16: 4x for VDPBF16PS, 1x for the emulation).
constexpr int64_t kPostChunkFlops = int64_t(1) << 32;
constexpr int64_t kPostChunkFlopsBf16 = int64_t(1) << 29;
// ... and of at most kPostChunkBytes of dA, H_prev and X rows (the L2 of one AMD Zen 4 core; Intel Xeon's is
// 1-2 MiB), so a unit's products after the first find them in cache, unless that leaves fewer than
// kPostChunkRows rows (short products run below the BLAS's speed). The adding problem's backward (LSTM(2->64)
// T=200 B=50, whose dA is 10 MB), 2 threads on an EPYC: 7.0 -> 6.3 ms against one chunk of the 200 steps.
constexpr int64_t kPostChunkBytes = int64_t(1) << 20;
constexpr int64_t kPostChunkRows = 256;
// ... but at least kPostChunkRowsSpilled rows when the weight gradients' sums (G*H x (I+H)) pass kPostSpillBytes:
// each chunk's products read and write their share of them from L3 again. LSTM T=100 B=64 I=H=512 (dW: 8 MB),
// backward medians of 12 calls alternating in one process on the EPYC: 1 step (64 rows) a chunk 347 ms, 10
// steps 327; H=256 (1.5 MB; 4 or 10 steps): LSTM 66.8 / 64.8 ms, GRU 64.4 / 64.5, so no floor there.
constexpr int64_t kPostSpillBytes = int64_t(4) << 20;
constexpr int64_t kPostChunkRowsSpilled = 640;
// Where the weight gradients' sums take at most this many bytes (G*H x (I+H) values), they are split along K: the
// time chunks in two halves, each half's units taking every gate row into a set of sums of its own, both sets
// added into the gradients in order at the end. Each unit packs the rows of H_prev and X it multiplies, so with
// the units split by gate rows every member packed all of them: small gate-row blocks (the RNN's) paid for a full
// pack each. The halves are fixed, whatever the team, so the sums are the same bits on any number of threads.
// Training, two builds alternating in fresh processes on 2 threads of a Xeon with AMX, medians of 12-16 rounds: RNN
// T=100 B=64 I=128 H=256 (sums 384 KB) 1.036x (its first call after PyTorch's, 1.024x), LSTM T=50 B=32 I=32 H=64
// 1.024x, GRU 1.025x, the adding problem's LSTM(2 -> 64) T=200 B=50 1.044x; GRU and LSTM I=128 H=256 (1.2 and 1.5
// MB of sums, which each member then reads and writes whole at every chunk) 1.002x and 1.006x, so not there.
constexpr int64_t kPostSplitBytes = int64_t(1) << 20;

// A training forward stores the gates past the caches (store_gates in loop.inc) when they pass this many bytes
// (T*B*G*H floats): then the backward finds few of them in cache anyway, and a cached store reads each line first.
// Streamed against cached, one process alternating, 2 threads of a Xeon with AMX (L2 2 MiB a core), training
// medians of 8-10 rounds: LSTM T=100 B=64 I=H=512 (gates 52 MB) float32 1.041x, bf16 1.119x, GRU float32 1.025x;
// LSTM I=128 H=256 (26 MB) 1.054x, bf16 1.027x; T=50 (13 MB) 0.993x; B=32 I=64 H=128 (6.5 MB) 0.945x, GRU (4.9 MB)
// 0.955x; T=50 B=32 I=32 H=64 (1.6 MB) 0.926x.
constexpr int64_t kStreamGatesBytes = int64_t(16) << 20;

// Units of the GEMMs after the backward loop over m rows for a team of n, `per_member` each (a member that
// is descheduled leaves its later ones to the others), each at least 64 rows; one on one thread (a split
// GEMM of 32-row pieces costs ~45 % more: LSTM B=32 H=64 T=50's, 1.3 -> 1.9 ms on one EPYC core).
int64_t post_units(int n, int64_t m, int per_member) {
  return n <= 1 ? 1 : std::max<int64_t>(1, std::min<int64_t>(per_member * n, m / 64));
}

struct Slice {  // rows [r0, r1) of m, thread tid's share of n
  int64_t r0, r1;
  Slice(int64_t m, int tid, int n) : r0(m * tid / n), r1(m * (tid + 1) / n) {}
  int64_t size() const { return r1 - r0; }
};

// The time loop split over the team by rows of the batch instead of by hidden units: each member runs the whole
// loop on its own rows and meets no one (its rows of h_t are all its next step reads), where the unit split meets
// at a barrier every step and moves h_t between cores. It pays where a step's products are small next to that
// meeting (LSTM T=50 B=32 I=32 H=64 inference, AMD EPYC, 2 threads: 1.05 ms split by units; two independent
// halves of the batch 0.53 ms each on one thread), but every member then reads all of the packed weights every
// step, from L3 once they pass a core's L2. That costs less than the meetings and the exchange of h_t it saves:
// the loop alone (one call's best of 8, medians of 6-10 rounds alternating in one process, 2 threads of an AMD
// EPYC Zen 4, 1 MiB L2 a core, 32 MiB L3), rows / units: T=100 B=64 I=128 H=256 (weights 0.4-1.5 MiB) forward
// LSTM 1.02x inference, 1.10x keeping the cache; GRU 0.98-1.06x / 1.03x; RNN 1.07x / 1.14x; backward LSTM 1.03x,
// GRU 1.04x; LSTM I=H=512 (8 MiB) forward 1.05x / 1.05x, backward 1.00x, at B=16 and 32 1.00-1.03x; at I=H=1024
// (32 MiB) 0.99x. So up to kRowSplitWeightBytes, with enough rows per member for the micro-kernel's tiles
// (kRowSplitRows). bf16 too (its packs counted at 2 bytes a value): a member converts its own rows of h_t or dA
// to bf16 each step (run_rows); LSTM T=100 B=64 I=128 H=256 forward 1.09x inference, 1.29x keeping the cache,
// backward 1.06x; I=H=512 1.03x / 0.99x / 1.05x (the same measure, VDPBF16PS).
// Intel's mesh differs: its L3 is slices across the die, slow to one core, and at inference the whole-weight read
// costs more than the meetings once the weights pass the core's L2 (split_by_rows). Units / rows, LSTM T=100 B=64
// I=H=512 forward, 2 threads of a Xeon with AMX (2 MiB L2, family 6 model 167 as KVM reports it), one process
// alternating, medians of 10 rounds' best of 4: inference 1.067x [1.01-1.10] float32 (8 MiB of weights), 1.059x
// [1.04-1.07] bf16 on AMX (4 MiB); training (forward + backward) 1.015x float32, but 0.96x bf16 forward and 0.93x
// backward, so training keeps the rows there.
constexpr int64_t kRowSplitRows = 8;
constexpr int64_t kRowSplitWeightBytes = int64_t(8) << 20;
// ... and with work enough for a static split: at least this many times the per-step threshold
// (parallel_min_flops: 2^25 flops by default, ~0.4 ms of a core), since a member that starts late (tens of us
// in a VM whose other vCPU was idle, far more on a busy host) makes the caller wait. The Conv1D+GRU epoch's
// GRU(16 -> 32) loop (15 MFLOP) split so ran 1.17-1.19x its one-thread time in one run of the busy table.
constexpr long long kRowSplitWork = 32;

// Whether the row split may take weights of weight_bytes (packed, per member): up to kRowSplitWeightBytes, but on
// Intel at inference (keep false) only while they fit a core's L2 (above)
bool split_by_rows(int64_t weight_bytes, bool keep) {
  if (weight_bytes > kRowSplitWeightBytes) return false;
  const long long l2 = core_l2_bytes();
  return keep || !cpu_is_intel() || l2 <= 0 || weight_bytes <= l2;
}

struct LoopTeam {
  int n;         // members wanted
  bool by_rows;  // split by rows of the batch (else by hidden units)
};

// The time loop's team: by rows where that fits (then worth one region for the whole loop: no per-step
// meeting to pay for), else by units (team_size: worth a barrier per step). keep: training (the forward keeps
// its cache, or the backward)
LoopTeam loop_team(int64_t T, int64_t B, int64_t I, int64_t H, int64_t GH, int64_t panel_width, int64_t elem, bool bf16,
                   bool keep) {
  const long long flops = 2 * T * B * GH * (H + I);
  if (B >= 2 * kRowSplitRows && split_by_rows(GH * (H + I) * (bf16 ? 2 : elem), keep) &&
      flops >= kRowSplitWork * parallel_min_flops()) {
    const int n = team_for(flops, B / kRowSplitRows);
    if (n > 1) return {n, true};
  }
  return {team_size(B, bf16_cost_columns(bf16, GH), H, panel_width), false};
}

template <typename T>
T* rows_at(T* p, int64_t offset) {  // p + offset, or null
  return p ? p + offset : p;
}

// The tensors at rows b0 on: (T, B, .) arrays read at a member's rows with the whole batch's step (SeqDims::ldt;
// x and hs at their own strides), (B, .) ones at its rows
template <typename F>
SeqTensors<F> rows_of(const SeqTensors<F>& v, int64_t b0, int64_t I, int64_t H, int64_t GH) {
  SeqTensors<F> r = v;
  r.x = rows_at(v.x, b0 * v.x_ldb), r.h0 = rows_at(v.h0, b0 * H), r.c0 = rows_at(v.c0, b0 * H);
  r.hs = rows_at(v.hs, b0 * v.hs_ldb), r.cs = rows_at(v.cs, b0 * H), r.gates = rows_at(v.gates, b0 * GH);
  r.hn = rows_at(v.hn, b0 * H), r.y = rows_at(v.y, b0 * v.y_ldb), r.x_copy = rows_at(v.x_copy, b0 * I);
  return r;
}

// x's, hs's and cs's strides written out (C order where the caller gave -1)
template <typename F>
SeqTensors<F> with_strides(SeqTensors<F> v, const SeqDims& d) {
  if (v.x_ldt < 0) v.x_ldt = d.B * d.I;
  if (v.x_ldb < 0) v.x_ldb = d.I;
  if (v.hs_ldt < 0) v.hs_ldt = d.B * d.H;
  if (v.hs_ldb < 0) v.hs_ldb = d.H;
  if (v.cs_ldt < 0) v.cs_ldt = d.B * d.H;
  return v;
}

// The buffers of rows [b0, b0 + m.d.B) of a plan copied from the whole batch's, for member tid: the (T, B, .) arrays
// at the rows (read with the whole batch's step, SeqDims::ldt), the (B, .) ones and the scratch at the rows, and the
// member's own preact
template <typename F>
void at_rows(ForwardPlan<F>& m, int64_t b0, int64_t GH, int tid) {
  const int64_t H = m.d.H;
  m.io = rows_of(m.io, b0, m.d.I, H, GH);
  m.preact += tid * m.preact_member, m.hn = rows_at(m.hn, b0 * H);
}

template <typename F>
void at_rows(BackwardPlan<F>& m, int64_t b0, int64_t GH, int) {
  const int64_t H = m.d.H;
  m.saved = rows_of(m.saved, b0, m.d.I, H, GH);
  m.io = {rows_at(m.io.dhs, b0 * m.io.dhs_ldb),
          rows_at(m.io.dhT, b0 * H),
          rows_at(m.io.dcT, b0 * H),
          rows_at(m.io.dx, b0 * m.io.dx_ldb),
          rows_at(m.io.dh0, b0 * H),
          rows_at(m.io.dc0, b0 * H),
          m.io.dhs_ldt,
          m.io.dhs_ldb,
          m.io.dx_ldt,
          m.io.dx_ldb};
  m.da_ih += b0 * GH, m.da_hn = rows_at(m.da_hn, b0 * H);
  m.dh += b0 * H, m.dh_next += b0 * H, m.dc += b0 * H, m.dc_kept += b0 * H;
}

// Member tid of n of a row-split loop: loop(its rows' plan, 0, 1, a barrier of one), as a team of one. The caller
// (tid 0) alone polls `cancel`; another member runs its rows to the end.
template <typename Plan, typename Loop>
auto run_rows(Loop loop, const Plan& P, int tid, int n, int64_t GH, Cancel& cancel) {
  const Slice r(P.d.B, tid, n);
  Cancel never;
  SpinBarrier alone(1);
  Plan m = P;
  Bf16Operands own;  // dtype="bfloat16": the member's rows of x and of the bf16 rows each step refreshes
  if (P.bf16 != nullptr) {
    own = *P.bf16;
    for (bf16_t*& ring : own.ring) ring = rows_at(ring, r.r0 * own.Kh);
    for (bf16_t*& xb : own.x) xb = rows_at(xb, r.r0 * own.Ip);
    m.bf16 = &own;
  }
  m.d.B = r.size(), m.d.ldt = step_rows(P.d), m.d.lengths = rows_at(P.d.lengths, r.r0);
  m.cancel = tid == 0 ? &cancel : &never;
  at_rows(m, r.r0, GH, tid);
  return loop(m, 0, 1, alone);
}

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

// dtype="bfloat16" (bf16, float32 only): the loop's GEMMs read recurrent_bf16.h's operands instead of
// the float32 packs; the GEMMs after the backward loop are gemm_bf16's.
template <typename F>
void recurrent_forward(CellKind cell, const SeqDims& d, const CellParams<F>& p, const SeqTensors<F>& io_in,
                       Cancel& cancel, bool bf16) {
  const int64_t T = d.T, B = d.B, I = d.I, H = d.H, G = gates_per_unit(cell), GH = G * H;
  if (T == 0 || B == 0) return;
  const SeqTensors<F> io = with_strides(io_in, d);
  const IsaKernels<F>& k = isa_kernels<F>(kernels_for(active_isa()));
  const bool gru = cell == CellKind::Gru;
  const int64_t wide = ((H + k.panel_width - 1) / k.panel_width) * k.panel_width;  // H padded to panels
  const bool hn_scratch = gru && io.gates == nullptr;                              // GRU at inference: hn is not saved
  const LoopTeam team = loop_team(T, B, I, H, GH, k.panel_width, sizeof(F), bf16, io.gates != nullptr);
  const int64_t preact_member = lines<F>(B * G * k.panel_width);  // a member's preact: one unit panel's
  Scratch<F> buf =
      scratch<F>(G * wide * (I + H + 1) + wide + lines<F>(GH) + team.n * preact_member + (hn_scratch ? B * H : 0));
  F* w_ih = buf.get();
  F* w_hh = w_ih + G * wide * I;
  F* bias = w_hh + G * wide * H;  // packed b_ih + b_hh, but b_ih alone for the linear-before-reset gate
  F* b_hn = bias + G * wide;      // packed b_hn (GRU)
  F* sum = b_hn + wide;           // (G*H) the bias before packing
  F* preact = sum + lines<F>(GH);
  std::unique_ptr<Bf16Forward> b16;
  if constexpr (std::is_same<F, float>::value)
    if (bf16) b16 = std::make_unique<Bf16Forward>(G, k.panel_width, d, p.w_ih, p.w_hh, io.x, io.x_ldt, io.x_ldb, io.h0);
  if (bf16 && !b16) throw std::invalid_argument("bf16: expected float32 arrays, got float64");
  for (int64_t c = 0; c < GH; ++c) sum[c] = p.b_ih[c] + (gru && c >= 2 * H ? F(0) : p.b_hh[c]);
  k.pack_bias(sum, G, H, bias);
  if (gru) k.pack_bias(p.b_hh + 2 * H, 1, H, b_hn);
  F* hn = hn_scratch ? preact + team.n * preact_member : nullptr;  // GRU at inference: hn's scratch
  ForwardPlan<F> plan{cell, d, w_ih, w_hh, bias, gru ? b_hn : nullptr, io, preact, preact_member, hn, &cancel};
  plan.bf16 = b16 ? b16->operands() : nullptr;
  plan.stream_gates = io.gates != nullptr && T * B * GH * static_cast<int64_t>(sizeof(F)) > kStreamGatesBytes;
  // Each member packs its share of W_ih^T and W_hh^T (member_panels): split by units, the panels its own loop reads,
  // so no one waits and they start in its cache; split by rows, every member reads all of them: one meeting first.
  // Against packing all of them on the calling thread before the region (the other member idle), two builds
  // alternating in fresh processes, 2 threads of a Xeon with AMX, medians of 5-10 rounds: LSTM T=100 B=64 I=H=512
  // bf16 inference on AMX 1.053x [0.99-1.19], float32 training 1.027x [0.99-1.04] (with the backward's packs split
  // alike); float32 inference 0.998x, I=128 H=256 1.016x; the same bits.
  const int64_t np = wide / k.panel_width;
  auto region = [&](int tid, int n, SpinBarrier& barrier) {
    DenormalsFlushed ftz;
    const PanelRange own = member_panels(np, tid, n);
    if (b16) {
      b16->pack(own.p0, own.p1);
    } else {
      k.pack_forward(p.w_ih, G, H, I, own.p0, own.p1, w_ih);
      k.pack_forward(p.w_hh, G, H, H, own.p0, own.p1, w_hh);
    }
    if (team.by_rows) {
      if (n > 1) barrier.wait();
      run_rows(k.forward, plan, tid, n, GH, cancel);
    } else {
      k.forward(plan, tid, n, barrier);
    }
  };
  parallel(team.n, region);
}

template <typename F>
void recurrent_backward(CellKind cell, const SeqDims& d, const CellParams<F>& p, const SeqTensors<F>& saved_in,
                        const SeqGrads<F>& io, const CellGrads<F>& g, Cancel& cancel, bool bf16) {
  const int64_t T = d.T, B = d.B, I = d.I, H = d.H, G = gates_per_unit(cell), GH = G * H;
  const SeqTensors<F> saved = with_strides(saved_in, d);
  if ((T > 1 && (saved.x_ldt != B * I || saved.hs_ldt != B * H || (saved.cs && saved.cs_ldt != B * H))) ||
      (B > 1 && (saved.x_ldb != I || saved.hs_ldb != H)))
    throw std::invalid_argument("recurrent_backward: expected the saved x, hs and cs in C order");
  const bool lstm = cell == CellKind::Lstm, gru = cell == CellKind::Gru;
  if (B == 0) return;
  if (T == 0) {  // the empty recurrence passes the gradient straight through
    std::memcpy(io.dh0, io.dhT, sizeof(F) * B * H);
    if (lstm) std::memcpy(io.dc0, io.dcT, sizeof(F) * B * H);
    return;
  }
  const IsaKernels<F>& k = isa_kernels<F>(kernels_for(active_isa()));
  // dA over the saved gates (each step reads its gates, then overwrites them); RNN saves none
  Scratch<F> da_ih_own = saved.gates ? nullptr : scratch<F>(T * B * GH);
  Scratch<F> da_hn_own = gru ? scratch<F>(T * B * H) : nullptr;
  F* da_ih = saved.gates ? saved.gates : da_ih_own.get();
  F* da_hn = da_hn_own.get();
  const int64_t lbr_col = gru ? 2 * H : GH;  // hidden-side dA: da_ih's columns below, da_hn's from here
  const int64_t np = (H + k.panel_width - 1) / k.panel_width;
  std::unique_ptr<Bf16Backward> b16;
  if constexpr (std::is_same<F, float>::value)
    if (bf16) b16 = std::make_unique<Bf16Backward>(G, k.panel_width, d, p.w_hh, p.w_ih);
  if (bf16 && !b16) throw std::invalid_argument("bf16: expected float32 arrays, got float64");
  Scratch<F> packed = scratch<F>(b16 ? 0 : GH * np * k.panel_width);  // W_hh, packed in the region below
  // the products of the GEMMs after the loop (not the bias sums): bf16 operands when bf16 (Bm = W_ih: packed once)
  auto product = [&](bool ta, int64_t M, int64_t N, int64_t K, const F* A, int64_t lda, const F* Bm, int64_t ldb,
                     F beta, F* C, int64_t ldc) {
    if constexpr (std::is_same<F, float>::value)
      if (b16) {
        if (Bm == p.w_ih) return gemm_bf16_packed(ta, M, N, K, A, lda, b16->w_ih_for_dx(), beta, C, ldc);
        return gemm_bf16(ta, false, M, N, K, A, lda, Bm, ldb, beta, C, ldc);
      }
    gemm<F>(ta, false, M, N, K, F(1), A, lda, Bm, ldb, beta, C, ldc);
  };
  // The GEMMs after the loop run in chunks of Tc time steps, so that a cancellation lands between
  // two of them; the weight gradients are summed into `sums` (below) and added into g once, after every
  // chunk ran.
  // VDPBF16PS: chunks of 4x the flops (~2x the time of float32's, far within the ~50 ms of a Ctrl-C): each
  // chunk reads and writes the dW sums once more, which costs a bf16 chunk of few rows more than its products
  const bool fast_bf16 = b16 != nullptr && bf16_path_native(active_bf16_path());
  const int64_t chunk_flops =
      b16 ? kPostChunkFlopsBf16 * (fast_bf16 ? 4 : 1) : kPostChunkFlops * 4 / static_cast<int64_t>(sizeof(F));
  // and few enough rows that a weight unit's three products over a chunk (dW_ih, db, dW_hh) find its columns
  // of dA, H_prev and X in cache after the first (kPostChunkBytes; never fewer than kPostChunkRows, or
  // kPostChunkRowsSpilled for large weights). Neither bound depends on the team.
  const int64_t cached_rows = kPostChunkBytes / static_cast<int64_t>(sizeof(F)) / (GH + H + I);
  const bool spilled = GH * (I + H) * static_cast<int64_t>(sizeof(F)) > kPostSpillBytes;
  const int64_t min_rows = spilled ? kPostChunkRowsSpilled : kPostChunkRows;
  const int64_t Tc = std::max<int64_t>(
      1, std::min({T, chunk_flops / (B * 2 * GH * (2 * I + H)), std::max(min_rows, cached_rows) / B}));
  const int64_t chunks = (T + Tc - 1) / Tc;
  // Few input features (the adding problem's I = 2), where a BLAS call of I columns runs far below its speed:
  // the loop writes dX, each step's rows while its dA is in cache (the ISA's narrow product, from W_ih^T), and
  // dW_ih with the bias sums is one narrow pass over dA after it. LSTM(2->64) T=200 B=50, 2 threads of an EPYC,
  // medians of 150 backward calls in alternating blocks: the BLAS's products after the loop 6.6-6.9 ms, the narrow
  // ones there 6.5-6.8, dX in the loop 6.2-6.4 (dA, 10 MB, read once less)
  const bool narrow = !b16 && I <= kNarrowInputs;
  // else float operands: dX's W_ih packed once as the ISA's panels (gemm_packed; a BLAS call would pack it again
  // for every unit of rows)
  const bool x_packed = !b16 && !narrow;
  Scratch<F> w_ih_packed = scratch<F>(x_packed ? GH * ((I + k.panel_width - 1) / k.panel_width) * k.panel_width : 0);
  const int64_t BH = lines<F>(B * H);  // each buffer on a line
  // the weight-gradient sums, one set per part of the time chunks (two where they are small: kPostSplitBytes)
  const int parts =
      !b16 && !spilled && chunks >= 2 && GH * (I + H) * static_cast<int64_t>(sizeof(F)) <= kPostSplitBytes ? 2 : 1;
  const int64_t sums_size = lines<F>(GH * I) + lines<F>(GH * H) + 2 * lines<F>(GH);
  Scratch<F> state = scratch<F>(4 * BH + sums_size + lines<F>(Tc * B) + (narrow ? GH * I : 0));
  Scratch<F> second_sums = scratch<F>(parts > 1 ? sums_size : 0);
  F *dh = state.get(), *dh_next = dh + BH, *dc = dh_next + BH, *dc_kept = dc + BH, *ones = dc_kept + BH + sums_size;
  struct WeightSums {  // dW_ih (G*H, I), dW_hh (G*H, H), db_ih and db_hh (G*H)
    F *w_ih, *w_hh, *b_ih, *b_hh;
  };
  auto sums_at = [&](F* at) {
    return WeightSums{at, at + lines<F>(GH * I), at + lines<F>(GH * I) + lines<F>(GH * H),
                      at + lines<F>(GH * I) + lines<F>(GH * H) + lines<F>(GH)};
  };
  const WeightSums sums[2] = {sums_at(dc_kept + BH), sums_at(parts > 1 ? second_sums.get() : dc_kept + BH)};
  std::memcpy(dh, io.dhT, sizeof(F) * B * H);
  if (lstm) std::memcpy(dc, io.dcT, sizeof(F) * B * H);
  for (int64_t r = 0; r < Tc * B; ++r) ones[r] = F(1);
  F* w_ih_t = ones + lines<F>(Tc * B);  // narrow: W_ih^T (I, G*H)
  if (narrow)
    for (int64_t c = 0; c < GH; ++c)
      for (int64_t i = 0; i < I; ++i) w_ih_t[i * GH + c] = p.w_ih[c * I + i];
  SeqGrads<F> grads_in = io;  // dhs's strides written out
  if (grads_in.dhs_ldt < 0) grads_in.dhs_ldt = B * H;
  if (grads_in.dhs_ldb < 0) grads_in.dhs_ldb = H;
  if (grads_in.dx_ldt < 0) grads_in.dx_ldt = B * I;
  if (grads_in.dx_ldb < 0) grads_in.dx_ldb = I;
  BackwardPlan<F> plan{cell, d, packed.get(), saved, grads_in, da_ih, da_hn, dh, dh_next, dc, dc_kept, &cancel};
  plan.bf16 = b16 ? b16->operands() : nullptr;
  plan.w_ih_t = narrow ? w_ih_t : nullptr;
  const int64_t first = d.reverse ? T - 1 : 0;  // the time index whose h_prev is h0
  auto h_prev_rows = [&](int64_t t) {           // h_prev of time index t (!= first) and on: rows of hs
    return saved.hs + (d.reverse ? t + 1 : t - 1) * B * H;
  };

  // A weight gradient's product, C (m, N) (+)= A^T R over K rows (R: rows of H_prev for dW_hh, of X for dW_ih): the
  // ISA's gemm_tn (which packs a block of each, as a BLAS does; the figures below are of its earlier in-place
  // tiles), or gemm_bf16's for bf16.
  // dW_hh (the adding problem's backward, LSTM(2->64) T=200 B=50, 2 threads of an EPYC: 6.5 -> 6.1 ms, medians of 100
  // calls alternating with the BLAS's products); dW_ih (backward alone, medians of the best of 8 calls in 10-16
  // rounds alternating in one process, the same EPYC, against the BLAS: LSTM T=50 B=32 I=32 H=64 1.053x, GRU 1.060x,
  // RNN T=100 B=64 I=64 H=128 1.066x, I=128 H=256 1.038-1.049x; LSTM I=128 H=256 0.991-0.995x, GRU 1.009-1.018x).
  // But where the weight gradients spill (kPostSpillBytes), the BLAS, which packs both operands first, wins (the
  // same measure, dW_hh: LSTM I=H=512 1.01-1.09x in four runs, I=H=384 1.04x, GRU I=H=512 1.02x; where they do
  // not: LSTM H=256 1.00x, T=50 B=32 I=32 H=64 0.95x). With the packing gemm_tn, on a Xeon with AMX: LSTM I=H=512
  // training equal within the noise (gemm_tn 1.009x [0.987-1.025] against the BLAS there), so the BLAS stays.
  // And col_sums (m), unless null, (+)= A^T 1, the bias gradient: summed by gemm_tn as it packs A (each column's rows
  // in order, however the units cut the columns: the same bits on any team), or by a BLAS product with a ones vector,
  // whose order depends on the column's place in the unit (bf16, spilled). Against that product after gemm_tn, two
  // builds alternating, T=100 B=64 I=128 H=256 training: LSTM 1.005x, GRU 0.999x, RNN 0.992x (noisy).
  auto weight_product = [&](int64_t m, int64_t N, int64_t K, const F* A, int64_t lda, const F* R, F beta, F* C,
                            F* col_sums) {
    if (b16 || spilled) {
      product(true, m, N, K, A, lda, R, N, beta, C, N);
      if (col_sums != nullptr) gemm<F>(false, false, 1, m, K, F(1), ones, Tc * B, A, lda, beta, col_sums, m);
    } else {
      k.gemm_tn(m, N, K, A, lda, R, N, C, N, beta != F(0), col_sums);
    }
  };
  // Time indices [t0, t1): s.w_hh[c0:c1] (+)= dA_hh[:, c0:c1]^T H_prev and, for the linear-before-
  // reset gate, s.b_hh[c0:c1] (+)= its column sums (elsewhere dA_hh = dA_ih, whose sums s.b_ih
  // has); dA_hh is read from da_ih (lda G*H) below lbr_col and from da_hn (lda H) from there on.
  // beta 0: the first chunk of a part overwrites its sums.
  auto hidden_side = [&](const WeightSums& s, bool lbr_part, int64_t c0, int64_t c1, int64_t t0, int64_t t1, F beta) {
    const F* A = lbr_part ? da_hn + (c0 - lbr_col) : da_ih + c0;
    const int64_t m = c1 - c0, lda = lbr_part ? H : GH;
    F* C = s.w_hh + c0 * H;
    F* col_sums = lbr_part ? s.b_hh + c0 : nullptr;  // elsewhere s.b_ih has them
    F b = beta;
    int64_t a0 = t0, a1 = t1;  // the indices whose h_prev is a row of hs
    if (first >= t0 && first < t1) {
      weight_product(m, H, B, A + first * B * lda, lda, saved.h0, b, C, col_sums);
      b = F(1);
      if (first == t0)
        a0 = t0 + 1;  // forward: first = 0 opens the first chunk
      else
        a1 = t1 - 1;  // reverse: first = T-1 closes the last chunk
    }
    if (a1 > a0) weight_product(m, H, (a1 - a0) * B, A + a0 * B * lda, lda, h_prev_rows(a0), b, C, col_sums);
  };
  // Every BLAS call of this kernel runs on one thread: inside a member of the team, or on the calling
  // thread when the work is too small for a team (a BLAS pool woken for it costs more than it gains,
  // and on a busy machine far more).
  BlasOneThread blas_single;
  const LoopTeam team = loop_team(T, B, I, H, GH, k.panel_width, sizeof(F), b16 != nullptr, true);  // the time loop's
  int want = team.n;
  // when the loop runs on one thread, the GEMMs after it (far more work per meeting) may still take a team
  const int post_want = want > 1 ? want : team_for(2 * T * B * GH * (2 * I + H), GH / 64);
  const int free = post_want > 1 ? free_threads() : 1;  // the cores the machine has free now
  want = std::min(want, free);
  const int post_n = std::min(post_want, free);
  // The post-loop GEMMs as units a WorkQueue hands out (a member that is descheduled takes fewer):
  // first the weight-gradient units (gate rows [r0, r1) over every chunk of time steps of its part: the
  // sums are one unit's own), then the dX units (rows of one chunk; none when narrow). A unit's result does not depend
  // on who runs it. The weight-gradient units are cut for the team the settings give (post_want), not for the one
  // the machine's load leaves (post_n): the BLAS's bias sums (1 x m products; bf16 and spilled sums only, since
  // gemm_tn sums them itself) sum a column in an order that depends on its place in the unit's m, so a cut that
  // followed the load changed their last bits from call to call (GRU T=20 B=9 I=130 H=200, once in 8 runs: 1.4e-6).
  // dX's rows sum in the same order however cut.
  // One weight-gradient unit a member: each unit packs the rows of H_prev and X it multiplies (gemm_tn's panels, the
  // BLAS's copies), so two a member packed them twice as often. One against two, training, one process alternating,
  // 2 threads of a Xeon with AMX, medians of 8-20 rounds: LSTM T=100 B=64 I=H=512 1.033x [1.00-1.05] (bf16 1.026x),
  // I=128 H=256 LSTM 1.009x, GRU 1.021x, RNN 1.026x; the adding problem and T=50 B=32 H=64 0.999-1.017x.
  // the weight-gradient units: row_units in each part; dX's: per chunk, so already many
  const int64_t row_units = std::max<int64_t>(1, post_units(post_want, GH, 1) / parts), w_units = parts * row_units,
                x_units = narrow ? 0 : post_units(post_n, Tc * B, 1);
  const int64_t queue_size = w_units + chunks * x_units;
  WorkQueue queue(queue_size);
  int64_t polls = 0;  // the leader's polls after the loop, numbered on from the loop's steps
  auto poll = [&](int tid) {
    if (tid == 0) cancel.poll(T + polls++);
    return !cancel.cancelled();
  };
  auto run_unit = [&](int tid, int64_t u) {
    if (u < w_units) {
      const int64_t part = u / row_units, first_t = part * chunks / parts * Tc;  // its chunks: [first_t, end_t)
      const int64_t end_t = std::min(T, (part + 1) * chunks / parts * Tc);
      const WeightSums& s = sums[part];
      const Slice gr(GH, static_cast<int>(u % row_units), static_cast<int>(row_units));
      for (int64_t t0 = first_t; t0 < end_t && poll(tid); t0 += Tc) {  // a poll per chunk: a unit may run for long
        const int64_t t1 = std::min(T, t0 + Tc), r0 = t0 * B, rows = (t1 - t0) * B;
        const F beta = t0 == first_t ? F(0) : F(1);
        const F* A = da_ih + r0 * GH + gr.r0;
        const int64_t m = gr.size();
        if (narrow) {  // dW_ih and the column sums in one pass over A
          k.gemm_tn_narrow(m, I, rows, A, GH, saved.x + r0 * I, I, s.w_ih + gr.r0 * I, I, s.b_ih + gr.r0, t0 > first_t);
        } else {
          weight_product(m, I, rows, A, GH, saved.x + r0 * I, beta, s.w_ih + gr.r0 * I, s.b_ih + gr.r0);
        }
        if (gr.r0 < lbr_col) hidden_side(s, false, gr.r0, std::min(gr.r1, lbr_col), t0, t1, beta);
        if (gr.r1 > lbr_col) hidden_side(s, true, std::max(gr.r0, lbr_col), gr.r1, t0, t1, beta);
      }
      return;
    }
    const int64_t chunk = (u - w_units) / x_units, t0 = chunk * Tc, rows = (std::min(T, t0 + Tc) - t0) * B;
    const Slice own(rows, static_cast<int>((u - w_units) % x_units), static_cast<int>(x_units));
    auto dx_rows = [&](int64_t r, int64_t m, F* C, int64_t ldc) {  // dX = dA_ih W_ih, m rows from row r of dA
      if (x_packed)
        k.gemm_packed(m, I, GH, da_ih + r * GH, GH, w_ih_packed.get(), C, ldc);
      else
        product(false, m, I, GH, da_ih + r * GH, GH, p.w_ih, I, F(0), C, ldc);
    };
    const int64_t r0 = t0 * B + own.r0, r1 = t0 * B + own.r1;
    if (grads_in.dx_ldt == B * grads_in.dx_ldb)  // dx's rows one matrix (C order): all of them in one product
      return dx_rows(r0, r1 - r0, io.dx + r0 * grads_in.dx_ldb, grads_in.dx_ldb);
    for (int64_t r = r0; r < r1;) {  // else a step's rows at a time (the time-major view of a batch-first dx)
      const int64_t t = r / B, b = r % B, m = std::min(r1, (t + 1) * B) - r;
      dx_rows(r, m, io.dx + t * grads_in.dx_ldt + b * grads_in.dx_ldb, grads_in.dx_ldb);
      r += m;
    }
  };
  std::atomic<int64_t> units_done{0};
  auto take_units = [&](int tid) {
    for (int64_t u; queue.take(u); units_done.fetch_add(1, std::memory_order_acq_rel))
      if (poll(tid)) run_unit(tid, u);
    // the leader waits for the units others run and keeps polling (a unit may run for seconds and
    // checks for a stop at each of its chunks): a bounded spin, then naps of 50 us
    for (int spins = 0; tid == 0 && units_done.load(std::memory_order_acquire) < queue_size && poll(tid); ++spins) {
      if (spins < 2000)
        pause_briefly();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  };
  auto accumulate = [&](int64_t c0, int64_t c1) {  // every unit ran: add the sums of gate rows [c0, c1) into g
    for (int part = 0; part < parts; ++part) {     // part by part, in order
      const WeightSums& s = sums[part];
      for (int64_t c = c0; c < c1; ++c) {
        for (int64_t i = 0; i < I; ++i) g.w_ih[c * I + i] += s.w_ih[c * I + i];
        for (int64_t j = 0; j < H; ++j) g.w_hh[c * H + j] += s.w_hh[c * H + j];
        g.b_ih[c] += s.b_ih[c];
        g.b_hh[c] += c < lbr_col ? s.b_ih[c] : s.b_hh[c];
      }
    }
  };
  // Each member packs its share of W_hh (split by units: the panels its own loop reads, as the forward's) and of
  // W_ih for dX (read by the GEMMs after the loop, after at least one meeting); bf16 alike (Bf16Backward::pack:
  // against its packs on the calling thread, LSTM training 1.003x at I=H=512, 1.018x at I=128 H=256; same bits).
  const int64_t np_x = (I + k.panel_width - 1) / k.panel_width;
  auto pack_share = [&](int tid, int n) {
    const PanelRange own = member_panels(np, tid, n), own_x = member_panels(b16 ? b16->x_panels() : np_x, tid, n);
    if (b16) return b16->pack(own.p0, own.p1, own_x.p0, own_x.p1);
    k.pack_backward(p.w_hh, GH, H, own.p0, own.p1, packed.get());
    if (x_packed) k.pack_backward(p.w_ih, GH, I, own_x.p0, own_x.p1, w_ih_packed.get());
  };
  auto region = [&](int tid, int n, SpinBarrier& barrier) {
    DenormalsFlushed ftz;
    pack_share(tid, n);
    if (team.by_rows) {  // each member its rows' loop, then one meeting: every dA written (or the work stopped)
      if (n > 1) barrier.wait();  // every panel packed
      run_rows(k.backward, plan, tid, n, GH, cancel);
      if (n == 1) return;  // one thread: the GEMMs below
      barrier.wait();
      if (cancel.cancelled()) return;
    } else if (!k.backward(plan, tid, n, barrier) || n == 1) {  // ends after a barrier that follows the last
      return;                                                   // dA write; one thread: the GEMMs below
    }
    take_units(tid);
    barrier.wait();                  // every unit done, or stopped
    if (cancel.cancelled()) return;  // the leader polls only before this barrier: all agree
    const Slice gr(GH, tid, n);
    accumulate(gr.r0, gr.r1);
  };
  if (parallel(want, region) > 1 || cancel.cancelled()) return;
  // the time loop ran on one thread: the GEMMs after it in a region of their own, whose members come if
  // they can (no meetings: parallel_optional)
  auto post = [&](int tid) {
    DenormalsFlushed ftz;
    take_units(tid);
  };
  parallel_optional(post_n, post);
  if (!cancel.cancelled()) accumulate(0, GH);
}

#define PYRNN_RECURRENT_INSTANTIATE(F)                                                                              \
  template void recurrent_forward<F>(CellKind, const SeqDims&, const CellParams<F>&, const SeqTensors<F>&, Cancel&, \
                                     bool);                                                                         \
  template void recurrent_backward<F>(CellKind, const SeqDims&, const CellParams<F>&, const SeqTensors<F>&,         \
                                      const SeqGrads<F>&, const CellGrads<F>&, Cancel&, bool);
PYRNN_RECURRENT_INSTANTIATE(float)
PYRNN_RECURRENT_INSTANTIATE(double)
#undef PYRNN_RECURRENT_INSTANTIATE

}  // namespace pyrnn
