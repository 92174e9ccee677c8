// The recurrent time loops for AVX-512 (F, VL, DQ, BW; x86-64 only); see isa.inc.
#define PYRNN_ISA Avx512
#include "../common/isa_targets.h"
#define PYRNN_ISA_TARGET PYRNN_TARGET_AVX512
#define PYRNN_VEC_BYTES 64
#define PYRNN_TILE_ROWS 8  // 16 accumulators + 2 panel registers + 1 broadcast of the 32 zmm
#include "isa.inc"
