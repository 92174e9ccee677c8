// Bindings of the 2-D pooling/upsampling kernels (csrc/pool2d). Each checks every array (dtype,
// shape, C-contiguity, writability, indices in range) before the kernel runs without the GIL.
// Python signatures (cf. _C.pyi); pairs are (h, w) tuples of Python ints, the arrays C-contiguous:
//   pool2d_forward(kind, x, y, arg, div_h, div_w, kernel, stride, padding, dilation)
//       y (B, OH, OW, C) written; "max": arg (B, OH, OW, C) int64 written, div_* None;
//       "avg": arg None, div_h (OH,) and div_w (OW,) int64 (torch's divisors, from the Python side)
//   pool2d_backward(kind, dy, arg, div_h, div_w, dx, kernel, stride, padding, dilation)   dx (B, H, W, C) written
//   upsample2d_forward(mode, x, y, axes)    axes = (ih0, ih1, lh0, lh1, iw0, iw1, lw0, lw1)
//   upsample2d_backward(mode, dy, dx, axes)
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "bind_checks.h"
#include "pool2d/pool2d.h"

namespace pyrnn {
namespace py = pybind11;

namespace {

// A Python integer (anything with __index__ but bool) in [minimum, 2**31 - 1].
int64_t pair_item(py::handle h, const std::string& name, int64_t minimum) {
  const std::string what = name + ": expected integers >= " + std::to_string(minimum);
  if (PyBool_Check(h.ptr()) || !PyIndex_Check(h.ptr())) throw py::type_error(what + ", got " + type_name(h));
  const auto i = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
  if (!i) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow != 0 || v < minimum || v > 2147483647LL)
    throw py::value_error(what + " and <= 2147483647, got " + std::string(py::str(h)));
  return static_cast<int64_t>(v);
}

void pair(py::handle h, const std::string& name, int64_t minimum, int64_t& a, int64_t& b) {
  if (!py::isinstance<py::tuple>(h) || py::len(h) != 2)
    throw py::type_error(name + ": expected a tuple (h, w), got " + type_name(h));
  const auto t = py::reinterpret_borrow<py::tuple>(h);
  a = pair_item(t[0], name, minimum);
  b = pair_item(t[1], name, minimum);
}

std::vector<int64_t> dims4(py::handle h, const char* name) {
  const py::array a = as_array(h, name);
  if (a.ndim() != 4)
    throw py::value_error(std::string(name) + ": expected a 4-D array (B, H, W, C), got shape " +
                          shape_str(shape_of(a)));
  return shape_of(a);
}

bool is_max_kind(py::handle kind) {
  if (py::isinstance<py::str>(kind)) {
    const auto s = kind.cast<std::string>();
    if (s == "max" || s == "avg") return s == "max";
  }
  throw py::value_error("kind: expected 'max' or 'avg', got " + std::string(py::repr(kind)));
}

bool is_nearest(py::handle mode) {
  if (py::isinstance<py::str>(mode)) {
    const auto s = mode.cast<std::string>();
    if (s == "nearest" || s == "bilinear") return s == "nearest";
  }
  throw py::value_error("mode: expected 'nearest' or 'bilinear', got " + std::string(py::repr(mode)));
}

// geometry: x's (B, H, W, C) and y's (OH, OW); the pairs from Python
Pool2dDims pool_dims(const std::vector<int64_t>& xs, const std::vector<int64_t>& ys, py::handle kernel,
                     py::handle stride, py::handle padding, py::handle dilation) {
  Pool2dDims d{};
  d.B = xs[0], d.H = xs[1], d.W = xs[2], d.C = xs[3], d.OH = ys[1], d.OW = ys[2];
  if (d.H * d.W >= (int64_t(1) << 31))  // the max kernels keep an argmax in 32 bits beside float32
    throw py::value_error("x: expected an image of fewer than 2**31 pixels (H*W), got H=" + std::to_string(d.H) +
                          ", W=" + std::to_string(d.W));
  pair(kernel, "kernel", 1, d.kh, d.kw);
  pair(stride, "stride", 1, d.sh, d.sw);
  pair(padding, "padding", 0, d.ph, d.pw);
  pair(dilation, "dilation", 1, d.dh, d.dw);
  return d;
}

template <typename F>
void pool_forward_impl(bool is_max, const Pool2dDims& d, py::handle x, py::handle y, py::handle arg, py::handle div_h,
                       py::handle div_w) {
  const F* xp = in_ptr<F>(x, "x", {d.B, d.H, d.W, d.C});
  F* yp = out_ptr<F>(y, "y", {d.B, d.OH, d.OW, d.C});
  int64_t* ap = is_max ? out_ptr<int64_t>(arg, "arg", {d.B, d.OH, d.OW, d.C}) : nullptr;
  const int64_t* dhp = is_max ? nullptr : in_ptr<int64_t>(div_h, "div_h", {d.OH});
  const int64_t* dwp = is_max ? nullptr : in_ptr<int64_t>(div_w, "div_w", {d.OW});
  run_kernel([&](Cancel& cancel) {
    if (is_max)
      max_pool2d_forward<F>(d, xp, yp, ap, cancel);
    else
      avg_pool2d_forward<F>(d, xp, dhp, dwp, yp, cancel);
  });
}

template <typename F>
void pool_backward_impl(bool is_max, const Pool2dDims& d, py::handle dy, py::handle arg, py::handle div_h,
                        py::handle div_w, py::handle dx) {
  const F* dyp = in_ptr<F>(dy, "dy", {d.B, d.OH, d.OW, d.C});
  const int64_t* ap = is_max ? in_ptr<int64_t>(arg, "arg", {d.B, d.OH, d.OW, d.C}) : nullptr;
  const int64_t* dhp = is_max ? nullptr : in_ptr<int64_t>(div_h, "div_h", {d.OH});
  const int64_t* dwp = is_max ? nullptr : in_ptr<int64_t>(div_w, "div_w", {d.OW});
  F* dxp = out_ptr<F>(dx, "dx", {d.B, d.H, d.W, d.C});
  run_kernel([&](Cancel& cancel) {
    if (is_max)
      max_pool2d_backward<F>(d, dyp, ap, dxp, cancel);  // skips arg outside [0, H*W)
    else
      avg_pool2d_backward<F>(d, dyp, dhp, dwp, dxp, cancel);
  });
}

// One axis of the interpolation: indices (O,) int64 inside [0, L), weights (O,) of F.
template <typename F>
UpsampleAxis<F> upsample_axis(const py::tuple& axes, size_t first, int64_t O, int64_t L, const char* axis) {
  const std::string n = std::string("axes (") + axis + ") ";
  const int64_t* i0 = in_ptr<int64_t>(axes[first], n + "i0", {O});
  const int64_t* i1 = in_ptr<int64_t>(axes[first + 1], n + "i1", {O});
  for (int64_t o = 0; o < O; ++o)
    if (i0[o] < 0 || i0[o] >= L || i1[o] < 0 || i1[o] >= L)
      throw py::value_error(n + "indices: expected values in [0, " + std::to_string(L) + "), got " +
                            std::to_string(i0[o]) + ", " + std::to_string(i1[o]) + " at " + std::to_string(o));
  return {i0, i1, in_ptr<F>(axes[first + 2], n + "l0", {O}), in_ptr<F>(axes[first + 3], n + "l1", {O})};
}

template <typename F>
void upsample_impl(bool forward, bool nearest, py::handle in, py::handle out, py::handle axes_h) {
  const auto axes = checked_tuple(axes_h, "axes", 8);
  const auto small = dims4(forward ? in : out, forward ? "x" : "dx");
  const auto big = dims4(forward ? out : in, forward ? "y" : "dy");
  Pool2dDims d{};
  d.B = small[0], d.H = small[1], d.W = small[2], d.C = small[3], d.OH = big[1], d.OW = big[2];
  const auto ah = upsample_axis<F>(axes, 0, d.OH, d.H, "h");
  const auto aw = upsample_axis<F>(axes, 4, d.OW, d.W, "w");
  if (forward) {
    const F* xp = in_ptr<F>(in, "x", {d.B, d.H, d.W, d.C});
    F* yp = out_ptr<F>(out, "y", {d.B, d.OH, d.OW, d.C});
    run_kernel([&](Cancel& cancel) { upsample2d_forward<F>(d, nearest, ah, aw, xp, yp, cancel); });
  } else {
    const F* dyp = in_ptr<F>(in, "dy", {d.B, d.OH, d.OW, d.C});
    F* dxp = out_ptr<F>(out, "dx", {d.B, d.H, d.W, d.C});
    run_kernel([&](Cancel& cancel) { upsample2d_backward<F>(d, nearest, ah, aw, dyp, dxp, cancel); });
  }
}

}  // namespace

