// Bindings of the recurrent kernel family. Thin: check every argument, take pointers, call the
// kernel without the GIL (bind_checks.h). Python signatures (cf. _C.pyi):
//   recurrent_forward(cell, reverse, x, lengths, (h0, c0), (w_ih, w_hh, b_ih, b_hh), cache)
//   recurrent_backward(cell, reverse, x, lengths, (h0, c0), cache, (w_ih, w_hh, b_ih, b_hh),
//                      (dhs, dhT, dcT), (dw_ih, dw_hh, db_ih, db_hh), (dx, dh0, dc0))
// both with a keyword bf16=False: True runs every GEMM in bfloat16 (float32 arrays only); forward with a
// keyword y=None: a (T, B, H) array of any rows (a view of a batch-first output, say) that gets hs too.
// Forward reads x and writes hs at any rows too (at inference the layers pass views of a batch-first input and
// output: no copy of either), and at inference cs (B, H): the latest c only; backward reads them in C order.
// cache = (hs, cs, gates, tanh_cs, hn), pyrnn.backends.contract.Cache: written by forward, read
// by backward (which overwrites gates with dA). What a cell does not have is None: c0, cs
// and dcT, dc0 but for LSTM, hn but for GRU, gates for RNN; tanh_cs always (the backward
// recomputes LSTM's tanh(c_t) from cs). Forward also takes gates and hn None for inference
// (nothing is kept for backward). lengths is None (every step active) or an int64 (B,) array with
// values in [0, T].
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bind_checks.h"
#include "common/gemm.h"
#include "recurrent/recurrent.h"

