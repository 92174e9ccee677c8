// The one time loop every recurrent cell shares, forward and BPTT backward.
//
// Legend: T = time, B = batch, I = input, H = hidden, G = gates per unit.
// Every array is row-major and time-major: x (T,B,I), hs (T,B,H), gates (T,B,G*H).
// Gate packing is PyTorch's: LSTM i|f|g|o, GRU r|z|n.
//
// A Cell supplies the pointwise maths of one step (see rnn.h, lstm.h, gru.h):
//   static constexpr int64_t G;                 gates per unit
//   static constexpr bool kFoldHiddenBias;      b_hh folds into the input projection
//   static constexpr bool kSeparateHiddenGrad;  dA differs on the input and hidden sides (GRU)
//   static constexpr bool kCellState;           carries c (LSTM)
//   forward_step(B, H, StepView)  and  backward_step(B, H, StepView, StepGrad)
//
// Forward:  XP = X W_ih^T + b  (one GEMM over all T*B rows), then per step
//           GH = h_prev W_hh^T (one GEMM) and one fused pointwise step.
// Backward: per step one fused pointwise step and dh_prev = direct + dA_hh W_hh (one GEMM);
//           after the loop dX = dA_ih W_ih, dW_ih += dA_ih^T X, dW_hh += dA_hh^T H_prev,
//           db += column sums, one GEMM or reduction each.
// Scratch is allocated once per call, never per time step. These functions know
// nothing of Python; the bindings check every shape before calling them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "../common/gemm.h"

