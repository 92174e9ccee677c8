// The data of the recurrent kernel family: shapes, weights, sequences, one step's views.
//
// Legend: B = batch, T = time, I = input, H = hidden, G = gates per unit (1 RNN, 4 LSTM, 3 GRU).
// Gate packing is PyTorch's: LSTM i|f|g|o, GRU r|z|n. Every array is row-major and time-major:
// x (T,B,I), hs (T,B,H), gates (T,B,G*H); the forward reads x and writes hs at any strides between
// rows (SeqTensors).
//
// Names (the same in csrc/ and pyrnn/backends/):
//   preact   x_t W_ih^T + h_{t-1} W_hh^T + b_ih + b_hh: the gates' pre-activations
//   hproj    h_{t-1} W_hh^T + b_hh: the hidden projection
//   tanh_c   LSTM's tanh(c_t): saved by the other backends, recomputed from c_t by the backward here
//   hn       GRU's saved W_hn h_{t-1} + b_hn: the n slice of hproj, which r multiplies before
//            the input side is added (GRU's n is a *linear-before-reset* gate, as oneDNN and
//            cuDNN call it: its preact is x_t W_in^T + b_in + r * hn)
//
// A Cell supplies the pointwise maths of one step (see rnn.inc, lstm.inc, gru.inc):
//   static constexpr int64_t G;                   gates per unit
//   static constexpr int64_t kLinearBeforeReset;  the linear-before-reset gate (GRU's n), or -1;
//                                                 only there do dA's input and hidden sides differ
//   static constexpr bool kCellState;             carries c (LSTM)
//   forward_step(B, H, j0, j1, StepView)  and  backward_step(B, H, j0, j1, StepView, StepGrad)
//
// How a layer-direction is computed: recurrent.cpp (the driver: packing, the thread team, the
// BLAS GEMMs after the backward loop) and loop.inc (the time loops, compiled once per ISA).
// Nothing here knows of Python; the bindings check every shape before a kernel runs.
#pragma once

#include <cstdint>

namespace pyrnn {

struct SeqDims {
  int64_t T, B, I, H;
  bool reverse;
  const int64_t* lengths;  // (B,) in [0, T], or nullptr: every step active (see active())
  int64_t ldt = 0;         // rows between two time steps of every (T, ., .) array; 0: B. A member of a
                           // batch-split team runs rows [b0, b0 + B) of a batch of ldt (recurrent.cpp)
};

// The rows between two time steps of x, hs, gates, ... (the whole batch's).
inline int64_t step_rows(const SeqDims& d) { return d.ldt > 0 ? d.ldt : d.B; }

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
struct SeqTensors {              // forward inputs and the cache it writes (null where a cell has none;
                                 // forward also takes null gates, hn: inference keeps no cache)
  const F* x;                    // (T, B, I), at the strides x_ld below
  const F* h0;                   // (B, H)
  const F* c0;                   // (B, H)     LSTM
  F* hs;                         // (T, B, H), at the strides hs_ld below
  F* cs;                         // (T, B, H)  LSTM
  F* gates;                      // (T, B, G*H) activated gates, LSTM and GRU
  F* hn;                         // (T, B, H)  GRU
  F* y = nullptr;                // (T, B, H) or null: hs written again here, rows y_ldb and steps y_ldt apart (a view
  int64_t y_ldt = 0, y_ldb = 0;  // of a batch-first output, say; forward only)
  F* x_copy = nullptr;           // (T, B, I) in C order, or null: x copied here as the forward reads it (training on
                                 // a view of a batch-first x: the backward reads this copy; forward only)
  // Elements between two time steps and between two rows of x and of hs; -1: C order. The forward reads x and
  // writes hs at any of them (at inference, views of a batch-first input and output, say); the backward reads
  // them in C order (its GEMMs take the (T*B, .) rows of x and hs as one matrix).
  int64_t x_ldt = -1, x_ldb = -1, hs_ldt = -1, hs_ldb = -1;
  // Elements between two time steps of cs; -1: B*H. 0 at inference without lengths: one (B, H) c, updated in
  // place (a unit's c_t is computed from its c_{t-1} alone, by the thread that owns the unit)
  int64_t cs_ldt = -1;
};

template <typename F>
struct SeqGrads {        // backward inputs and outputs
  const F* dhs;          // (T, B, H) at the strides below (a view of a batch-first array, say)
  const F* dhT;          // (B, H)
  const F* dcT;          // (B, H) LSTM
  F* dx;                 // (T, B, I) at the strides below
  F* dh0;                // (B, H)
  F* dc0;                // (B, H) LSTM
  int64_t dhs_ldt = -1;  // elements between two time steps of dhs (0: one step repeated); -1: C order
  int64_t dhs_ldb = -1;  // elements between two rows of dhs (0: one row repeated); -1: H
  int64_t dx_ldt = -1;   // elements between two time steps of dx; -1: B*I (a view of a batch-first dx, say)
  int64_t dx_ldb = -1;   // elements between two rows of dx; -1: I
};

template <typename F>
struct StepView {   // one time step, every pointer (B, .) row-major, h_prev's rows ldp apart and h's ldh
  const F* preact;  // forward: one unit panel's preact, units [j0, j1) of the step: gate g of unit j of row b at
                    // b * pre_ld + g * pre_gs + (j - j0) (the linear-before-reset gate's: its input side
                    // x_t W_in^T + b_in alone)
  const F* h_prev;
  const F* c_prev;
  F* h;
  F* c;
  F* gates;  // backward: (B, G*H); forward: where a training step's cell writes gate g of unit j of row b,
             // gates + b * gates_ld + g * gates_gs + (j - gates_j0) (the cache, or over preact: store_gates)
  F* hn;     // forward: written by the GEMM before the step (GRU)
  int64_t ldp, ldh;
  int64_t pre_ld = 0, pre_gs = 0;
  int64_t gates_ld = 0, gates_gs = 0, gates_j0 = 0;
};

template <typename F>
struct StepGrad {
  const F* dh;   // (B, H) dL/dh_t carried from the later step
  const F* dhs;  // (B, H) dL/dh_t from the layer above, rows ldhs apart
  F* dc;         // (B, H) dL/dc_t in, dL/dc_{t-1} out (LSTM)
  F* da_ih;      // (B, G*H) dL/d(preact), input side
  F* da_hn;      // (B, H) the hidden side of the linear-before-reset gate (GRU: da_n r);
                 // elsewhere the hidden side equals the input side
  F* dh_direct;  // (B, H) the part of dL/dh_{t-1} that bypasses W_hh
  int64_t ldhs;  // elements between two rows of dhs
};

// time index of processing step s (the reverse direction reads t = T-1 .. 0)
inline int64_t time_index(const SeqDims& d, int64_t s) { return d.reverse ? d.T - 1 - s : s; }

}  // namespace pyrnn
