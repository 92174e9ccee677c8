// Bindings of the shared pieces: the GEMM provider (the Python side registers
// SciPy's Fortran sgemm/dgemm from the PyCapsules of scipy.linalg.cython_blas)
// and the kernels' own float activations, exposed so their accuracy is tested.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bind_checks.h"
#include "common/activations.h"
#include "common/gemm.h"

namespace pyrnn {
namespace py = pybind11;

namespace {
void* capsule_pointer(const py::object& c, const char* what) {
  void* p = PyCapsule_GetPointer(c.ptr(), PyCapsule_GetName(c.ptr()));
  if (p == nullptr) {
    PyErr_Clear();
    throw py::value_error(std::string(what) + ": expected a capsule holding a function pointer, got an empty one");
  }
  return p;
}
}  // namespace

// y = f(x) elementwise with the kernels' float32 activation f
template <float (*Fn)(float)>
py::array_t<float> apply_f32(py::handle xh, const char* name) {
  const int64_t n = py::isinstance<py::array>(xh) ? static_cast<int64_t>(py::reinterpret_borrow<py::array>(xh).size()) : -1;
  if (n < 0 || py::reinterpret_borrow<py::array>(xh).ndim() != 1)
    throw py::value_error(std::string(name) + ": expected a 1-D float32 array");
  const float* x = in_ptr<float>(xh, "x", {n});
  py::array_t<float> y(n);
  float* out = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    for (int64_t i = 0; i < n; ++i) out[i] = Fn(x[i]);
  }
  return y;
}

float tanh_f32(float x) { return act_tanh(x); }
float sigmoid_f32(float x) { return sigmoid(x); }

void bind_common(py::module_& m) {
  m.def(
      "set_blas",
      [](py::object sgemm, py::object dgemm) {
        if (sgemm.is_none() && dgemm.is_none()) return set_blas(nullptr, nullptr);
        if (!py::isinstance<py::capsule>(sgemm) || !py::isinstance<py::capsule>(dgemm))
          throw py::type_error("set_blas: expected two PyCapsules (or two None to use the loop GEMM)");
        set_blas(reinterpret_cast<sgemm_fn>(capsule_pointer(sgemm, "sgemm")),
                 reinterpret_cast<dgemm_fn>(capsule_pointer(dgemm, "dgemm")));
      },
      py::arg("sgemm"), py::arg("dgemm"),
      "Register Fortran-BLAS sgemm/dgemm (scipy.linalg.cython_blas capsules); None, None selects the loop GEMM.");
  m.def(
      "_set_blas64",
      [](uintptr_t sgemm, uintptr_t dgemm) {
        if ((sgemm == 0) != (dgemm == 0))
          throw py::value_error("_set_blas64: expected two function addresses (or two zeros), got one zero");
        set_blas64(reinterpret_cast<sgemm64_fn>(sgemm), reinterpret_cast<dgemm64_fn>(dgemm));
      },
      py::arg("sgemm"), py::arg("dgemm"),
      "Private (pyrnn.backends.cpp registers it): addresses of an ILP64 sgemm/dgemm, e.g. NumPy's OpenBLAS; 0, 0 unsets.");
  m.def("blas_interface", &blas_interface, "What the kernels' GEMM calls: 'ilp64' (NumPy's OpenBLAS), 'lp64' (SciPy's) or 'loops'.");
  m.def("have_blas", &have_blas, "Whether a BLAS is registered (else a portable loop GEMM is used).");
  m.def("tanh_f32", [](py::handle x) { return apply_f32<tanh_f32>(x, "tanh_f32"); }, py::arg("x"),
        "The kernels' float32 tanh, elementwise over a 1-D float32 array (for accuracy tests).");
  m.def("sigmoid_f32", [](py::handle x) { return apply_f32<sigmoid_f32>(x, "sigmoid_f32"); }, py::arg("x"),
        "The kernels' float32 sigmoid, elementwise over a 1-D float32 array (for accuracy tests).");
}

}  // namespace pyrnn
