// Bindings of the shared pieces: the GEMM provider (pyrnn/backends/cpp.py registers NumPy's
// OpenBLAS by its ILP64 function addresses, else SciPy's Fortran sgemm/dgemm from the PyCapsules of
// scipy.linalg.cython_blas), the instruction set and thread team the kernels use, and the kernels'
// own float32 activations in each instruction set, exposed so that their accuracy is tested; the
// bfloat16 GEMM path (common/gemm_bf16.h) and its general GEMM (Dense's products with dtype="bfloat16"); the
// float GEMM over the thread team (gemm_team: Dense's float32/float64 products with the cpp backend).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>

#include "bind_checks.h"
#include "common/cpu.h"
#include "common/gemm.h"
#include "common/gemm_bf16.h"
#include "common/threads.h"
#include "recurrent/kernels.h"

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

Isa isa_from_name(const std::string& name) {
  for (Isa isa : {Isa::Generic, Isa::Avx2, Isa::Avx512})
    if (name == isa_name(isa)) return isa;
  throw py::value_error("isa: expected 'generic', 'avx2' or 'avx512', got '" + name + "'");
}

// y = f(x) elementwise with the cells' float32 activation f, compiled for `isa` (None: the active one)
py::array_t<float> apply_f32(py::handle xh, py::handle isa, bool tanh, const char* name) {
  const py::array xa = as_array(xh, "x");
  if (xa.ndim() != 1)
    throw py::value_error(std::string(name) + ": expected a 1-D float32 array, got shape " + shape_str(shape_of(xa)));
  const int64_t n = static_cast<int64_t>(xa.size());
  const float* x = in_ptr<float>(xh, "x", {n});
  const Isa which = isa.is_none() ? active_isa() : isa_from_name(py::cast<std::string>(isa));
  if (!isa_supported(which))
    throw py::value_error(std::string(name) + ": expected an instruction set this CPU supports, got '" +
                          isa_name(which) + "'");
  const IsaKernels<float>& k = kernels_for(which).f32;
  py::array_t<float> y(n);
  float* out = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    (tanh ? k.tanh : k.sigmoid)(n, x, out);
  }
  return y;
}

Bf16Path bf16_path_from_name(const std::string& name) {
  std::string names;
  for (Bf16Path p : kBf16Paths) {
    if (name == bf16_path_name(p)) return p;
    names += std::string(names.empty() ? "'" : ", '") + bf16_path_name(p) + "'";
  }
  throw py::value_error("bf16 path: expected one of " + names + ", got '" + name + "'");
}

// The operands of op(a) (M, K) @ op(b) (K, N) (op: transposed or not), checked: 2-D C-contiguous arrays of F
// whose shapes agree; `who` names the binding in the errors.
template <typename F>
struct Operands {
  int64_t M, N, K;
  const F* A;
  const F* B;
};

template <typename F>
Operands<F> operands(const char* who, py::handle ah, py::handle bh, bool trans_a, bool trans_b) {
  const py::array a = as_array(ah, "a"), b = as_array(bh, "b");
  if (a.ndim() != 2 || b.ndim() != 2)
    throw py::value_error(std::string(who) + ": expected 2-D a and b, got shapes " + shape_str(shape_of(a)) + " and " +
                          shape_str(shape_of(b)));
  const int64_t M = trans_a ? a.shape(1) : a.shape(0), K = trans_a ? a.shape(0) : a.shape(1);
  const int64_t N = trans_b ? b.shape(0) : b.shape(1);
  const F* A = in_ptr<F>(ah, "a", trans_a ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K});
  const F* B = in_ptr<F>(bh, "b", trans_b ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N});
  return {M, N, K, A, B};
}

