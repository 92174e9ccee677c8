// The recurrent time loops for AVX2 + FMA (x86-64 only); see isa.inc.
#if defined(__x86_64__) && defined(__GNUC__)
#include <cmath>
#include <cstring>

#include "kernels.h"

namespace pyrnn {
namespace isa_avx2 {
constexpr int64_t kVecBytes = 32;
constexpr int kMR = 6;  // 12 accumulators + 2 panel registers + 1 broadcast of the 16 ymm
}  // namespace isa_avx2
}  // namespace pyrnn

#if defined(__clang__)  // clang ignores GCC's target pragma; this is its spelling
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#define PYRNN_ISA_NS isa_avx2
#include "isa.inc"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace pyrnn {
const KernelTable& kernels_avx2() {
  static const KernelTable t{Isa::Avx2, isa_avx2::isa_table<float>(), isa_avx2::isa_table<double>()};
  return t;
}
}  // namespace pyrnn
#endif
