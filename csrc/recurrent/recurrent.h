// Entry points of the recurrent kernel family: one layer, one direction, the whole sequence.
// Legend, names and layouts: see sequence.h.
#pragma once

#include "../common/cancel.h"
#include "sequence.h"

namespace pyrnn {

// Cell codes, shared with pyrnn/backends/contract.py (CELL_CODES).
enum class CellKind : int { RnnTanh = 0, RnnRelu = 1, Lstm = 2, Gru = 3 };

int64_t gates_per_unit(CellKind cell);

// Fills io's hs and cs and, for training (io.gates not null), the cache: gates, hn (GRU).
// Stopped by `cancel`, it returns early with the outputs unspecified. bf16 (float32 only): every GEMM
// takes bf16-rounded operands with float32 sums, forward and backward (pyrnn/backends/bfloat16.py).
template <typename F>
void recurrent_forward(CellKind cell, const SeqDims& d, const CellParams<F>& p, const SeqTensors<F>& io, Cancel& cancel,
                       bool bf16 = false);

// Writes io's dx, dh0, dc0 and adds into g. Overwrites saved.gates with dA (the forward's cache is
// spent, as in PyTorch). Stopped by `cancel`, it returns early with io's outputs unspecified and
// g untouched.
template <typename F>
void recurrent_backward(CellKind cell, const SeqDims& d, const CellParams<F>& p, const SeqTensors<F>& saved,
                        const SeqGrads<F>& io, const CellGrads<F>& g, Cancel& cancel, bool bf16 = false);

}  // namespace pyrnn
