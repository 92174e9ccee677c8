// The indirect GEMM for AVX-512 (F, VL, DQ, BW; x86-64 only); see igemm.inc.
#define PYRNN_ISA Avx512
#include "../common/isa_targets.h"
#define PYRNN_ISA_TARGET PYRNN_TARGET_AVX512
#define PYRNN_VEC_BYTES 64
#define PYRNN_TILE_ROWS 12  // 24 accumulators + 2 weight registers (broadcasts fold into the FMAs) of the 32 zmm
#include "igemm.inc"
