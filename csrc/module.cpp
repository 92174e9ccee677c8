// pyrnn._C: the compiled backend. This file only calls one bind_<family> per kernel family.
#include <pybind11/pybind11.h>

namespace pyrnn {
void bind_common(pybind11::module_& m);
void bind_recurrent(pybind11::module_& m);
void bind_conv(pybind11::module_& m);
void bind_norm(pybind11::module_& m);
void bind_pool2d(pybind11::module_& m);
void bind_conv2d(pybind11::module_& m);
void bind_activation(pybind11::module_& m);
void bind_optim(pybind11::module_& m);
void bind_concat(pybind11::module_& m);
}  // namespace pyrnn

PYBIND11_MODULE(_C, m) {
  m.doc() = "pyrnn compiled kernels (C++); see pyrnn.backends.cpp for the Python side";
  pyrnn::bind_common(m);
  pyrnn::bind_recurrent(m);
  pyrnn::bind_conv(m);
  pyrnn::bind_norm(m);
  pyrnn::bind_pool2d(m);
  pyrnn::bind_conv2d(m);
  pyrnn::bind_activation(m);
  pyrnn::bind_optim(m);
  pyrnn::bind_concat(m);
}
