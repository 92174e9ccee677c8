// Bindings of the 1-D pooling kernels (Conv1D itself is the 2-D engine's case H = 1: bind_conv2d.cpp).
// Thin: check every argument, take pointers, call the kernel without the GIL (bind_checks.h). Outputs
// are allocated by the caller (pyrnn/backends/conv_cpp.py). Python signatures (cf. _C.pyi); every
// integer is a Python int, the arrays C-contiguous:
//   pool1d_forward(kind, x, y, arg, kernel, stride, pad_left, pad_right)         arg None for "avg"
//   pool1d_backward(kind, dy, arg, dx, kernel, stride, pad_left, pad_right)      arg None for "avg"
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "bind_checks.h"
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
