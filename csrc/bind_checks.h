// What every binding shares: argument checks (every array is verified, type, dtype, shape,
// C order, writability, before a kernel sees its pointer; every message says what was expected
// and what came), the one float32/float64 dispatch, and the call of a kernel without the GIL
// under a cancellation hook that lets Ctrl-C stop it (see common/cancel.h).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <new>  // std::bad_alloc
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/cancel.h"
#include "common/gemm.h"  // kMaxBlasDim

namespace pyrnn {
namespace py = pybind11;

inline std::string type_name(py::handle h) { return std::string(py::str(py::type::of(h).attr("__name__"))); }

// A Python integer (anything with __index__ but bool) in [minimum, kMaxBlasDim].
inline int64_t int_arg(py::handle h, const std::string& name, int64_t minimum) {
  const std::string what = name + ": expected an integer >= " + std::to_string(minimum);
  if (PyBool_Check(h.ptr()) || !PyIndex_Check(h.ptr())) throw py::type_error(what + ", got " + type_name(h));
  const auto i = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
  if (!i) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow != 0 || v < minimum || v > kMaxBlasDim)
    throw py::value_error(what + " and <= " + std::to_string(kMaxBlasDim) + ", got " + std::string(py::str(h)));
  return static_cast<int64_t>(v);
}

// A Python bool.
inline bool bool_arg(py::handle h, const std::string& name) {
  if (!PyBool_Check(h.ptr())) throw py::type_error(name + ": expected a bool, got " + type_name(h));
  return h.ptr() == Py_True;
}

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

// `h` as an ndarray, or a TypeError naming `name`.
inline py::array as_array(py::handle h, const std::string& name) {
  if (!py::isinstance<py::array>(h)) throw py::type_error(name + ": expected a numpy.ndarray, got " + type_name(h));
  return py::reinterpret_borrow<py::array>(h);
}

// The array behind `h`, checked to be an ndarray of T (float, double, int64_t) with shape `shape`.
template <typename T>
py::array typed_array(py::handle h, const std::string& name, const std::vector<int64_t>& shape) {
  py::array a = as_array(h, name);
  if (!py::isinstance<py::array_t<T>>(h))
    throw py::type_error(name + ": expected dtype " + std::string(py::str(py::dtype::of<T>())) + ", got " +
                         std::string(py::str(a.dtype())));
  if (shape_of(a) != shape)
    throw py::value_error(name + ": expected shape " + shape_str(shape) + ", got " + shape_str(shape_of(a)));
  return a;
}

// ... and C-contiguous, writable if asked.
template <typename T>
py::array checked_array(py::handle h, const std::string& name, const std::vector<int64_t>& shape, bool writable) {
  py::array a = typed_array<T>(h, name, shape);
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(name + ": expected a C-contiguous array, got strides that are not");
  if (writable && !a.writeable()) throw py::value_error(name + ": expected a writable array, got a read-only one");
  return a;
}

template <typename T>
const T* in_ptr(py::handle h, const std::string& name, const std::vector<int64_t>& shape) {
  return static_cast<const T*>(checked_array<T>(h, name, shape, false).data());
}

template <typename T>
T* out_ptr(py::handle h, const std::string& name, const std::vector<int64_t>& shape) {
  return static_cast<T*>(checked_array<T>(h, name, shape, true).mutable_data());
}

// The array behind `h`, read-only: a 3-D array of T with shape `shape` whose last axis has unit stride and
// whose other strides are whole elements, not negative (a view of a batch-first array, say); `ld` gets the
// element strides of its first two axes.
template <typename T>
const T* in_rows(py::handle h, const std::string& name, const std::vector<int64_t>& shape, int64_t (&ld)[2]) {
  const py::array a = typed_array<T>(h, name, shape);
  const auto item = static_cast<py::ssize_t>(sizeof(T));
  bool ok = reinterpret_cast<uintptr_t>(a.data()) % alignof(T) == 0 && (a.shape(2) <= 1 || a.strides(2) == item);
  std::vector<int64_t> strides(3);
  for (py::ssize_t i = 0; i < 3; ++i) {
    strides[static_cast<size_t>(i)] = a.strides(i);
    if (i < 2 && a.shape(i) > 1) ok = ok && a.strides(i) >= 0 && a.strides(i) % item == 0;
  }
  if (!ok)
    throw py::value_error(name +
                          ": expected aligned rows of unit stride, whole-element strides >= 0 between them, got " +
                          "strides " + shape_str(strides) + " (bytes)");
  for (int i = 0; i < 2; ++i) ld[i] = a.shape(i) > 1 ? a.strides(i) / item : 0;
  return static_cast<const T*>(a.data());
}

