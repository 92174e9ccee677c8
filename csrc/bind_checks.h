// Argument checks for the bindings: every array is verified (type, dtype, shape,
// C order, writability) before a kernel sees its pointer, and every message
// says what was expected and what came.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace pyrnn {
namespace py = pybind11;

inline std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << "(";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << (s.size() == 1 ? ",)" : ")");
  return o.str();
}

inline std::vector<int64_t> shape_of(const py::array& a) {
  std::vector<int64_t> s(static_cast<size_t>(a.ndim()));
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s[static_cast<size_t>(i)] = a.shape(i);
  return s;
}

template <typename F>
const char* dtype_name() {
  return sizeof(F) == 4 ? "float32" : "float64";
}

// The array behind `h`, checked to be a C-contiguous ndarray of F with shape `shape`.
template <typename F>
py::array checked_array(py::handle h, const std::string& name, const std::vector<int64_t>& shape, bool writable) {
  if (!py::isinstance<py::array>(h))
    throw py::type_error(name + ": expected a numpy.ndarray, got " + std::string(py::str(py::type::of(h).attr("__name__"))));
  auto a = py::reinterpret_borrow<py::array>(h);
  if (!py::isinstance<py::array_t<F>>(h))
    throw py::type_error(name + ": expected dtype " + dtype_name<F>() + ", got " + std::string(py::str(a.dtype())));
  if (shape_of(a) != shape)
    throw py::value_error(name + ": expected shape " + shape_str(shape) + ", got " + shape_str(shape_of(a)));
  if (!(a.flags() & py::array::c_style)) throw py::value_error(name + ": expected a C-contiguous array, got strides that are not");
  if (writable && !a.writeable()) throw py::value_error(name + ": expected a writable array, got a read-only one");
  return a;
}

template <typename F>
const F* in_ptr(py::handle h, const std::string& name, const std::vector<int64_t>& shape) {
  return static_cast<const F*>(checked_array<F>(h, name, shape, false).data());
}

template <typename F>
F* out_ptr(py::handle h, const std::string& name, const std::vector<int64_t>& shape) {
  return static_cast<F*>(checked_array<F>(h, name, shape, true).mutable_data());
}

// The n-tuple argument `name`, checked for its length.
inline py::tuple checked_tuple(py::handle h, const std::string& name, size_t n) {
  if (!py::isinstance<py::tuple>(h)) throw py::type_error(name + ": expected a tuple, got " + std::string(py::str(py::type::of(h).attr("__name__"))));
  auto t = py::reinterpret_borrow<py::tuple>(h);
  if (t.size() != n)
    throw py::value_error(name + ": expected a tuple of " + std::to_string(n) + " arrays, got " + std::to_string(t.size()));
  return t;
}

}  // namespace pyrnn
