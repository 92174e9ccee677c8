// Bindings of the conv family. Thin: check every argument, take pointers, call the kernel without
// the GIL (bind_checks.h). Outputs are allocated by the caller (pyrnn/backends/conv_cpp.py).
// Python signatures (cf. _C.pyi); every integer is a Python int, the arrays C-contiguous:
//   conv1d_forward(x, w, b, y, stride, pad_left, pad_right, dilation)           b may be None
//   conv1d_backward(x, w, dy, dx, dw, db, stride, pad_left, pad_right, dilation)  db may be None
//   pool1d_forward(kind, x, y, arg, kernel, stride, pad_left, pad_right)         arg None for "avg"
//   pool1d_backward(kind, dy, arg, dx, kernel, stride, pad_left, pad_right)      arg None for "avg"
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "bind_checks.h"
#include "common/gemm.h"
#include "conv/conv1d.h"
#include "conv/pool1d.h"

namespace pyrnn {
namespace py = pybind11;

namespace {

// The 3-D array a kernel's shapes start from (its dtype already checked by dispatch_float).
std::vector<int64_t> dims3(py::handle h, const char* name, const char* labels) {
  const py::array a = as_array(h, name);
  if (a.ndim() != 3)
    throw py::value_error(std::string(name) + ": expected a 3-D array " + labels + ", got shape " +
                          shape_str(shape_of(a)));
  return shape_of(a);
}

// U = (T + pl + pr - span) // s + 1, refused when < 1
int64_t output_length(int64_t T, int64_t K, int64_t stride, int64_t pl, int64_t pr, int64_t dilation) {
  const int64_t span = dilation * (K - 1) + 1;
  if (T + pl + pr < span)
    throw py::value_error("expected T + pad_left + pad_right >= dilation*(kernel-1) + 1 = " + std::to_string(span) +
                          " (T=" + std::to_string(T) + ", kernel=" + std::to_string(K) +
                          ", dilation=" + std::to_string(dilation) + "), got an output length of 0");
  return (T + pl + pr - span) / stride + 1;
}

// ------------------------------------------------------------------ conv1d
Conv1dDims conv_dims(py::handle x, py::handle w, py::handle stride, py::handle pad_left, py::handle pad_right,
                     py::handle dilation) {
  const auto xs = dims3(x, "x", "(B, T, C_in)");
  if (!py::isinstance<py::array>(w) || py::reinterpret_borrow<py::array>(w).ndim() != 3)
    throw py::value_error("w: expected a 3-D array (C_out, C_in, K), got " +
                          (py::isinstance<py::array>(w)
                               ? "shape " + shape_str(shape_of(py::reinterpret_borrow<py::array>(w)))
                               : type_name(w)));
  const auto ws = shape_of(py::reinterpret_borrow<py::array>(w));
  Conv1dDims d{xs[0],
               xs[1],
               xs[2],
               ws[0],
               ws[2],
               0,
               int_arg(stride, "stride", 1),
               int_arg(pad_left, "pad_left", 0),
               int_arg(pad_right, "pad_right", 0),
               int_arg(dilation, "dilation", 1)};
  if (d.K < 1) throw py::value_error("w: expected a kernel size K >= 1, got shape " + shape_str(ws));
  if (d.O > kMaxBlasDim || (d.C > 0 && d.K > kMaxBlasDim / d.C))  // C_in*K, without overflowing
    throw py::value_error("w: expected C_out and C_in*K < 2**31 (the 32-bit BLAS interface), got shape " +
                          shape_str(ws));
  d.U = output_length(d.T, d.K, d.stride, d.pad_left, d.pad_right, d.dilation);
  if (d.U > kMaxBlasDim)
    throw py::value_error("x: expected an output length < 2**31 (the 32-bit BLAS interface), got " +
                          std::to_string(d.U));
  return d;
}

template <typename F>
void conv_forward_impl(const Conv1dDims& d, py::handle x, py::handle w, py::handle b, py::handle y) {
  const F* xp = in_ptr<F>(x, "x", {d.B, d.T, d.C});
  const F* wp = in_ptr<F>(w, "w", {d.O, d.C, d.K});
  const F* bp = b.is_none() ? nullptr : in_ptr<F>(b, "b", {d.O});
  F* yp = out_ptr<F>(y, "y", {d.B, d.U, d.O});
  run_kernel([&](Cancel& cancel) { conv1d_forward<F>(d, xp, wp, bp, yp, cancel); });
}

template <typename F>
void conv_backward_impl(const Conv1dDims& d, py::handle x, py::handle w, py::handle dy, py::handle dx, py::handle dw,
                        py::handle db) {
  const F* xp = in_ptr<F>(x, "x", {d.B, d.T, d.C});
  const F* wp = in_ptr<F>(w, "w", {d.O, d.C, d.K});
  const F* dyp = in_ptr<F>(dy, "dy", {d.B, d.U, d.O});
  F* dxp = out_ptr<F>(dx, "dx", {d.B, d.T, d.C});
  F* dwp = out_ptr<F>(dw, "dw", {d.O, d.C, d.K});
  F* dbp = db.is_none() ? nullptr : out_ptr<F>(db, "db", {d.O});
  run_kernel([&](Cancel& cancel) { conv1d_backward<F>(d, xp, wp, dyp, dxp, dwp, dbp, cancel); });
}

// ------------------------------------------------------------------ pool1d
bool pool_kind(const py::handle& kind) {
  if (py::isinstance<py::str>(kind)) {
    const auto s = kind.cast<std::string>();
    if (s == "max" || s == "avg") return s == "max";
  }
  throw py::value_error("kind: expected 'max' or 'avg', got " + std::string(py::repr(kind)));
}

Pool1dDims pool_dims(const std::vector<int64_t>& xs, py::handle kernel, py::handle stride, py::handle pad_left,
                     py::handle pad_right) {
  Pool1dDims d{xs[0],
               xs[1],
               xs[2],
               int_arg(kernel, "kernel", 1),
               0,
               int_arg(stride, "stride", 1),
               int_arg(pad_left, "pad_left", 0),
               int_arg(pad_right, "pad_right", 0)};
  d.U = output_length(d.T, d.K, d.stride, d.pad_left, d.pad_right, 1);
  return d;
}

template <typename F>
void pool_forward_impl(bool is_max, const Pool1dDims& d, py::handle x, py::handle y, py::handle arg) {
  const F* xp = in_ptr<F>(x, "x", {d.B, d.T, d.C});
  F* yp = out_ptr<F>(y, "y", {d.B, d.U, d.C});
  int64_t* ap = is_max ? out_ptr<int64_t>(arg, "arg", {d.B, d.U, d.C}) : nullptr;
  run_kernel([&](Cancel& cancel) {
    if (is_max)
      max_pool1d_forward<F>(d, xp, yp, ap, cancel);
    else
      avg_pool1d_forward<F>(d, xp, yp, cancel);
  });
}

template <typename F>
void pool_backward_impl(bool is_max, const Pool1dDims& d, py::handle dy, py::handle arg, py::handle dx) {
  const F* dyp = in_ptr<F>(dy, "dy", {d.B, d.U, d.C});
  const int64_t* ap = is_max ? in_ptr<int64_t>(arg, "arg", {d.B, d.U, d.C}) : nullptr;
  F* dxp = out_ptr<F>(dx, "dx", {d.B, d.T, d.C});
  run_kernel([&](Cancel& cancel) {
    if (is_max)
      max_pool1d_backward<F>(d, dyp, ap, dxp, cancel);
    else
      avg_pool1d_backward<F>(d, dyp, dxp, cancel);
  });
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def(
      "conv1d_forward",
      [](py::handle x, py::handle w, py::handle b, py::handle y, py::handle stride, py::handle pad_left,
         py::handle pad_right, py::handle dilation) {
        dispatch_float(x, "x", [&](auto tag) {
          const Conv1dDims d = conv_dims(x, w, stride, pad_left, pad_right, dilation);
          conv_forward_impl<decltype(tag)>(d, x, w, b, y);
        });
      },
      py::arg("x"), py::arg("w"), py::arg("b"), py::arg("y"), py::arg("stride"), py::arg("pad_left"),
      py::arg("pad_right"), py::arg("dilation"), "Conv1D forward on (B, T, C_in); writes y (B, T_out, C_out).");
  m.def(
      "conv1d_backward",
      [](py::handle x, py::handle w, py::handle dy, py::handle dx, py::handle dw, py::handle db, py::handle stride,
         py::handle pad_left, py::handle pad_right, py::handle dilation) {
        dispatch_float(x, "x", [&](auto tag) {
          const Conv1dDims d = conv_dims(x, w, stride, pad_left, pad_right, dilation);
          conv_backward_impl<decltype(tag)>(d, x, w, dy, dx, dw, db);
        });
      },
      py::arg("x"), py::arg("w"), py::arg("dy"), py::arg("dx"), py::arg("dw"), py::arg("db"), py::arg("stride"),
      py::arg("pad_left"), py::arg("pad_right"), py::arg("dilation"),
      "Conv1D backward: writes dx (B, T, C_in), adds into dw (C_out, C_in, K) and db (C_out,).");
  m.def(
      "pool1d_forward",
      [](py::handle kind, py::handle x, py::handle y, py::handle arg, py::handle kernel, py::handle stride,
         py::handle pad_left, py::handle pad_right) {
        const bool is_max = pool_kind(kind);
        dispatch_float(x, "x", [&](auto tag) {
          const Pool1dDims d = pool_dims(dims3(x, "x", "(B, T, C)"), kernel, stride, pad_left, pad_right);
          pool_forward_impl<decltype(tag)>(is_max, d, x, y, arg);
        });
      },
      py::arg("kind"), py::arg("x"), py::arg("y"), py::arg("arg"), py::arg("kernel"), py::arg("stride"),
      py::arg("pad_left"), py::arg("pad_right"),
      "Max or average pooling over time; writes y (B, T_out, C) and, for 'max', arg (B, T_out, C) int64.");
  m.def(
      "pool1d_backward",
      [](py::handle kind, py::handle dy, py::handle arg, py::handle dx, py::handle kernel, py::handle stride,
         py::handle pad_left, py::handle pad_right) {
        const bool is_max = pool_kind(kind);
        dispatch_float(dy, "dy", [&](auto tag) {
          dims3(dy, "dy", "(B, T_out, C)");
          const Pool1dDims d = pool_dims(dims3(dx, "dx", "(B, T, C)"), kernel, stride, pad_left, pad_right);
          pool_backward_impl<decltype(tag)>(is_max, d, dy, arg, dx);
        });
      },
      py::arg("kind"), py::arg("dy"), py::arg("arg"), py::arg("dx"), py::arg("kernel"), py::arg("stride"),
      py::arg("pad_left"), py::arg("pad_right"), "Pooling backward: writes dx (B, T, C).");
}

}  // namespace pyrnn