// op(a) (M, K) @ op(b) (K, N), op = transposed or not, both rounded to bf16, float32 sums
py::array_t<float> matmul_bf16(py::handle ah, py::handle bh, bool trans_a, bool trans_b) {
  const auto o = operands<float>("matmul_bf16", ah, bh, trans_a, trans_b);
  py::array_t<float> c({o.M, o.N});
  float* C = c.mutable_data();
  {
    py::gil_scoped_release nogil;
    gemm_bf16(trans_a, trans_b, o.M, o.N, o.K, o.A, trans_a ? o.M : o.K, o.B, trans_b ? o.K : o.N, 0.0f, C, o.N);
  }
  return c;
}
// out = op(a) (M, K) @ op(b) (K, N), or out += it (accumulate); float32 or float64, over the thread team
void matmul(py::handle ah, py::handle bh, py::handle outh, bool trans_a, bool trans_b, bool accumulate) {
  dispatch_float(ah, "a", [&](auto tag) {
    using F = decltype(tag);
    const auto o = operands<F>("matmul", ah, bh, trans_a, trans_b);
    if (std::max({o.M, o.N, o.K}) > kMaxBlasDim)
      throw py::value_error("matmul: expected sizes < 2**31 (the 32-bit BLAS interface), got M, N, K = " +
                            std::to_string(o.M) + ", " + std::to_string(o.N) + ", " + std::to_string(o.K));
    F* C = out_ptr<F>(outh, "out", {o.M, o.N});
    py::gil_scoped_release nogil;
    gemm_team<F>(trans_a, trans_b, o.M, o.N, o.K, o.A, trans_a ? o.M : o.K, o.B, trans_b ? o.K : o.N,
                 accumulate ? F(1) : F(0), C, o.N);
  });
}
}  // namespace

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
      "Private (pyrnn.backends.cpp registers it): addresses of an ILP64 sgemm/dgemm, e.g. NumPy's OpenBLAS; 0, 0 "
      "unsets.");
  m.def(
      "_set_blas_threads",
      [](uintptr_t get, uintptr_t set) {
        if ((get == 0) != (set == 0))
          throw py::value_error("_set_blas_threads: expected two function addresses (or two zeros), got one zero");
        set_blas_threads(reinterpret_cast<blas_get_threads_fn>(get), reinterpret_cast<blas_set_threads_fn>(set));
      },
      py::arg("get"), py::arg("set"),
      "Private (pyrnn.backends.cpp registers it): addresses of the BLAS's get/set_num_threads; 0, 0 unsets.");
  m.def("blas_interface", &blas_interface,
        "What the kernels' GEMM calls: 'ilp64' (NumPy's OpenBLAS), 'lp64' (SciPy's) or 'loops'.");
  m.def(
      "tanh_f32", [](py::handle x, py::handle isa) { return apply_f32(x, isa, true, "tanh_f32"); }, py::arg("x"),
      py::arg("isa") = py::none(),
      "The kernels' float32 tanh in one instruction set's loop (None: the active one), elementwise over a 1-D array.");
  m.def(
      "sigmoid_f32", [](py::handle x, py::handle isa) { return apply_f32(x, isa, false, "sigmoid_f32"); }, py::arg("x"),
      py::arg("isa") = py::none(),
      "The kernels' float32 sigmoid in one instruction set's loop (None: the active one), elementwise over a 1-D "
      "array.");
  m.def(
      "isa", [] { return std::string(isa_name(active_isa())); },
      "The instruction set of the kernels' own loops (recurrent time loops, pooling, upsampling, batch norm) "
      "now: 'avx512', 'avx2' or 'generic'.");
  m.def(
      "supported_isas",
      [] {
        py::list out;
        for (Isa isa : {Isa::Generic, Isa::Avx2, Isa::Avx512})
          if (isa_supported(isa)) out.append(isa_name(isa));
        return out;
      },
      "The instruction sets this CPU runs, narrowest first.");
  m.def(
      "set_isa", [](const std::string& name) { set_isa(isa_from_name(name)); }, py::arg("name"),
      "Use this instruction set's loops (one of supported_isas()).");
  m.def(
      "bf16_path", [] { return std::string(bf16_path_name(active_bf16_path())); },
      "'amx' (TDPBF16PS tiles), 'avx512_bf16' (VDPBF16PS), 'emulated' (float32 emulation) or 'amx_emulated' (the "
      "amx kernel on a software model of the tiles, for tests): what the bfloat16 GEMMs use now.");
  m.def(
      "supported_bf16_paths",
      [] {
        py::list out;
        for (Bf16Path p : kBf16Paths)
          if (bf16_path_supported(p)) out.append(bf16_path_name(p));
        return out;
      },
      "The bfloat16 GEMM paths this CPU runs, the emulations first.");
  m.def(
      "set_bf16_path", [](const std::string& name) { set_bf16_path(bf16_path_from_name(name)); }, py::arg("name"),
      "Use this bfloat16 GEMM path (one of supported_bf16_paths()).");
  m.def(
      "cpu_features",
      [] {
        py::dict out;
        out["avx512_bf16"] = cpu_has(CpuFeature::Avx512Bf16);
        out["amx_bf16"] = cpu_has(CpuFeature::AmxBf16);
        return out;
      },
      "CPUID flags beyond the instruction sets: {'avx512_bf16': bool, 'amx_bf16': bool}.");
  m.def("measured_clock_ghz", &measured_clock_ghz, py::arg("threads"), py::arg("ms"),
        py::call_guard<py::gil_scoped_release>(),
        "The cores' clock in GHz, measured: `threads` threads at once each run a chain of dependent integer adds "
        "(one per cycle) for ~`ms` ms of their CPU time; the median of their clocks (0.0: cannot measure here).");
  m.def("matmul_bf16", &matmul_bf16, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
        "op(a) (M, K) @ op(b) (K, N) (trans_a: a is (K, M), trans_b: b is (N, K)), float32 arrays, both operands "
        "rounded to bfloat16, float32 sums; a new (M, N) float32 array. Single-threaded, without the GIL.");
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("accumulate") = false,
        "out = op(a) (M, K) @ op(b) (K, N) (trans_a: a is (K, M), trans_b: b is (N, K)), or out += it when accumulate; "
        "float32 or float64 C-contiguous arrays of one dtype, out (M, N) allocated by the caller. Over the kernels' "
        "thread team, the same bits for any thread count; without the GIL.");
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) throw py::value_error("set_num_threads: expected n >= 1, got " + std::to_string(n));
        set_max_threads(n);
      },
      py::arg("n"), "Cap the kernels' own thread team at n threads (the caller included).");
  m.def("get_num_threads", &max_threads, "The cap on the kernels' own thread team.");
  m.def("_set_parallel_min_flops", &set_parallel_min_flops, py::arg("flops"),
        "Private (tests, tuning): a recurrent step's GEMM (or a convolution, 4x) of fewer flops runs on one thread.");
  m.def("_parallel_min_flops", &parallel_min_flops, "Private: see _set_parallel_min_flops.");
  m.def("_set_spin_budget", &set_spin_budget, py::arg("spins"),
        "Private (tests, tuning): PAUSE spins of a waiting thread before it sleeps (spins < 0: the default).");
  m.def("_spin_budget", &spin_budget_setting, "Private: see _set_spin_budget.");
  m.def("_set_others_running", &set_others_running, py::arg("n"),
        "Private (tests): pretend n other threads run on the machine (n < 0: read /proc/loadavg again).");
  m.def("_free_threads", &free_threads,
        "Private (tests, benchmarks): the threads a kernel's team may use now (the cap, less the cores other "
        "runnable threads take).");
  m.def("_float_mode", &float_mode, "Private (tests): this thread's MXCSR, to check that kernels restore it.");
  m.def(
      "_set_wide_tiles", [](py::handle on) { set_wide_tiles(bool_arg(on, "on")); }, py::arg("on"),
      "Private (tests, tuning): the recurrent micro-kernels' wide tiles (AVX-512: 12 rows) where True, else 8 rows "
      "(default: wide on Intel); the same bits either way.");
  m.def("_wide_tiles", &wide_tiles, "Private: see _set_wide_tiles.");
  m.def(
      "_interrupt_next_kernel",
      [](long long polls) {
        if (polls < 0) throw py::value_error("polls: expected an integer >= 0, got " + std::to_string(polls));
        g_interrupt_next_kernel.store(polls);
      },
      py::arg("polls"),
      "Private (tests): the next kernel called from the main thread raises KeyboardInterrupt at its polls-th poll "
      "of the cancellation hook, as Ctrl-C landing there would (it polls at every chunk or step); 0 cancels.");
  m.def(
      "_cancelled_calls", [] { return g_cancelled_calls.load(); },
      "Private (tests): kernel calls that stopped on a cancellation (a Ctrl-C the kernel took) since the module "
      "loaded.");
}

}  // namespace pyrnn
