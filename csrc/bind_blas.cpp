// Binding of the GEMM provider: the Python side registers SciPy's Fortran
// sgemm/dgemm (from the PyCapsules of scipy.linalg.cython_blas).
#include <pybind11/pybind11.h>

#include "common/gemm.h"

namespace pyrnn {
namespace py = pybind11;

namespace {
void* capsule_pointer(const py::capsule& c, const char* what) {
  void* p = PyCapsule_GetPointer(c.ptr(), PyCapsule_GetName(c.ptr()));
  if (p == nullptr) {
    PyErr_Clear();
    throw py::value_error(std::string(what) + ": expected a capsule holding a function pointer, got an empty one");
  }
  return p;
}
}  // namespace

void bind_blas(py::module_& m) {
  m.def(
      "set_blas",
      [](py::capsule sgemm, py::capsule dgemm) {
        set_blas(reinterpret_cast<sgemm_fn>(capsule_pointer(sgemm, "sgemm")),
                 reinterpret_cast<dgemm_fn>(capsule_pointer(dgemm, "dgemm")));
      },
      py::arg("sgemm"), py::arg("dgemm"), "Register Fortran-BLAS sgemm/dgemm (e.g. scipy.linalg.cython_blas capsules).");
  m.def("have_blas", &have_blas, "Whether a BLAS is registered (else a portable loop GEMM is used).");
}

}  // namespace pyrnn
