// Bindings of the recurrent kernel family. Thin: check every argument, take
// pointers, release the GIL, call the kernel. Python signatures (cf. _C.pyi):
//   recurrent_forward(cell, reverse, x, lengths, (h0, c0), (w_ih, w_hh, b_ih, b_hh), (hs, cs, gates, aux))
//   recurrent_backward(cell, reverse, x, lengths, (h0, c0), (hs, cs, gates, aux), (w_ih, w_hh, b_ih, b_hh),
//                      (dhs, dhT, dcT), (dw_ih, dw_hh, db_ih, db_hh), (dx, dh0, dc0))
// Arrays a cell does not use (c0/cs for RNN and GRU, gates/aux for RNN) may be None; so may
// lengths (every step active), else an int64 (B,) array with values in [0, T]; and so may a
// forward's gates and aux together (inference: the cells use one step's scratch instead).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bind_checks.h"
#include "common/gemm.h"
#include "common/threads.h"
#include "recurrent/recurrent.h"

namespace pyrnn {
namespace py = pybind11;

namespace {

struct Shapes {  // every shape, derived from x, h0 and the cell
  CellKind cell;
  SeqDims d;
  int64_t GH;
  bool lstm, gated;
  std::vector<int64_t> seq_h() const { return {d.T, d.B, d.H}; }
  std::vector<int64_t> seq_g() const { return {d.T, d.B, GH}; }
  std::vector<int64_t> bh() const { return {d.B, d.H}; }
};

// lengths: None, or int64 (B,) with every value in [0, T]; checked here, not trusted
const int64_t* lengths_ptr(const Shapes& s, py::handle h) {
  if (h.is_none()) return nullptr;
  if (!py::isinstance<py::array_t<int64_t>>(h))
    throw py::type_error("lengths: expected None or an int64 array, got " + std::string(py::str(py::type::of(h).attr("__name__"))) +
                         (py::isinstance<py::array>(h) ? " of dtype " + std::string(py::str(py::reinterpret_borrow<py::array>(h).dtype())) : ""));
  auto a = py::reinterpret_borrow<py::array>(h);
  if (shape_of(a) != std::vector<int64_t>{s.d.B})
    throw py::value_error("lengths: expected shape " + shape_str({s.d.B}) + ", got " + shape_str(shape_of(a)));
  if (!(a.flags() & py::array::c_style)) throw py::value_error("lengths: expected a C-contiguous array");
  const int64_t* p = static_cast<const int64_t*>(a.data());
  for (int64_t b = 0; b < s.d.B; ++b)
    if (p[b] < 0 || p[b] > s.d.T)
      throw py::value_error("lengths[" + std::to_string(b) + "]: expected a value in [0, " + std::to_string(s.d.T) +
                            "], got " + std::to_string(p[b]));
  return p;
}

Shapes derive_shapes(int cell_code, bool reverse, const py::array& x, py::handle h0) {
  if (cell_code < 0 || cell_code > 3)
    throw py::value_error("cell: expected a code 0..3 (rnn_tanh, rnn_relu, lstm, gru), got " + std::to_string(cell_code));
  if (x.ndim() != 3) throw py::value_error("x: expected a 3-D array (T, B, I), got " + shape_str(shape_of(x)));
  if (!py::isinstance<py::array>(h0)) throw py::type_error("h0: expected a numpy.ndarray");
  auto h = py::reinterpret_borrow<py::array>(h0);
  if (h.ndim() != 2 || h.shape(0) != x.shape(1))
    throw py::value_error("h0: expected shape (B, H) with B = " + std::to_string(x.shape(1)) + ", got " + shape_str(shape_of(h)));
  Shapes s;
  s.cell = static_cast<CellKind>(cell_code);
  s.d = SeqDims{x.shape(0), x.shape(1), x.shape(2), h.shape(1), reverse, nullptr};
  if (s.d.I < 1 || s.d.H < 1)
    throw py::value_error("x, h0: expected I >= 1 and H >= 1, got I = " + std::to_string(s.d.I) + ", H = " + std::to_string(s.d.H));
  s.GH = gates_per_unit(s.cell) * s.d.H;
  s.lstm = s.cell == CellKind::Lstm;
  s.gated = s.lstm || s.cell == CellKind::Gru;
  const int64_t lim = kMaxBlasDim;
  if (s.d.T * s.d.B > lim || s.GH > lim || s.d.I > lim || (s.d.B > 0 && s.d.T > lim / s.d.B))
    throw py::value_error("x: sizes exceed the 32-bit BLAS interface (T*B and G*H must be < 2**31)");
  return s;
}

template <typename F>
CellParams<F> params_in(const Shapes& s, py::handle obj) {
  auto t = checked_tuple(obj, "params", 4);
  return CellParams<F>{in_ptr<F>(t[0], "w_ih", {s.GH, s.d.I}), in_ptr<F>(t[1], "w_hh", {s.GH, s.d.H}),
                       in_ptr<F>(t[2], "b_ih", {s.GH}), in_ptr<F>(t[3], "b_hh", {s.GH})};
}

// x, (h0, c0) and the (hs, cs, gates, aux) cache, writable for forward, read for backward.
// Forward may get gates = aux = None (inference: nothing kept for backward); backward needs them.
template <typename F>
SeqTensors<F> seq_tensors(const Shapes& s, const py::array& x, py::handle state0, py::handle cache, bool inference_ok) {
  auto st = checked_tuple(state0, "state0", 2);
  auto ca = checked_tuple(cache, "cache", 4);
  SeqTensors<F> io{};
  io.x = in_ptr<F>(x, "x", {s.d.T, s.d.B, s.d.I});
  io.h0 = in_ptr<F>(st[0], "h0", s.bh());
  io.hs = out_ptr<F>(ca[0], "hs", s.seq_h());
  if (s.lstm) {
    io.c0 = in_ptr<F>(st[1], "c0", s.bh());
    io.cs = out_ptr<F>(ca[1], "cs", s.seq_h());
  }
  if (s.gated && !(inference_ok && ca[2].is_none() && ca[3].is_none())) {
    io.gates = out_ptr<F>(ca[2], "gates", s.seq_g());
    io.aux = out_ptr<F>(ca[3], "aux", s.seq_h());
  }
  return io;
}

template <typename F>
void forward_impl(const Shapes& s, const py::array& x, py::handle state0, py::handle params, py::handle out) {
  const CellParams<F> p = params_in<F>(s, params);
  const SeqTensors<F> io = seq_tensors<F>(s, x, state0, out, true);
  py::gil_scoped_release nogil;
  recurrent_forward<F>(s.cell, s.d, p, io);
}

template <typename F>
void backward_impl(const Shapes& s, const py::array& x, py::handle state0, py::handle saved, py::handle params,
                   py::handle dout, py::handle grads, py::handle dres) {
  const CellParams<F> p = params_in<F>(s, params);
  const SeqTensors<F> sv = seq_tensors<F>(s, x, state0, saved, false);
  auto dt = checked_tuple(dout, "dout", 3);
  auto gt = checked_tuple(grads, "grads", 4);
  auto rt = checked_tuple(dres, "dres", 3);
  SeqGrads<F> io{};
  io.dhs = in_ptr<F>(dt[0], "dhs", s.seq_h());
  io.dhT = in_ptr<F>(dt[1], "dhT", s.bh());
  io.dx = out_ptr<F>(rt[0], "dx", {s.d.T, s.d.B, s.d.I});
  io.dh0 = out_ptr<F>(rt[1], "dh0", s.bh());
  if (s.lstm) {
    io.dcT = in_ptr<F>(dt[2], "dcT", s.bh());
    io.dc0 = out_ptr<F>(rt[2], "dc0", s.bh());
  }
  CellGrads<F> g{out_ptr<F>(gt[0], "dw_ih", {s.GH, s.d.I}), out_ptr<F>(gt[1], "dw_hh", {s.GH, s.d.H}),
                 out_ptr<F>(gt[2], "db_ih", {s.GH}), out_ptr<F>(gt[3], "db_hh", {s.GH})};
  py::gil_scoped_release nogil;
  recurrent_backward<F>(s.cell, s.d, p, sv, io, g);
}

py::array x_array(py::handle x) {
  if (!py::isinstance<py::array>(x))
    throw py::type_error("x: expected a numpy.ndarray, got " + std::string(py::str(py::type::of(x).attr("__name__"))));
  return py::reinterpret_borrow<py::array>(x);
}

bool is_f32(const py::array& x) {
  if (py::isinstance<py::array_t<float>>(x)) return true;
  if (py::isinstance<py::array_t<double>>(x)) return false;
  throw py::type_error("x: expected dtype float32 or float64, got " + std::string(py::str(x.dtype())));
}

}  // namespace

void bind_recurrent(py::module_& m) {
  m.def(
      "recurrent_forward",
      [](int cell, bool reverse, py::handle xh, py::handle lengths, py::handle state0, py::handle params, py::handle out) {
        auto x = x_array(xh);
        Shapes s = derive_shapes(cell, reverse, x, checked_tuple(state0, "state0", 2)[0]);
        s.d.lengths = lengths_ptr(s, lengths);
        if (is_f32(x))
          forward_impl<float>(s, x, state0, params, out);
        else
          forward_impl<double>(s, x, state0, params, out);
      },
      py::arg("cell"), py::arg("reverse"), py::arg("x"), py::arg("lengths"), py::arg("state0"), py::arg("params"),
      py::arg("out"),
      "One layer-direction over the whole sequence; fills out = (hs, cs, gates, aux) in place.");
  m.def(
      "recurrent_backward",
      [](int cell, bool reverse, py::handle xh, py::handle lengths, py::handle state0, py::handle saved,
         py::handle params, py::handle dout, py::handle grads, py::handle dres) {
        auto x = x_array(xh);
        Shapes s = derive_shapes(cell, reverse, x, checked_tuple(state0, "state0", 2)[0]);
        s.d.lengths = lengths_ptr(s, lengths);
        if (is_f32(x))
          backward_impl<float>(s, x, state0, saved, params, dout, grads, dres);
        else
          backward_impl<double>(s, x, state0, saved, params, dout, grads, dres);
      },
      py::arg("cell"), py::arg("reverse"), py::arg("x"), py::arg("lengths"), py::arg("state0"), py::arg("saved"),
      py::arg("params"), py::arg("dout"), py::arg("grads"), py::arg("dres"),
      "BPTT of one layer-direction; adds into grads, writes dres = (dx, dh0, dc0); overwrites saved's gates.");

}

}  // namespace pyrnn
