// Bindings of the normalisation family. Thin: check every argument, take pointers, call the kernel
// without the GIL (bind_checks.h). Outputs are allocated by the caller (pyrnn/backends/norm_cpp.py).
// Python signatures (cf. _C.pyi); the arrays C-contiguous, x's dtype for all but mean/inv_std (float64):
//   batchnorm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps, y, mean, inv_std, relu)
//       weight, bias, running_mean, running_var may be None (the running pair both or neither)
//   batchnorm_backward(x, dy, mean, inv_std, weight, batch_stats, dx, dweight, dbias, relu_y)
//       weight, dweight, dbias, relu_y may be None
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>

#include "bind_checks.h"
#include "norm/batchnorm.h"

namespace pyrnn {
namespace py = pybind11;

namespace {

BatchNormDims dims2(py::handle x, const char* name) {
  const py::array a = as_array(x, name);
  if (a.ndim() != 2)
    throw py::value_error(std::string(name) + ": expected a 2-D array (N, C), got shape " + shape_str(shape_of(a)));
  return BatchNormDims{a.shape(0), a.shape(1)};
}

bool bool_arg(py::handle h, const char* name) {
  if (!PyBool_Check(h.ptr()) && !py::isinstance(h, py::module_::import("numpy").attr("bool_")))
    throw py::type_error(std::string(name) + ": expected True or False, got " + type_name(h));
  return h.cast<bool>();
}

double real_arg(py::handle h, const char* name, double minimum, double maximum) {
  if (PyBool_Check(h.ptr()) || !(PyFloat_Check(h.ptr()) || PyLong_Check(h.ptr())))
    throw py::type_error(std::string(name) + ": expected a real number, got " + type_name(h));
  const double v = h.cast<double>();
  if (!std::isfinite(v) || v < minimum || v > maximum)
    throw py::value_error(std::string(name) + ": expected a finite number in [" + std::to_string(minimum) + ", " +
                          std::to_string(maximum) + "], got " + std::string(py::str(h)));
  return v;
}

template <typename F>
const F* opt_in(py::handle h, const char* name, int64_t C) {
  return h.is_none() ? nullptr : in_ptr<F>(h, name, {C});
}

template <typename F>
F* opt_out(py::handle h, const char* name, int64_t C) {
  return h.is_none() ? nullptr : out_ptr<F>(h, name, {C});
}

}  // namespace

void bind_norm(py::module_& m) {
  m.def(
      "batchnorm_forward",
      [](py::handle x, py::handle weight, py::handle bias, py::handle running_mean, py::handle running_var,
         py::handle training, py::handle momentum, py::handle eps, py::handle y, py::handle mean, py::handle inv_std,
         py::handle relu) {
        dispatch_float(x, "x", [&](auto tag) {
          using F = decltype(tag);
          const BatchNormDims d = dims2(x, "x");
          const bool train = bool_arg(training, "training");
          const double mom = real_arg(momentum, "momentum", 0.0, 1.0);
          const double e = real_arg(eps, "eps", 0.0, HUGE_VAL);
          const bool fuse_relu = bool_arg(relu, "relu");
          if (running_mean.is_none() != running_var.is_none())
            throw py::value_error("running_mean, running_var: expected both arrays or both None, got one of each");
          if (!train && running_mean.is_none())
            throw py::value_error("running_mean: expected running statistics when training=False, got None");
          if (train && d.N < 2)
            throw py::value_error("x: expected more than 1 value per channel to compute batch statistics, got N=" +
                                  std::to_string(d.N) + " rows");
          const F* xp = in_ptr<F>(x, "x", {d.N, d.C});
          const F* wp = opt_in<F>(weight, "weight", d.C);
          const F* bp = opt_in<F>(bias, "bias", d.C);
          F* rmp = opt_out<F>(running_mean, "running_mean", d.C);
          F* rvp = opt_out<F>(running_var, "running_var", d.C);
          F* yp = out_ptr<F>(y, "y", {d.N, d.C});
          double* mp = out_ptr<double>(mean, "mean", {d.C});
          double* sp = out_ptr<double>(inv_std, "inv_std", {d.C});
          run_kernel([&](Cancel& cancel) {
            batchnorm_forward<F>(d, xp, wp, bp, rmp, rvp, train, mom, e, yp, mp, sp, fuse_relu, cancel);
          });
        });
      },
      py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("running_mean"), py::arg("running_var"),
      py::arg("training"), py::arg("momentum"), py::arg("eps"), py::arg("y"), py::arg("mean"), py::arg("inv_std"),
      py::arg("relu") = false,
      "BatchNorm forward on x (N, C); writes y (N, C) (max(y, 0) with relu: a following ReLU fused), mean and "
      "inv_std (C,) float64, updates the running buffers in place when training.");
  m.def(
      "batchnorm_backward",
      [](py::handle x, py::handle dy, py::handle mean, py::handle inv_std, py::handle weight, py::handle batch_stats,
         py::handle dx, py::handle dweight, py::handle dbias, py::handle relu_y) {
        dispatch_float(x, "x", [&](auto tag) {
          using F = decltype(tag);
          const BatchNormDims d = dims2(x, "x");
          const bool bs = bool_arg(batch_stats, "batch_stats");
          const F* xp = in_ptr<F>(x, "x", {d.N, d.C});
          const F* dyp = in_ptr<F>(dy, "dy", {d.N, d.C});
          const double* mp = in_ptr<double>(mean, "mean", {d.C});
          const double* sp = in_ptr<double>(inv_std, "inv_std", {d.C});
          const F* wp = opt_in<F>(weight, "weight", d.C);
          F* dxp = out_ptr<F>(dx, "dx", {d.N, d.C});
          F* dwp = opt_out<F>(dweight, "dweight", d.C);
          F* dbp = opt_out<F>(dbias, "dbias", d.C);
          const F* yp = relu_y.is_none() ? nullptr : in_ptr<F>(relu_y, "relu_y", {d.N, d.C});
          run_kernel(
              [&](Cancel& cancel) { batchnorm_backward<F>(d, xp, dyp, yp, mp, sp, wp, bs, dxp, dwp, dbp, cancel); });
        });
      },
      py::arg("x"), py::arg("dy"), py::arg("mean"), py::arg("inv_std"), py::arg("weight"), py::arg("batch_stats"),
      py::arg("dx"), py::arg("dweight"), py::arg("dbias"), py::arg("relu_y") = py::none(),
      "BatchNorm backward: writes dx (N, C), adds into dweight and dbias (C,); relu_y (N, C): the output of a ReLU "
      "fused into the forward (relu=True), whose backward is applied to dy (0 where relu_y <= 0, else dy).");
}

}  // namespace pyrnn
