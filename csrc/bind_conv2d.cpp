// Bindings of the 2-D convolution. Thin: check every argument, take pointers, call the kernel without
// the GIL (bind_checks.h). Outputs are allocated by the caller (pyrnn/backends/conv2d_cpp.py).
// Python signatures (cf. _C.pyi); stride (sh, sw), padding (top, bottom, left, right) and dilation
// (dh, dw) are tuples of Python ints, groups an int, the arrays C-contiguous:
//   conv2d_forward(x, w, b, y, stride, padding, dilation, groups, activation=None)  b may be None; activation
//     None, "relu" or "tanh" (applied to y)
//   conv2d_backward(x, w, dy, dx, dw, db, stride, padding, dilation, groups)      dx, dw, db may be None
//     (not wanted); x may be None when dw is (the input's shape is then dx's)
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "bind_checks.h"
#include "common/gemm.h"
#include "conv/conv2d.h"

namespace pyrnn {
namespace py = pybind11;

namespace {

// A tuple of n such integers.
std::vector<int64_t> index_tuple(py::handle h, const char* name, size_t n, int64_t minimum) {
  if (!py::isinstance<py::tuple>(h))
    throw py::type_error(std::string(name) + ": expected a tuple of " + std::to_string(n) + " integers, got " +
                         type_name(h));
  const auto t = py::reinterpret_borrow<py::tuple>(h);
  if (t.size() != n)
    throw py::value_error(std::string(name) + ": expected a tuple of " + std::to_string(n) + " integers, got " +
                          std::to_string(t.size()));
  std::vector<int64_t> v;
  for (size_t k = 0; k < n; ++k) v.push_back(int_arg(t[k], std::string(name) + "[" + std::to_string(k) + "]", minimum));
  return v;
}

// The 4-D array whose shape a kernel's sizes start from.
std::vector<int64_t> dims4(py::handle h, const char* name, const char* labels) {
  const py::array a = as_array(h, name);
  if (a.ndim() != 4)
    throw py::value_error(std::string(name) + ": expected a 4-D array " + labels + ", got shape " +
                          shape_str(shape_of(a)));
  return shape_of(a);
}

// out = (n + pa + pz - span) // s + 1, refused when < 1
int64_t output_size(const char* axis, int64_t n, int64_t k, int64_t s, int64_t pa, int64_t pz, int64_t dil) {
  const int64_t span = dil * (k - 1) + 1;
  if (n + pa + pz < span)
    throw py::value_error(std::string("expected ") + axis +
                          " + padding >= dilation*(kernel-1) + 1 = " + std::to_string(span) + " (" + axis + "=" +
                          std::to_string(n) + ", kernel=" + std::to_string(k) + ", dilation=" + std::to_string(dil) +
                          "), got an output size of 0");
  return (n + pa + pz - span) / s + 1;
}

// The sizes of a call, from the input's shape xs (B, H, W, C) and w's.
Conv2dDims conv2d_dims(const std::vector<int64_t>& xs, py::handle w, py::handle stride, py::handle padding,
                       py::handle dilation, py::handle groups) {
  if (!py::isinstance<py::array>(w) || py::reinterpret_borrow<py::array>(w).ndim() != 4)
    throw py::value_error("w: expected a 4-D array (C_out, C_in/groups, kH, kW), got " +
                          (py::isinstance<py::array>(w)
                               ? "shape " + shape_str(shape_of(py::reinterpret_borrow<py::array>(w)))
                               : type_name(w)));
  const auto ws = shape_of(py::reinterpret_borrow<py::array>(w));
  const auto s = index_tuple(stride, "stride", 2, 1);
  const auto p = index_tuple(padding, "padding", 4, 0);
  const auto dl = index_tuple(dilation, "dilation", 2, 1);
  Conv2dDims d{xs[0], xs[1], xs[2], xs[3], ws[0], int_arg(groups, "groups", 1), ws[2], ws[3], 0, 0, s[0], s[1], p[0],
               p[1],  p[2],  p[3],  dl[0], dl[1]};
  if (d.C % d.G != 0 || d.O % d.G != 0)
    throw py::value_error("groups: expected a divisor of C_in=" + std::to_string(d.C) +
                          " and C_out=" + std::to_string(d.O) + ", got " + std::to_string(d.G));
  if (d.KH < 1 || d.KW < 1) throw py::value_error("w: expected a kernel of at least 1x1, got shape " + shape_str(ws));
  if (d.O > kMaxBlasDim || d.C > kMaxBlasDim || d.KH > kMaxBlasDim || d.KW > kMaxBlasDim ||
      (d.C > 0 && d.KH * d.KW > kMaxBlasDim / d.C))  // kH*kW*C_in, without overflowing
    throw py::value_error("w: expected C_out and kH*kW*C_in < 2**31 (the 32-bit BLAS interface), got shape " +
                          shape_str(ws));
  d.HO = output_size("H", d.H, d.KH, d.sh, d.pt, d.pb, d.dh);
  d.WO = output_size("W", d.W, d.KW, d.sw, d.pl, d.pr, d.dw);
  if (d.WO > kMaxBlasDim)
    throw py::value_error("x: expected an output width < 2**31 (the 32-bit BLAS interface), got " +
                          std::to_string(d.WO));
  return d;
}

// The activation applied to y: None, "relu" or "tanh"
PostOp post_op(py::handle a) {
  if (a.is_none()) return PostOp::None;
  if (py::isinstance<py::str>(a)) {
    const std::string s = a.cast<std::string>();
    if (s == "relu") return PostOp::Relu;
    if (s == "tanh") return PostOp::Tanh;
    throw py::value_error("activation: expected None, 'relu' or 'tanh', got '" + s + "'");
  }
  throw py::type_error("activation: expected None, 'relu' or 'tanh', got " + type_name(a));
}

template <typename F>
void forward_impl(const Conv2dDims& d, py::handle x, py::handle w, py::handle b, py::handle y, PostOp post) {
  const F* xp = in_ptr<F>(x, "x", {d.B, d.H, d.W, d.C});
  const F* wp = in_ptr<F>(w, "w", {d.O, d.C / d.G, d.KH, d.KW});
  const F* bp = b.is_none() ? nullptr : in_ptr<F>(b, "b", {d.O});
  F* yp = out_ptr<F>(y, "y", {d.B, d.HO, d.WO, d.O});
  run_kernel([&](Cancel& cancel) { conv2d_forward<F>(d, xp, wp, bp, yp, post, cancel); });
}

template <typename F>
void backward_impl(const Conv2dDims& d, py::handle x, py::handle w, py::handle dy, py::handle dx, py::handle dw,
                   py::handle db) {
  if (x.is_none() && !dw.is_none())
    throw py::type_error("x: expected a numpy.ndarray for the weight gradient (dw given), got NoneType");
  const F* xp = x.is_none() ? nullptr : in_ptr<F>(x, "x", {d.B, d.H, d.W, d.C});
  const F* wp = in_ptr<F>(w, "w", {d.O, d.C / d.G, d.KH, d.KW});
  const F* dyp = in_ptr<F>(dy, "dy", {d.B, d.HO, d.WO, d.O});
  F* dxp = dx.is_none() ? nullptr : out_ptr<F>(dx, "dx", {d.B, d.H, d.W, d.C});
  F* dwp = dw.is_none() ? nullptr : out_ptr<F>(dw, "dw", {d.O, d.C / d.G, d.KH, d.KW});
  F* dbp = db.is_none() ? nullptr : out_ptr<F>(db, "db", {d.O});
  run_kernel([&](Cancel& cancel) { conv2d_backward<F>(d, xp, wp, dyp, dxp, dwp, dbp, cancel); });
}

}  // namespace

void bind_conv2d(py::module_& m) {
  m.def(
      "conv2d_forward",
      [](py::handle x, py::handle w, py::handle b, py::handle y, py::handle stride, py::handle padding,
         py::handle dilation, py::handle groups, py::handle activation) {
        const PostOp post = post_op(activation);
        dispatch_float(x, "x", [&](auto tag) {
          const Conv2dDims d = conv2d_dims(dims4(x, "x", "(B, H, W, C_in)"), w, stride, padding, dilation, groups);
          forward_impl<decltype(tag)>(d, x, w, b, y, post);
        });
      },
      py::arg("x"), py::arg("w"), py::arg("b"), py::arg("y"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"), py::arg("activation") = py::none(),
      "Conv2D forward on (B, H, W, C_in) with w (C_out, C_in/groups, kH, kW); writes y (B, H_out, W_out, C_out), "
      "then the activation (None, 'relu' or 'tanh') applied to it.");
  m.def(
      "conv2d_backward",
      [](py::handle x, py::handle w, py::handle dy, py::handle dx, py::handle dw, py::handle db, py::handle stride,
         py::handle padding, py::handle dilation, py::handle groups) {
        if (x.is_none() && dx.is_none())
          throw py::type_error("x: expected a numpy.ndarray (or dx, whose shape is the input's), got NoneType");
        const py::handle shaped = x.is_none() ? dx : x;  // the array that gives the input's shape
        const char* name = x.is_none() ? "dx" : "x";
        dispatch_float(shaped, name, [&](auto tag) {
          const Conv2dDims d =
              conv2d_dims(dims4(shaped, name, "(B, H, W, C_in)"), w, stride, padding, dilation, groups);
          backward_impl<decltype(tag)>(d, x, w, dy, dx, dw, db);
        });
      },
      py::arg("x"), py::arg("w"), py::arg("dy"), py::arg("dx"), py::arg("dw"), py::arg("db"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("groups"),
      "Conv2D backward: writes dx (B, H, W, C_in), adds into dw (C_out, C_in/groups, kH, kW) and db (C_out,); "
      "each may be None (not wanted).");
  m.def(
      "_set_winograd", [](py::handle on) { set_winograd(bool_arg(on, "on")); }, py::arg("on"),
      "Private (tests, benchmarks): Winograd F(2x2, 3x3) for the 3x3 stride-1 layers where it pays (default True).");
  m.def("_winograd", &winograd_enabled);
}

}  // namespace pyrnn
