// The indirect GEMM for baseline x86-64 (SSE2) and every other CPU; see igemm.inc.
#define PYRNN_ISA Generic
#define PYRNN_VEC_BYTES 16
#define PYRNN_TILE_ROWS 6
#include "igemm.inc"

namespace pyrnn {

template <>
const IgemmKernels<float>& igemm_kernels<float>() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (active_isa() == Isa::Avx512) return igemm_kernels_f32<Isa::Avx512>();
  if (active_isa() == Isa::Avx2) return igemm_kernels_f32<Isa::Avx2>();
#endif
  return igemm_kernels_f32<Isa::Generic>();
}

template <>
const IgemmKernels<double>& igemm_kernels<double>() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (active_isa() == Isa::Avx512) return igemm_kernels_f64<Isa::Avx512>();
  if (active_isa() == Isa::Avx2) return igemm_kernels_f64<Isa::Avx2>();
#endif
  return igemm_kernels_f64<Isa::Generic>();
}

}  // namespace pyrnn
