// The indirect GEMM for AVX2 + FMA (x86-64 only); see igemm.inc.
#define PYRNN_ISA Avx2
#define PYRNN_ISA_TARGET "avx2,fma"
#define PYRNN_VEC_BYTES 32
#define PYRNN_TILE_ROWS 6  // 12 accumulators + 2 weight registers + 1 broadcast of the 16 ymm
#include "igemm.inc"
