// Bindings of the concatenation along the last axis and its split (csrc/copy). Thin: check every array,
// take pointers, copy without the GIL. Python signatures (cf. _C.pyi):
//   concat_last(xs, y)      y (..., F) written from the list xs of (..., F_k), sum_k F_k = F
//   split_last(y, parts)    each of the list parts (..., F_k) written from y (..., F)
// Every array C-contiguous, of y's dtype (float32 or float64) and of y's shape but for the last axis; the
// written arrays overlap no read one.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "bind_checks.h"
#include "copy/concat.h"

namespace pyrnn {
namespace py = pybind11;

namespace {

struct Parts {
  int64_t R = 1;
  std::vector<int64_t> widths;
  std::vector<py::array> arrays;
  int bytes = 4;
};

bool overlap(const py::array& a, const py::array& b) {
  const auto* a0 = static_cast<const char*>(a.data());
  const auto* b0 = static_cast<const char*>(b.data());
  return a.nbytes() > 0 && b.nbytes() > 0 && a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

// y and the list `parts`, checked against each other (parts_written: the parts are the outputs)
Parts checked(py::handle y, py::handle parts, const char* parts_name, bool parts_written) {
  Parts p;
  if (!py::isinstance<py::list>(parts))
    throw py::type_error(std::string(parts_name) + ": expected a list of arrays, got " + type_name(parts));
  const auto list = py::reinterpret_borrow<py::list>(parts);
  if (list.size() == 0) throw py::value_error(std::string(parts_name) + ": expected at least one array, got none");
  dispatch_float(y, "y", [&](auto tag) {
    using F = decltype(tag);
    p.bytes = static_cast<int>(sizeof(F));
    const py::array ya = as_array(y, "y");
    const auto shape = shape_of(ya);
    if (shape.empty()) throw py::value_error("y: expected an array of at least 1 axis, got a 0-D one");
    checked_array<F>(y, "y", shape, !parts_written);
    for (size_t i = 0; i + 1 < shape.size(); ++i) p.R *= shape[i];
    int64_t F_total = 0;
    for (size_t k = 0; k < list.size(); ++k) {
      const std::string name = std::string(parts_name) + "[" + std::to_string(k) + "]";
      const py::array a = as_array(list[k], name);
      auto want = shape;
      want.back() = a.ndim() == ya.ndim() ? a.shape(a.ndim() - 1) : -1;
      if (want.back() < 0)
        throw py::value_error(name + ": expected " + std::to_string(shape.size()) + " axes (y's), got " +
                              std::to_string(a.ndim()));
      p.arrays.push_back(checked_array<F>(list[k], name, want, parts_written));
      p.widths.push_back(want.back());
      F_total += want.back();
      if (overlap(ya, p.arrays.back()))
        throw py::value_error(name + ": expected an array sharing no memory with y, got one that does");
    }
    if (F_total != shape.back())
      throw py::value_error("y: expected a last axis of " + std::to_string(F_total) + " (the parts' sum), got " +
                            std::to_string(shape.back()));
  });
  return p;
}

}  // namespace

void bind_concat(py::module_& m) {
  m.def(
      "concat_last",
      [](py::handle xs, py::handle y) {
        const Parts p = checked(y, xs, "xs", false);
        std::vector<const void*> ptrs;
        for (const auto& a : p.arrays) ptrs.push_back(a.data());
        void* out = as_array(y, "y").mutable_data();
        py::gil_scoped_release nogil;
        concat_last(p.R, ptrs, p.widths, out, p.bytes);
      },
      py::arg("xs"), py::arg("y"), "Concatenation along the last axis: writes y from the list xs.");
  m.def(
      "split_last",
      [](py::handle y, py::handle parts) {
        Parts p = checked(y, parts, "parts", true);
        std::vector<void*> ptrs;
        for (auto& a : p.arrays) ptrs.push_back(a.mutable_data());
        const void* in = as_array(y, "y").data();
        py::gil_scoped_release nogil;
        split_last(p.R, in, ptrs, p.widths, p.bytes);
      },
      py::arg("y"), py::arg("parts"), "The split along the last axis: writes each of parts from y.");
}

}  // namespace pyrnn
