// Bindings of the optimizers' fused updates (csrc/optim). Thin: check every array of every tensor first,
// then run the whole step without the GIL. Python signature (cf. _C.pyi):
//   adam_update(params, grads, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay,
//               decoupled, step)
// params, grads, exp_avg, exp_avg_sq: lists of one length; max_exp_avg_sq: such a list (AMSGrad) or None.
// Tensor i: C-contiguous arrays of params[i]'s shape and dtype (float32 or float64), all but grads[i]
// writable. The moments are the optimizer's own buffers (pyrnn.optim.Adam), never views of a parameter.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <vector>

#include "bind_checks.h"
#include "optim/adam.h"

namespace pyrnn {
namespace py = pybind11;

namespace {

py::list list_arg(py::handle h, const std::string& name, py::ssize_t n) {
  if (!py::isinstance<py::list>(h)) throw py::type_error(name + ": expected a list of arrays, got " + type_name(h));
  auto l = py::reinterpret_borrow<py::list>(h);
  if (n >= 0 && static_cast<py::ssize_t>(l.size()) != n)
    throw py::value_error(name + ": expected a list of " + std::to_string(n) + " arrays (one per parameter), got " +
                          std::to_string(l.size()));
  return l;
}

double real_arg(py::handle h, const std::string& name) {
  if (PyBool_Check(h.ptr()) || !(PyFloat_Check(h.ptr()) || PyLong_Check(h.ptr())))
    throw py::type_error(name + ": expected a real number, got " + type_name(h));
  const double v = h.cast<double>();
  if (!std::isfinite(v)) throw py::value_error(name + ": expected a finite number, got " + std::string(py::str(h)));
  return v;
}

template <typename F>
struct Tensor {
  int64_t n;
  F *p, *m, *v, *vmax;
  const F* g;
};

}  // namespace

void bind_optim(py::module_& m) {
  m.def(
      "adam_update",
      [](py::handle params, py::handle grads, py::handle exp_avg, py::handle exp_avg_sq, py::handle max_exp_avg_sq,
         py::handle lr, py::handle beta1, py::handle beta2, py::handle eps, py::handle weight_decay,
         py::handle decoupled, py::handle step) {
        const py::list ps = list_arg(params, "params", -1);
        const auto n = static_cast<py::ssize_t>(ps.size());
        const py::list gs = list_arg(grads, "grads", n), ms = list_arg(exp_avg, "exp_avg", n),
                       vs = list_arg(exp_avg_sq, "exp_avg_sq", n);
        const bool amsgrad = !max_exp_avg_sq.is_none();
        const py::list xs = amsgrad ? list_arg(max_exp_avg_sq, "max_exp_avg_sq", n) : py::list();
        const AdamStep s{real_arg(lr, "lr"),
                         real_arg(beta1, "beta1"),
                         real_arg(beta2, "beta2"),
                         real_arg(eps, "eps"),
                         real_arg(weight_decay, "weight_decay"),
                         bool_arg(decoupled, "decoupled"),
                         int_arg(step, "step", 1)};
        std::vector<Tensor<float>> f32;
        std::vector<Tensor<double>> f64;
        for (py::ssize_t i = 0; i < n; ++i) {
          const std::string at = "[" + std::to_string(i) + "]";
          dispatch_float(ps[i], "params" + at, [&](auto tag) {
            using F = decltype(tag);
            const auto shape = shape_of(as_array(ps[i], "params" + at));
            Tensor<F> t{static_cast<int64_t>(as_array(ps[i], "params" + at).size()),
                        out_ptr<F>(ps[i], "params" + at, shape),
                        out_ptr<F>(ms[i], "exp_avg" + at, shape),
                        out_ptr<F>(vs[i], "exp_avg_sq" + at, shape),
                        amsgrad ? out_ptr<F>(xs[i], "max_exp_avg_sq" + at, shape) : nullptr,
                        in_ptr<F>(gs[i], "grads" + at, shape)};
            if constexpr (sizeof(F) == 4)
              f32.push_back(t);
            else
              f64.push_back(t);
          });
        }
        py::gil_scoped_release nogil;
        for (const auto& t : f32) adam_update<float>(s, t.n, t.p, t.g, t.m, t.v, t.vmax);
        for (const auto& t : f64) adam_update<double>(s, t.n, t.p, t.g, t.m, t.v, t.vmax);
      },
      py::arg("params"), py::arg("grads"), py::arg("exp_avg"), py::arg("exp_avg_sq"), py::arg("max_exp_avg_sq"),
      py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("decoupled"),
      py::arg("step"), "One Adam/AdamW step of every tensor, in place (params, exp_avg, exp_avg_sq, max_exp_avg_sq).");
}

}  // namespace pyrnn
