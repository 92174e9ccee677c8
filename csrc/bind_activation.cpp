// Bindings of the elementwise activations (csrc/activation). Thin: check every argument, take pointers,
// call the kernel without the GIL (bind_checks.h). Outputs are allocated by the caller
// (pyrnn/backends/activation_cpp.py). Python signatures (cf. _C.pyi); the arrays C-contiguous, of one
// shape (any) and one dtype (float32 or float64), the output overlapping no input:
//   activation_forward(kind, x, y, negative_slope)          y written
//   activation_backward(kind, saved, dy, dx, negative_slope)  dx written; saved: y, or x for "leaky_relu"
// kind: "relu", "leaky_relu", "tanh" or "sigmoid"; negative_slope: a finite real (read by "leaky_relu" only).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <initializer_list>
#include <string>

#include "activation/activation.h"
#include "bind_checks.h"

namespace pyrnn {
namespace py = pybind11;

namespace {

Activation activation_kind(py::handle kind) {
  if (py::isinstance<py::str>(kind)) {
    const auto s = kind.cast<std::string>();
    if (s == "relu") return Activation::Relu;
    if (s == "leaky_relu") return Activation::LeakyRelu;
    if (s == "tanh") return Activation::Tanh;
    if (s == "sigmoid") return Activation::Sigmoid;
  }
  throw py::value_error("kind: expected 'relu', 'leaky_relu', 'tanh' or 'sigmoid', got " + std::string(py::repr(kind)));
}

double slope_arg(py::handle h) {
  if (PyBool_Check(h.ptr()) || !(PyFloat_Check(h.ptr()) || PyLong_Check(h.ptr())))
    throw py::type_error("negative_slope: expected a real number, got " + type_name(h));
  const double v = h.cast<double>();
  if (!std::isfinite(v))
    throw py::value_error("negative_slope: expected a finite number, got " + std::string(py::str(h)));
  return v;
}

// `out` (named `name`) shares no byte with any of `ins`: the kernels read every input whole before the
// output is complete, and never work in place
void check_no_overlap(py::handle out, const char* name, std::initializer_list<std::pair<py::handle, const char*>> ins) {
  const py::array o = as_array(out, name);
  const auto* lo = static_cast<const char*>(o.data());
  const auto* hi = lo + o.nbytes();
  for (const auto& [in, in_name] : ins) {
    const py::array a = as_array(in, in_name);
    const auto* a_lo = static_cast<const char*>(a.data());
    if (o.nbytes() > 0 && a.nbytes() > 0 && lo < a_lo + a.nbytes() && a_lo < hi)
      throw py::value_error(std::string(name) +
                            ": expected an array that overlaps no input, got one sharing memory with " + in_name);
  }
}

}  // namespace

void bind_activation(py::module_& m) {
  m.def(
      "activation_forward",
      [](py::handle kind, py::handle x, py::handle y, py::handle negative_slope) {
        const Activation k = activation_kind(kind);
        const double s = slope_arg(negative_slope);
        dispatch_float(x, "x", [&](auto tag) {
          using F = decltype(tag);
          const auto shape = shape_of(as_array(x, "x"));
          const F* xp = in_ptr<F>(x, "x", shape);
          F* yp = out_ptr<F>(y, "y", shape);
          check_no_overlap(y, "y", {{x, "x"}});
          const int64_t n = as_array(x, "x").size();
          run_kernel([&](Cancel& cancel) { activation_forward<F>(k, xp, yp, n, static_cast<F>(s), cancel); });
        });
      },
      py::arg("kind"), py::arg("x"), py::arg("y"), py::arg("negative_slope"),
      "An elementwise activation: writes y (the shape of x) from x.");
  m.def(
      "activation_backward",
      [](py::handle kind, py::handle saved, py::handle dy, py::handle dx, py::handle negative_slope) {
        const Activation k = activation_kind(kind);
        const double s = slope_arg(negative_slope);
        dispatch_float(saved, "saved", [&](auto tag) {
          using F = decltype(tag);
          const auto shape = shape_of(as_array(saved, "saved"));
          const F* sp = in_ptr<F>(saved, "saved", shape);
          const F* dyp = in_ptr<F>(dy, "dy", shape);
          F* dxp = out_ptr<F>(dx, "dx", shape);
          check_no_overlap(dx, "dx", {{saved, "saved"}, {dy, "dy"}});
          const int64_t n = as_array(saved, "saved").size();
          run_kernel([&](Cancel& cancel) { activation_backward<F>(k, sp, dyp, dxp, n, static_cast<F>(s), cancel); });
        });
      },
      py::arg("kind"), py::arg("saved"), py::arg("dy"), py::arg("dx"), py::arg("negative_slope"),
      "The gradient of an elementwise activation: writes dx (the shape of dy) from the forward's y (x for "
      "'leaky_relu') and dy.");
}

}  // namespace pyrnn
