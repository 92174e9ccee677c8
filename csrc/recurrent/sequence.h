// The data of the recurrent kernel family: shapes, weights, sequences, one step's views.
//
// Legend: T = time, B = batch, I = input, H = hidden, G = gates per unit.
// Every array is row-major and time-major: x (T,B,I), hs (T,B,H), gates (T,B,G*H).
// Gate packing is PyTorch's: LSTM i|f|g|o, GRU r|z|n.
//
// A Cell supplies the pointwise maths of one step (see rnn.inc, lstm.inc, gru.inc):
//   static constexpr int64_t G;                 gates per unit
//   static constexpr int64_t kApartGate;        the gate whose x and h products stay apart (GRU's
//                                               n: r multiplies the h part alone), or -1; only
//                                               there do dA's input and hidden sides differ
//   static constexpr bool kCellState;           carries c (LSTM)
//   forward_step(B, H, j0, j1, StepView)  and  backward_step(B, H, j0, j1, StepView, StepGrad)
//
// How a layer-direction is computed: recurrent.cpp (the driver, BLAS GEMMs before and after
// the time loop) and loop.inc (the time loop itself, compiled once per instruction set).
// Nothing here knows of Python; the bindings check every shape before a kernel runs.
#pragma once

#include <cstdint>

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
  const F* xg;       // (B, G*H) x_t W_ih^T of the gate a cell keeps apart (GRU's n; unused otherwise)
  F* gh;             // (B, G*H) forward: x_t W_ih^T + h_prev W_hh^T (GRU's n: h_prev W_hn^T alone)
  const F* bias;     // (G*H) b_ih + b_hh, but b_ih alone for the gate a cell keeps apart
  const F* b_hh;     // (G*H) b_hh, for the gate a cell keeps apart (GRU)
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
  F* da_hn;          // (B, H) the hidden side of the apart gate (GRU: da_n r); elsewhere the
                     // hidden side equals the input side
  F* dh_direct;      // (B, H) the part of dL/dh_{t-1} that bypasses W_hh
};

// time index of processing step s (the reverse direction reads t = T-1 .. 0)
inline int64_t time_index(const SeqDims& d, int64_t s) { return d.reverse ? d.T - 1 - s : s; }

}  // namespace pyrnn
