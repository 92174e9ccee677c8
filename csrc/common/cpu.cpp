// See cpu.h.
#include "cpu.h"

#include <atomic>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define PYRNN_X86 1
#include <xmmintrin.h>
#if defined(__GNUC__)
#include <cpuid.h>
#endif
#else
#define PYRNN_X86 0
#endif

namespace pyrnn {

namespace {
std::atomic<int> g_isa{-1};  // -1: not chosen yet
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Generic: return "generic";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "unknown";
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Generic: return true;
#if PYRNN_X86 && defined(__GNUC__)
    case Isa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") && isa_supported(Isa::Avx2);
#else
    default: return false;
#endif
  }
  return false;
}

Isa best_isa() {
  if (isa_supported(Isa::Avx512)) return Isa::Avx512;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Generic;
}

Isa active_isa() {
  int v = g_isa.load(std::memory_order_relaxed);
  if (v < 0) {
    v = static_cast<int>(best_isa());
    g_isa.store(v, std::memory_order_relaxed);
  }
  return static_cast<Isa>(v);
}

void set_isa(Isa isa) {
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string("isa: expected one this CPU supports, got '") + isa_name(isa) + "'");
  g_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

bool cpu_has(CpuFeature f) {
#if PYRNN_X86 && defined(__GNUC__)
  if (!isa_supported(Isa::Avx512)) return false;  // both need the OS's AVX-512 state
  unsigned a = 0, b = 0, c = 0, d = 0;
  switch (f) {
    case CpuFeature::Avx512Bf16: return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 5 & 1u);
    case CpuFeature::AmxBf16: return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 22 & 1u) && (d >> 24 & 1u);
  }
#endif
  (void)f;
  return false;
}

#if PYRNN_X86
constexpr unsigned kFtzDaz = 0x8040;  // MXCSR bit 15 flush-to-zero, bit 6 denormals-are-zero
DenormalsFlushed::DenormalsFlushed() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFtzDaz); }
DenormalsFlushed::~DenormalsFlushed() { _mm_setcsr(saved_); }
unsigned float_mode() { return _mm_getcsr(); }
#else
DenormalsFlushed::DenormalsFlushed() : saved_(0) {}
DenormalsFlushed::~DenormalsFlushed() {}
unsigned float_mode() { return 0; }
#endif

}  // namespace pyrnn