namespace pyrnn {

struct SeqDims {
  int64_t T, B, I, H;
  bool reverse;
  const int64_t* lengths;  // (B,) in [0, T], or nullptr: every step active (see active())
};

// Time index t is active for sample b iff t < lengths[b]. At an inactive index the
// state is carried unchanged and the saved gates are 0; backward passes dh and dc
// straight through it. So the final state is the one at the last valid step, the
// reverse direction starts at t = lengths[b] - 1 from h0, and length 0 keeps h0.
inline bool active(const SeqDims& d, int64_t t, int64_t b) { return d.lengths == nullptr || t < d.lengths[b]; }

template <typename F>
struct CellParams {  // PyTorch layout: w_ih (G*H, I), w_hh (G*H, H), b_ih and b_hh (G*H)
  const F *w_ih, *w_hh, *b_ih, *b_hh;
};

template <typename F>
struct CellGrads {  // same shapes as CellParams; added into
  F *w_ih, *w_hh, *b_ih, *b_hh;
};

template <typename F>
struct SeqTensors {  // forward inputs, outputs and the saved cache (null where a cell has none;
                     // forward also takes null gates/aux for inference: nothing is kept for backward)
  const F* x;        // (T, B, I)
  const F* h0;       // (B, H)
  const F* c0;       // (B, H)   LSTM
  F* hs;             // (T, B, H)
  F* cs;             // (T, B, H) LSTM
  F* gates;          // (T, B, G*H) activated gates, LSTM and GRU
  F* aux;            // (T, B, H) LSTM: tanh(c_t); GRU: W_hn h_prev + b_hn
};

template <typename F>
struct SeqGrads {    // backward inputs and outputs
  const F* dhs;      // (T, B, H)
  const F* dhT;      // (B, H)
  const F* dcT;      // (B, H) LSTM
  F* dx;             // (T, B, I)
  F* dh0;            // (B, H)
  F* dc0;            // (B, H) LSTM
};

template <typename F>
struct StepView {    // one time step, every pointer (B, .) row-major
  const F* xp;       // (B, G*H) input projection, biases added
  F* gh;             // (B, G*H) recurrent projection h_prev W_hh^T
  const F* b_hh;     // (G*H) for cells that do not fold it (GRU)
  const F* h_prev;
  const F* c_prev;
  F* h;
  F* c;
  F* gates;
  F* aux;
};

template <typename F>
struct StepGrad {
  const F* dh;       // (B, H) dL/dh_t carried from the later step
  const F* dhs;      // (B, H) dL/dh_t from the layer above
  F* dc;             // (B, H) dL/dc_t in, dL/dc_{t-1} out (LSTM)
  F* da_ih;          // (B, G*H) dL/d(pre-activation), input side
  F* da_hh;          // (B, G*H) hidden side (== da_ih unless kSeparateHiddenGrad)
  F* dh_direct;      // (B, H) the part of dL/dh_{t-1} that bypasses W_hh
};

// time index of processing step s (the reverse direction reads t = T-1 .. 0)
inline int64_t time_index(const SeqDims& d, int64_t s) { return d.reverse ? d.T - 1 - s : s; }

template <class Cell, typename F>
void seq_forward(const SeqDims& d, const CellParams<F>& p, const SeqTensors<F>& io) {
  const int64_t T = d.T, B = d.B, I = d.I, H = d.H, GH = Cell::G * H;
  if (T == 0 || B == 0) return;
  // scratch, allocated once per call and left uninitialised (every element is written before it is read)
  std::unique_ptr<F[]> xp(new F[static_cast<size_t>(T * B * GH)]), gh(new F[static_cast<size_t>(B * GH)]);
  // inference (no cache asked for): the cells write their gates into one step's scratch instead
  const bool keep = io.gates != nullptr;
  std::unique_ptr<F[]> step_gates(keep ? nullptr : new F[static_cast<size_t>(B * GH)]);
  std::unique_ptr<F[]> step_aux(keep ? nullptr : new F[static_cast<size_t>(B * H)]);
  // XP = X W_ih^T + b_ih (+ b_hh): one GEMM for every step
  for (int64_t r = 0; r < T * B; ++r)
    for (int64_t k = 0; k < GH; ++k)
      xp[r * GH + k] = p.b_ih[k] + (Cell::kFoldHiddenBias ? p.b_hh[k] : F(0));
  gemm<F>(false, true, T * B, GH, I, F(1), io.x, I, p.w_ih, I, F(1), xp.get(), GH);

  const F* h_prev = io.h0;
  const F* c_prev = io.c0;
  for (int64_t s = 0; s < T; ++s) {
    const int64_t t = time_index(d, s);
    gemm<F>(false, true, B, GH, H, F(1), h_prev, H, p.w_hh, H, F(0), gh.get(), GH);  // GH = h_prev W_hh^T
    StepView<F> v{xp.get() + t * B * GH, gh.get(), p.b_hh, h_prev, c_prev,
                  io.hs + t * B * H,
                  Cell::kCellState ? io.cs + t * B * H : nullptr,
                  keep ? io.gates + t * B * GH : step_gates.get(),
                  keep ? (io.aux ? io.aux + t * B * H : nullptr) : step_aux.get()};
    Cell::forward_step(B, H, v);
    if (d.lengths != nullptr)  // past a sample's length: carry its state, zero its cache
      for (int64_t b = 0; b < B; ++b) {
        if (active(d, t, b)) continue;
        std::copy(v.h_prev + b * H, v.h_prev + (b + 1) * H, v.h + b * H);
        if (Cell::kCellState) std::copy(v.c_prev + b * H, v.c_prev + (b + 1) * H, v.c + b * H);
        if (v.gates) std::fill(v.gates + b * GH, v.gates + (b + 1) * GH, F(0));
        if (v.aux) std::fill(v.aux + b * H, v.aux + (b + 1) * H, F(0));
      }
    h_prev = v.h;
    c_prev = v.c;
  }
}

template <class Cell, typename F>
void seq_backward(const SeqDims& d, const CellParams<F>& p, const SeqTensors<F>& saved, const SeqGrads<F>& io,
                  const CellGrads<F>& g) {
  const int64_t T = d.T, B = d.B, I = d.I, H = d.H, GH = Cell::G * H;
  if (B == 0) return;
  if (T == 0) {  // the empty recurrence passes the gradient straight through
    std::copy(io.dhT, io.dhT + B * H, io.dh0);
    if (Cell::kCellState) std::copy(io.dcT, io.dcT + B * H, io.dc0);
    return;
  }
  // scratch, allocated once per call, uninitialised: every step writes all of its rows
  std::unique_ptr<F[]> da_ih_own(new F[static_cast<size_t>(T * B * GH)]);
  std::unique_ptr<F[]> da_hh_own(Cell::kSeparateHiddenGrad ? new F[static_cast<size_t>(T * B * GH)] : nullptr);
  F* da_ih = da_ih_own.get();
  F* da_hh = Cell::kSeparateHiddenGrad ? da_hh_own.get() : da_ih;
  std::vector<F> dh(io.dhT, io.dhT + B * H), dh_next(static_cast<size_t>(B * H));
  std::vector<F> dc(static_cast<size_t>(B * H), F(0)), dc_kept(d.lengths ? static_cast<size_t>(B * H) : 0);
  if (Cell::kCellState) std::copy(io.dcT, io.dcT + B * H, dc.begin());

  for (int64_t s = T - 1; s >= 0; --s) {
    const int64_t t = time_index(d, s);
    const int64_t tp = d.reverse ? t + 1 : t - 1;  // time index of the previous step
    StepView<F> v{nullptr, nullptr, p.b_hh,
                  s == 0 ? saved.h0 : saved.hs + tp * B * H,
                  Cell::kCellState ? (s == 0 ? saved.c0 : saved.cs + tp * B * H) : nullptr,
                  saved.hs + t * B * H,
                  Cell::kCellState ? saved.cs + t * B * H : nullptr,
                  saved.gates ? saved.gates + t * B * GH : nullptr,
                  saved.aux ? saved.aux + t * B * H : nullptr};
    StepGrad<F> sg{dh.data(), io.dhs + t * B * H, dc.data(), da_ih + t * B * GH, da_hh + t * B * GH,
                   dh_next.data()};
    if (d.lengths != nullptr) std::copy(dc.begin(), dc.end(), dc_kept.begin());
    Cell::backward_step(B, H, v, sg);
    if (d.lengths != nullptr)  // a carried step passes dh and dc straight through
      for (int64_t b = 0; b < B; ++b) {
        if (active(d, t, b)) continue;
        std::fill(sg.da_ih + b * GH, sg.da_ih + (b + 1) * GH, F(0));
        std::fill(sg.da_hh + b * GH, sg.da_hh + (b + 1) * GH, F(0));
        for (int64_t j = 0; j < H; ++j) sg.dh_direct[b * H + j] = sg.dh[b * H + j] + sg.dhs[b * H + j];
        std::copy(dc_kept.begin() + b * H, dc_kept.begin() + (b + 1) * H, dc.begin() + b * H);
      }
    // dh_{t-1} = dh_direct + dA_hh W_hh
    gemm<F>(false, false, B, H, GH, F(1), da_hh + t * B * GH, GH, p.w_hh, H, F(1), dh_next.data(), H);
    dh.swap(dh_next);
  }
  std::copy(dh.begin(), dh.end(), io.dh0);
  if (Cell::kCellState) std::copy(dc.begin(), dc.end(), io.dc0);

  // After the loop: dX = dA_ih W_ih;  dW_ih += dA_ih^T X;  dW_hh += dA_hh^T H_prev (h0 part + hs part)
  gemm<F>(false, false, T * B, I, GH, F(1), da_ih, GH, p.w_ih, I, F(0), io.dx, I);
  gemm<F>(true, false, GH, I, T * B, F(1), da_ih, GH, saved.x, I, F(1), g.w_ih, I);
  const int64_t first = d.reverse ? T - 1 : 0;  // the step whose h_prev is h0
  gemm<F>(true, false, GH, H, B, F(1), da_hh + first * B * GH, GH, saved.h0, H, F(1), g.w_hh, H);
  if (T > 1) {
    // forward: h_prev(t) = hs[t-1] for t >= 1; reverse: h_prev(t) = hs[t+1] for t <= T-2
    const F* da_rest = d.reverse ? da_hh : da_hh + B * GH;
    const F* h_rest = d.reverse ? saved.hs + B * H : saved.hs;
    gemm<F>(true, false, GH, H, (T - 1) * B, F(1), da_rest, GH, h_rest, H, F(1), g.w_hh, H);
  }
  for (int64_t r = 0; r < T * B; ++r)
    for (int64_t k = 0; k < GH; ++k) {
      g.b_ih[k] += da_ih[r * GH + k];
      g.b_hh[k] += da_hh[r * GH + k];
    }
}

}  // namespace pyrnn
