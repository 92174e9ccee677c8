// See cpu.h.
#include "cpu.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <time.h>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

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

bool cpu_is_intel() {
#if PYRNN_X86 && defined(__GNUC__)
  static const bool intel = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    // EBX EDX ECX = "Genu" "ineI" "ntel"
    return __get_cpuid(0, &a, &b, &c, &d) && b == 0x756E6547u && d == 0x49656E69u && c == 0x6C65746Eu;
  }();
  return intel;
#else
  return false;
#endif
}

long long core_l2_bytes() {
  static const long long bytes = [] {
    long long kib = 0;
    if (std::FILE* f = std::fopen("/sys/devices/system/cpu/cpu0/cache/index2/size", "r")) {  // "2048K"
      if (std::fscanf(f, "%lldK", &kib) != 1) kib = 0;
      std::fclose(f);
    }
    if (kib > 0) return kib * 1024;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    const long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (v > 0) return static_cast<long long>(v);
#endif
    return 0LL;
  }();
  return bytes;
}

namespace {
std::atomic<int> g_wide_tiles{-1};  // -1: as the CPU's vendor says
}  // namespace

bool wide_tiles() {
  const int w = g_wide_tiles.load(std::memory_order_relaxed);
  return w < 0 ? cpu_is_intel() : w != 0;
}

void set_wide_tiles(bool on) { g_wide_tiles.store(on ? 1 : 0, std::memory_order_relaxed); }

bool amx_tiles_granted() {
  static const bool granted = [] {
    if (!cpu_has(CpuFeature::AmxBf16)) return false;
#if defined(__linux__) && defined(SYS_arch_prctl)
    constexpr long kGetPerm = 0x1022, kReqPerm = 0x1023, kXtileData = 18;  // asm/prctl.h, XFEATURE_XTILEDATA
    if (syscall(SYS_arch_prctl, kReqPerm, kXtileData) != 0) return false;
    unsigned long mask = 0;
    return syscall(SYS_arch_prctl, kGetPerm, &mask) == 0 && (mask >> kXtileData & 1ul);
#else
    return false;
#endif
  }();
  return granted;
}

#if PYRNN_X86 && defined(__GNUC__)
namespace {
// rounds x 64 adds, each waiting for the one before: 64 cycles a round. The addend is a register, not an
// immediate: Intel's Golden Cove and later fold chains of `add $imm, reg` in the renamer (~5.8 a cycle measured
// on a Xeon with AMX), while a register addend keeps the 1-cycle latency (an imul chain, 3 cycles each, agrees)
void add_chain(int64_t rounds) {
  uint64_t x = 0, one = 1;
  asm volatile("" : "+r"(one));  // the compiler cannot know it is a constant
  for (int64_t r = 0; r < rounds; ++r) asm volatile(".rept 64\n\tadd %1, %0\n\t.endr" : "+r"(x) : "r"(one));
}

double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

// this thread's clock: batches of ~1 M cycles (under a millisecond) until ms of its CPU time
double chain_clock_ghz(int ms) {
  constexpr int64_t kRounds = 1 << 14;
  add_chain(kRounds);  // out of any idle state first
  int64_t rounds = 0;
  const double t0 = thread_cpu_ns();
  double t = t0;
  while (t - t0 < ms * 1e6) {
    add_chain(kRounds);
    rounds += kRounds;
    t = thread_cpu_ns();
  }
  return 64.0 * rounds / (t - t0);
}
}  // namespace
#endif

double measured_clock_ghz(int threads, int ms) {
  if (threads < 1 || ms < 1)
    throw std::invalid_argument("measured_clock_ghz: expected threads >= 1 and ms >= 1, got " +
                                std::to_string(threads) + " and " + std::to_string(ms));
#if PYRNN_X86 && defined(__GNUC__)
  std::vector<double> ghz(threads);
  std::vector<std::thread> team;
  for (int i = 1; i < threads; ++i) team.emplace_back([&ghz, i, ms] { ghz[i] = chain_clock_ghz(ms); });
  ghz[0] = chain_clock_ghz(ms);
  for (auto& th : team) th.join();
  std::sort(ghz.begin(), ghz.end());
  return threads % 2 ? ghz[threads / 2] : 0.5 * (ghz[threads / 2 - 1] + ghz[threads / 2]);
#else
  return 0.0;
#endif
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
