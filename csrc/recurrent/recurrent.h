// Entry points of the recurrent kernel family: one layer, one direction, the
// whole sequence. Legend and layouts: see sequence.h.
#pragma once

#include "sequence.h"

namespace pyrnn {

// Cell codes, shared with pyrnn/backends/contract.py (CELL_CODES).
enum class CellKind : int { RnnTanh = 0, RnnRelu = 1, Lstm = 2, Gru = 3 };

int64_t gates_per_unit(CellKind cell);

template <typename F>
void recurrent_forward(CellKind cell, const SeqDims& d, const CellParams<F>& p, const SeqTensors<F>& io);

// Backward overwrites saved.gates with dA (the forward's cache is spent, as in PyTorch).
template <typename F>
void recurrent_backward(CellKind cell, const SeqDims& d, const CellParams<F>& p, const SeqTensors<F>& saved,
                        const SeqGrads<F>& io, const CellGrads<F>& g);



}  // namespace pyrnn
