// Binding of the GEMM provider: the Python side registers SciPy's Fortran
// sgemm/dgemm (from the PyCapsules of scipy.linalg.cython_blas).
#include <pybind11/pybind11.h>

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

void bind_blas(py::module_& m) {
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
  m.def("have_blas", &have_blas, "Whether a BLAS is registered (else a portable loop GEMM is used).");
}

}  // namespace pyrnn
