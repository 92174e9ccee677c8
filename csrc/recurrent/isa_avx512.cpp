// The recurrent time loops for AVX-512 (F, VL, DQ, BW; x86-64 only); see isa.inc.
#if defined(__x86_64__) && defined(__GNUC__)
#include <cmath>
#include <cstring>

#include "kernels.h"

namespace pyrnn {
namespace isa_avx512 {
constexpr int64_t kVecBytes = 64;
constexpr int kMR = 8;  // 16 accumulators + 2 panel registers + 1 broadcast of the 32 zmm
}  // namespace isa_avx512
}  // namespace pyrnn

#if defined(__clang__)  // clang ignores GCC's target pragma; this is its spelling
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,prefer-vector-width=512")
#endif
#define PYRNN_ISA_NS isa_avx512
#include "isa.inc"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace pyrnn {
const KernelTable& kernels_avx512() {
  static const KernelTable t{Isa::Avx512, isa_avx512::isa_table<float>(), isa_avx512::isa_table<double>()};
  return t;
}
}  // namespace pyrnn
#endif