namespace pyrnn {
namespace py = pybind11;

namespace {

const char* const kCellNames[] = {"rnn_tanh", "rnn_relu", "lstm", "gru"};

struct Shapes {  // every shape, derived from x, h0 and the cell
  CellKind cell;
  SeqDims d;
  int64_t GH;
  bool lstm, gru;
  std::vector<int64_t> seq_h() const { return {d.T, d.B, d.H}; }
  std::vector<int64_t> seq_g() const { return {d.T, d.B, GH}; }
  std::vector<int64_t> bh() const { return {d.B, d.H}; }
};

Shapes derive_shapes(int cell_code, bool reverse, py::handle xh, py::handle state0, py::handle lengths) {
  if (cell_code < 0 || cell_code > 3)
    throw py::value_error("cell: expected a code 0..3 (rnn_tanh, rnn_relu, lstm, gru), got " +
                          std::to_string(cell_code));
  const py::array x = as_array(xh, "x");
  if (x.ndim() != 3) throw py::value_error("x: expected a 3-D array (T, B, I), got " + shape_str(shape_of(x)));
  const py::array h = as_array(checked_tuple(state0, "state0", 2)[0], "h0");
  if (h.ndim() != 2 || h.shape(0) != x.shape(1))
    throw py::value_error("h0: expected shape (B, H) with B = " + std::to_string(x.shape(1)) + ", got " +
                          shape_str(shape_of(h)));
  Shapes s;
  s.cell = static_cast<CellKind>(cell_code);
  s.d = SeqDims{x.shape(0), x.shape(1), x.shape(2), h.shape(1), reverse, nullptr};
  if (s.d.I < 1 || s.d.H < 1)
    throw py::value_error("x, h0: expected I >= 1 and H >= 1, got I = " + std::to_string(s.d.I) +
                          ", H = " + std::to_string(s.d.H));
  s.GH = gates_per_unit(s.cell) * s.d.H;
  s.lstm = s.cell == CellKind::Lstm;
  s.gru = s.cell == CellKind::Gru;
  const int64_t lim = kMaxBlasDim;
  if (s.d.T * s.d.B > lim || s.GH > lim || s.d.I > lim || (s.d.B > 0 && s.d.T > lim / s.d.B))
    throw py::value_error("x: sizes exceed the 32-bit BLAS interface (T*B and G*H must be < 2**31)");
  if (!lengths.is_none()) {  // checked here, not trusted
    s.d.lengths = in_ptr<int64_t>(lengths, "lengths", {s.d.B});
    for (int64_t b = 0; b < s.d.B; ++b)
      if (s.d.lengths[b] < 0 || s.d.lengths[b] > s.d.T)
        throw py::value_error("lengths[" + std::to_string(b) + "]: expected a value in [0, " + std::to_string(s.d.T) +
                              "], got " + std::to_string(s.d.lengths[b]));
  }
  return s;
}

template <typename F>
CellParams<F> params_in(const Shapes& s, py::handle obj) {
  auto t = checked_tuple(obj, "params", 4);
  return CellParams<F>{in_ptr<F>(t[0], "w_ih", {s.GH, s.d.I}), in_ptr<F>(t[1], "w_hh", {s.GH, s.d.H}),
                       in_ptr<F>(t[2], "b_ih", {s.GH}), in_ptr<F>(t[3], "b_hh", {s.GH})};
}

// An array the cell has (checked), or None where it has none.
template <typename F, typename Ptr>
Ptr cell_array(bool has, py::handle h, const std::string& name, const std::vector<int64_t>& shape, const Shapes& s,
               Ptr (*get)(py::handle, const std::string&, const std::vector<int64_t>&)) {
  if (has) return get(h, name, shape);
  if (!h.is_none())
    throw py::value_error(name + ": expected None for " + kCellNames[static_cast<int>(s.cell)] + ", got " +
                          type_name(h));
  return nullptr;
}

// x, (h0, c0) and the cache (hs, cs, gates, tanh_cs, hn), writable for forward, read for backward; tanh_cs is
// None. Forward may get gates = hn = None (inference), then cs as one (B, H) c updated in place, and x and
// hs at any rows; backward needs the cell's cache, x and hs in C order.
template <typename F>
SeqTensors<F> seq_tensors(const Shapes& s, py::handle x, py::handle state0, py::handle cache, bool forward) {
  auto st = checked_tuple(state0, "state0", 2);
  auto ca = checked_tuple(cache, "cache", 5);
  SeqTensors<F> io{};
  int64_t ld[2];
  if (forward) {  // x and hs at any rows (views of a batch-first input and output, say)
    io.x = in_rows<F>(x, "x", {s.d.T, s.d.B, s.d.I}, ld);
    io.x_ldt = ld[0], io.x_ldb = ld[1];
  } else {
    io.x = in_ptr<F>(x, "x", {s.d.T, s.d.B, s.d.I});
  }
  io.h0 = in_ptr<F>(st[0], "h0", s.bh());
  io.c0 = cell_array<F, const F*>(s.lstm, st[1], "c0", s.bh(), s, &in_ptr<F>);
  if (forward) {
    io.hs = out_rows<F>(ca[0], "hs", s.seq_h(), ld);
    io.hs_ldt = ld[0], io.hs_ldb = ld[1];
  } else {
    io.hs = out_ptr<F>(ca[0], "hs", s.seq_h());
  }
  const bool inference = forward && ca[2].is_none() && ca[4].is_none();
  if (inference && s.lstm && !ca[1].is_none() && as_array(ca[1], "cs").ndim() == 2) {  // only the latest c
    if (s.d.lengths != nullptr)  // a carried step reads c_{t-1} after the step wrote c_t
      throw py::value_error("cs: expected shape " + shape_str(s.seq_h()) + " with lengths, got " +
                            shape_str(shape_of(as_array(ca[1], "cs"))));
    io.cs = out_ptr<F>(ca[1], "cs", s.bh());
    io.cs_ldt = 0;
  } else {
    io.cs = cell_array<F, F*>(s.lstm, ca[1], "cs", s.seq_h(), s, &out_ptr<F>);
  }
  const bool gated = (s.lstm || s.gru) && !inference;
  io.gates = cell_array<F, F*>(gated, ca[2], "gates", s.seq_g(), s, &out_ptr<F>);
  if (!ca[3].is_none())
    throw py::value_error("tanh_cs: expected None (the backward recomputes tanh(c_t) from cs), got " +
                          type_name(ca[3]));
  io.hn = cell_array<F, F*>(gated && s.gru, ca[4], "hn", s.seq_h(), s, &out_ptr<F>);
  return io;
}

// bf16 GEMMs take float32 arrays only
template <typename F>
void check_bf16(bool bf16) {
  if (bf16 && !std::is_same<F, float>::value)
    throw py::type_error("x: expected dtype float32 with bf16=True, got float64");
}

template <typename F>
void forward_impl(const Shapes& s, py::handle x, py::handle state0, py::handle params, py::handle cache, bool bf16,
                  py::handle y, py::handle x_copy) {
  check_bf16<F>(bf16);
  const CellParams<F> p = params_in<F>(s, params);
  SeqTensors<F> io = seq_tensors<F>(s, x, state0, cache, true);
  if (!y.is_none()) {  // hs again, at y's strides (a view of a batch-first output, say)
    int64_t ld[2];
    io.y = out_rows<F>(y, "y", s.seq_h(), ld);
    io.y_ldt = ld[0], io.y_ldb = ld[1];
  }
  if (!x_copy.is_none()) {  // x again, in C order (training on a view of a batch-first x)
    io.x_copy = out_ptr<F>(x_copy, "x_copy", {s.d.T, s.d.B, s.d.I});
  }
  run_kernel([&](Cancel& cancel) { recurrent_forward<F>(s.cell, s.d, p, io, cancel, bf16); });
}

template <typename F>
void backward_impl(const Shapes& s, py::handle x, py::handle state0, py::handle cache, py::handle params,
                   py::handle dout, py::handle grads, py::handle dres, bool bf16) {
  check_bf16<F>(bf16);
  const CellParams<F> p = params_in<F>(s, params);
  const SeqTensors<F> sv = seq_tensors<F>(s, x, state0, cache, false);
  auto dt = checked_tuple(dout, "dout", 3);
  auto gt = checked_tuple(grads, "grads", 4);
  auto rt = checked_tuple(dres, "dres", 3);
  SeqGrads<F> io{};
  int64_t ld[2];  // dhs: any rows (a view of a batch-first dy, say)
  io.dhs = in_rows<F>(dt[0], "dhs", s.seq_h(), ld);
  io.dhs_ldt = ld[0], io.dhs_ldb = ld[1];
  io.dhT = in_ptr<F>(dt[1], "dhT", s.bh());
  io.dcT = cell_array<F, const F*>(s.lstm, dt[2], "dcT", s.bh(), s, &in_ptr<F>);
  io.dx = out_rows<F>(rt[0], "dx", {s.d.T, s.d.B, s.d.I}, ld);  // any rows (a view of a batch-first dx, say)
  io.dx_ldb = s.d.B > 1 ? ld[1] : s.d.I;                        // an axis of one element: its C-order stride
  io.dx_ldt = s.d.T > 1 ? ld[0] : s.d.B * io.dx_ldb;
  io.dh0 = out_ptr<F>(rt[1], "dh0", s.bh());
  io.dc0 = cell_array<F, F*>(s.lstm, rt[2], "dc0", s.bh(), s, &out_ptr<F>);
  const CellGrads<F> g{out_ptr<F>(gt[0], "dw_ih", {s.GH, s.d.I}), out_ptr<F>(gt[1], "dw_hh", {s.GH, s.d.H}),
                       out_ptr<F>(gt[2], "db_ih", {s.GH}), out_ptr<F>(gt[3], "db_hh", {s.GH})};
  run_kernel([&](Cancel& cancel) { recurrent_backward<F>(s.cell, s.d, p, sv, io, g, cancel, bf16); });
}

}  // namespace

void bind_recurrent(py::module_& m) {
  m.def(
      "recurrent_forward",
      [](int cell, bool reverse, py::handle x, py::handle lengths, py::handle state0, py::handle params,
         py::handle cache, bool bf16, py::handle y, py::handle x_copy) {
        const Shapes s = derive_shapes(cell, reverse, x, state0, lengths);
        dispatch_float(x, "x",
                       [&](auto tag) { forward_impl<decltype(tag)>(s, x, state0, params, cache, bf16, y, x_copy); });
      },
      py::arg("cell"), py::arg("reverse"), py::arg("x"), py::arg("lengths"), py::arg("state0"), py::arg("params"),
      py::arg("cache"), py::arg("bf16") = false, py::arg("y") = py::none(), py::arg("x_copy") = py::none(),
      "One layer-direction over the whole sequence; fills cache = (hs, cs, gates, tanh_cs, hn) in place, y "
      "(any rows: a view of a batch-first output, say) with hs too when given, and x_copy (T, B, I) (C order) with "
      "x when given.");
  m.def(
      "recurrent_backward",
      [](int cell, bool reverse, py::handle x, py::handle lengths, py::handle state0, py::handle cache,
         py::handle params, py::handle dout, py::handle grads, py::handle dres, bool bf16) {
        const Shapes s = derive_shapes(cell, reverse, x, state0, lengths);
        dispatch_float(x, "x", [&](auto tag) {
          backward_impl<decltype(tag)>(s, x, state0, cache, params, dout, grads, dres, bf16);
        });
      },
      py::arg("cell"), py::arg("reverse"), py::arg("x"), py::arg("lengths"), py::arg("state0"), py::arg("cache"),
      py::arg("params"), py::arg("dout"), py::arg("grads"), py::arg("dres"), py::arg("bf16") = false,
      "BPTT of one layer-direction; adds into grads, writes dres = (dx, dh0, dc0); overwrites the cache's gates.");
}

}  // namespace pyrnn