void bind_pool2d(py::module_& m) {
  m.def(
      "pool2d_forward",
      [](py::handle kind, py::handle x, py::handle y, py::handle arg, py::handle div_h, py::handle div_w,
         py::handle kernel, py::handle stride, py::handle padding, py::handle dilation) {
        const bool is_max = is_max_kind(kind);
        dispatch_float(x, "x", [&](auto tag) {
          const Pool2dDims d = pool_dims(dims4(x, "x"), dims4(y, "y"), kernel, stride, padding, dilation);
          pool_forward_impl<decltype(tag)>(is_max, d, x, y, arg, div_h, div_w);
        });
      },
      py::arg("kind"), py::arg("x"), py::arg("y"), py::arg("arg"), py::arg("div_h"), py::arg("div_w"),
      py::arg("kernel"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
      "2-D max or average pooling; writes y (B, OH, OW, C) and, for 'max', arg (B, OH, OW, C) int64.");
  m.def(
      "pool2d_backward",
      [](py::handle kind, py::handle dy, py::handle arg, py::handle div_h, py::handle div_w, py::handle dx,
         py::handle kernel, py::handle stride, py::handle padding, py::handle dilation) {
        const bool is_max = is_max_kind(kind);
        dispatch_float(dy, "dy", [&](auto tag) {
          const Pool2dDims d = pool_dims(dims4(dx, "dx"), dims4(dy, "dy"), kernel, stride, padding, dilation);
          pool_backward_impl<decltype(tag)>(is_max, d, dy, arg, div_h, div_w, dx);
        });
      },
      py::arg("kind"), py::arg("dy"), py::arg("arg"), py::arg("div_h"), py::arg("div_w"), py::arg("dx"),
      py::arg("kernel"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
      "2-D pooling backward: writes dx (B, H, W, C).");
  m.def(
      "upsample2d_forward",
      [](py::handle mode, py::handle x, py::handle y, py::handle axes) {
        const bool nearest = is_nearest(mode);
        dispatch_float(x, "x", [&](auto tag) { upsample_impl<decltype(tag)>(true, nearest, x, y, axes); });
      },
      py::arg("mode"), py::arg("x"), py::arg("y"), py::arg("axes"),
      "Upsampling by the per-axis indices and weights in axes; writes y (B, OH, OW, C).");
  m.def(
      "upsample2d_backward",
      [](py::handle mode, py::handle dy, py::handle dx, py::handle axes) {
        const bool nearest = is_nearest(mode);
        dispatch_float(dy, "dy", [&](auto tag) { upsample_impl<decltype(tag)>(false, nearest, dy, dx, axes); });
      },
      py::arg("mode"), py::arg("dy"), py::arg("dx"), py::arg("axes"), "Upsampling backward: writes dx (B, H, W, C).");
}

}  // namespace pyrnn
