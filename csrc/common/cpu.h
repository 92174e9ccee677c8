// What the CPU can do, which instruction set the kernels use, and the denormal mode
// they run in.
//
// One build runs on any x86-64: the hot loops are compiled three times (recurrent/isa_*.cpp:
// baseline SSE2, AVX2 + FMA, AVX-512) and the best one the CPU supports is picked at load
// time. set_isa() narrows the choice (tests run every path this CPU has).
#pragma once

namespace pyrnn {

enum class Isa : int { Generic = 0, Avx2 = 1, Avx512 = 2 };

const char* isa_name(Isa isa);
bool isa_supported(Isa isa);  // by this CPU (and this build)
Isa best_isa();               // the widest supported
Isa active_isa();             // what the kernels use now (best_isa() unless set_isa() chose another)
void set_isa(Isa isa);        // throws std::invalid_argument when unsupported

// Flush denormals to zero (FTZ) and treat denormal inputs as zero (DAZ) for this thread
// while the guard lives; the caller's mode is restored on destruction. Denormals cost
// ~100x per operation on x86 and occur in saturated gates late in long sequences.
class DenormalsFlushed {
 public:
  DenormalsFlushed();
  ~DenormalsFlushed();
  DenormalsFlushed(const DenormalsFlushed&) = delete;
  DenormalsFlushed& operator=(const DenormalsFlushed&) = delete;

 private:
  unsigned saved_;
};

unsigned float_mode();  // this thread's MXCSR (0 where there is none), for tests

// Features beyond the instruction sets above, from CPUID (with the OS's AVX-512 state for both).
enum class CpuFeature : int {
  Avx512Bf16 = 0,  // VDPBF16PS, VCVTNE2PS2BF16 (CPUID.(7,1):EAX[5])
  AmxBf16 = 1,     // TDPBF16PS tiles (CPUID.(7,0):EDX[22] and AMX-TILE EDX[24]); the OS must still grant
                   // the tile state (arch_prctl(ARCH_REQ_XCOMP_PERM)) before use
};
bool cpu_has(CpuFeature f);

// Whether this process may use the AMX tiles: cpu_has(AmxBf16) and, on Linux, the kernel granted the tile
// data state (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), asked once per process; false on kernels
// before 5.16, which refuse it, and off Linux).
bool amx_tiles_granted();

// Whether the CPU is Intel's (CPUID leaf 0 says "GenuineIntel"), and the bytes of one core's L2 cache (Linux's
// sysfs, else sysconf; 0 where unknown): what per-micro-architecture choices read (recurrent.cpp's team split,
// wide_tiles below).
bool cpu_is_intel();
long long core_l2_bytes();

// Whether the packed micro-kernels take their ISA's wide tiles (PYRNN_TILE_ROWS_WIDE: AVX-512's 12 rows, 24
// accumulators) over the default ones (8 rows): on Intel by default, where two 512-bit FMA ports want more sums in
// flight, not on AMD Zen 4, where they ran 4.7-8.8 % slower in inference and even in training (both measured:
// recurrent/isa_avx512.cpp). The same bits either way (each sum runs in the same order); tests set it.
bool wide_tiles();
void set_wide_tiles(bool on);

// The clock the cores run at, in GHz, measured (a hypervisor's /proc/cpuinfo gives the nominal one): each
// of `threads` threads, all at once, runs a chain of dependent integer adds (one per cycle on every
// x86-64) for about `ms` ms of its own CPU time (time it spends descheduled does not count); the median
// of the threads' clocks. 0 where it cannot be measured (not x86-64 with GCC or clang).
double measured_clock_ghz(int threads, int ms);

}  // namespace pyrnn