// The array behind `h`, written: as in_rows, and writable, its rows apart (no two of its elements share memory).
template <typename T>
T* out_rows(py::handle h, const std::string& name, const std::vector<int64_t>& shape, int64_t (&ld)[2]) {
  const T* p = in_rows<T>(h, name, shape, ld);
  const py::array a = as_array(h, name);
  if (!a.writeable()) throw py::value_error(name + ": expected a writable array, got a read-only one");
  const bool t_outer = ld[0] >= ld[1];  // the axis of the larger stride holds whole copies of the other's
  const int64_t inner = t_outer ? ld[1] : ld[0], outer = t_outer ? ld[0] : ld[1];
  const int64_t n_inner = t_outer ? shape[1] : shape[0], n_outer = t_outer ? shape[0] : shape[1];
  if ((n_inner > 1 && inner < shape[2]) || (n_outer > 1 && outer < n_inner * (n_inner > 1 ? inner : shape[2])))
    throw py::value_error(name + ": expected rows that do not overlap, got strides " +
                          shape_str({ld[0] * int64_t(sizeof(T)), ld[1] * int64_t(sizeof(T)), int64_t(sizeof(T))}) +
                          " (bytes) for shape " + shape_str(shape));
  return const_cast<T*>(p);
}

// The n-tuple argument `name`, checked for its length.
inline py::tuple checked_tuple(py::handle h, const std::string& name, size_t n) {
  if (!py::isinstance<py::tuple>(h)) throw py::type_error(name + ": expected a tuple, got " + type_name(h));
  auto t = py::reinterpret_borrow<py::tuple>(h);
  if (t.size() != n)
    throw py::value_error(name + ": expected a tuple of " + std::to_string(n) + " arrays, got " +
                          std::to_string(t.size()));
  return t;
}

// fn(float{}) or fn(double{}), after the dtype of the array `h` (the argument that sets the
// dtype of a call; every other array is then checked against it).
template <typename Fn>
decltype(auto) dispatch_float(py::handle h, const std::string& name, Fn&& fn) {
  const py::array a = as_array(h, name);
  if (py::isinstance<py::array_t<float>>(a)) return fn(float{});
  if (py::isinstance<py::array_t<double>>(a)) return fn(double{});
  throw py::type_error(name + ": expected dtype float32 or float64, got " + std::string(py::str(a.dtype())));
}

// Whether the calling thread is Python's main thread, the only one that runs signal handlers.
inline bool on_python_main_thread() {
  static PyObject* main_thread = nullptr;  // threading.main_thread; set once, under the GIL
  if (main_thread == nullptr)
    main_thread = py::object(py::module_::import("threading").attr("main_thread")).release().ptr();
  const py::object ident = py::reinterpret_borrow<py::object>(main_thread)().attr("ident");
  return !ident.is_none() && ident.cast<unsigned long>() == PyThread_get_thread_ident();
}

// The cancellation hook: take the GIL briefly and run Python's signal handlers; true when one
// raised (Ctrl-C: KeyboardInterrupt), which is then this thread's pending Python exception.
inline bool python_signal_raised(void*) {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

// Private (tests): the next kernel run on Python's main thread asks its hook at every poll and stops
// at the n-th as a Ctrl-C landing there would (KeyboardInterrupt); 0: none pending. See
// _C._interrupt_next_kernel.
inline std::atomic<long long> g_interrupt_next_kernel{0};

// Private (tests): kernel calls that stopped on a cancellation since the module loaded (a Ctrl-C that a kernel
// took; one that lands after a kernel's last poll is raised by Python after the call, which ran to its end).
// See _C._cancelled_calls.
inline std::atomic<long long> g_cancelled_calls{0};

// The test countdown's hook: true (KeyboardInterrupt set) when *ctx polls are spent.
inline bool countdown_spent(void* ctx) {
  if (--*static_cast<long long*>(ctx) > 0) return false;
  py::gil_scoped_acquire gil;
  PyErr_SetString(PyExc_KeyboardInterrupt, "interrupted by pyrnn._C._interrupt_next_kernel");
  return true;
}

// kernel(cancel) without the GIL. On the main thread the kernel polls the signal handlers (see
// common/cancel.h); if one raised, the kernel stops early and its exception is raised here, with
// the GIL held again. Elsewhere nothing interrupts it (Python handles signals on the main thread).
template <typename Kernel>
void run_kernel(Kernel&& kernel) {
  const bool main = on_python_main_thread();
  long long countdown = main ? g_interrupt_next_kernel.exchange(0) : 0;  // the test countdown, if one is pending
  Cancel::Hook hook = main ? &python_signal_raised : nullptr;
  std::chrono::nanoseconds interval = Cancel::kPollInterval;
  if (countdown > 0) hook = &countdown_spent, interval = std::chrono::nanoseconds(0);
  Cancel cancel(hook, &countdown, interval);
  bool out_of_memory = false;
  {
    py::gil_scoped_release nogil;
    try {
      kernel(cancel);
    } catch (const std::bad_alloc&) {  // a scratch buffer (pybind's own translation says only "std::bad_alloc")
      out_of_memory = true;
    }
  }
  if (out_of_memory) {
    PyErr_SetString(PyExc_MemoryError,
                    "unable to allocate the kernel's scratch memory: these sizes need more than this machine has");
    throw py::error_already_set();
  }
  if (cancel.cancelled()) {
    g_cancelled_calls.fetch_add(1);
    throw py::error_already_set();
  }
}

}  // namespace pyrnn
