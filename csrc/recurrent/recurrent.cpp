// Dispatch from a cell code to the shared time loop (sequence.h) with that cell's pointwise steps.
#include "recurrent.h"

#include <stdexcept>

#include "gru.h"
#include "lstm.h"
#include "rnn.h"

namespace pyrnn {

int64_t gates_per_unit(CellKind cell) {
  switch (cell) {
    case CellKind::RnnTanh:
    case CellKind::RnnRelu: return 1;
    case CellKind::Lstm: return 4;
    case CellKind::Gru: return 3;
  }
  throw std::invalid_argument("unknown cell code");
}

template <typename F>
void recurrent_forward(CellKind cell, const SeqDims& d, const CellParams<F>& p, const SeqTensors<F>& io) {
  switch (cell) {
    case CellKind::RnnTanh: return seq_forward<RnnCell<false>>(d, p, io);
    case CellKind::RnnRelu: return seq_forward<RnnCell<true>>(d, p, io);
    case CellKind::Lstm: return seq_forward<LstmCell>(d, p, io);
    case CellKind::Gru: return seq_forward<GruCell>(d, p, io);
  }
  throw std::invalid_argument("unknown cell code");
}

template <typename F>
void recurrent_backward(CellKind cell, const SeqDims& d, const CellParams<F>& p, const SeqTensors<F>& saved,
                        const SeqGrads<F>& io, const CellGrads<F>& g) {
  switch (cell) {
    case CellKind::RnnTanh: return seq_backward<RnnCell<false>>(d, p, saved, io, g);
    case CellKind::RnnRelu: return seq_backward<RnnCell<true>>(d, p, saved, io, g);
    case CellKind::Lstm: return seq_backward<LstmCell>(d, p, saved, io, g);
    case CellKind::Gru: return seq_backward<GruCell>(d, p, saved, io, g);
  }
  throw std::invalid_argument("unknown cell code");
}

template void recurrent_forward<float>(CellKind, const SeqDims&, const CellParams<float>&, const SeqTensors<float>&);
template void recurrent_forward<double>(CellKind, const SeqDims&, const CellParams<double>&, const SeqTensors<double>&);
template void recurrent_backward<float>(CellKind, const SeqDims&, const CellParams<float>&, const SeqTensors<float>&,
                                        const SeqGrads<float>&, const CellGrads<float>&);
template void recurrent_backward<double>(CellKind, const SeqDims&, const CellParams<double>&,
                                         const SeqTensors<double>&, const SeqGrads<double>&, const CellGrads<double>&);

}  // namespace pyrnn
