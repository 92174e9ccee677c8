// The recurrent time loops for AVX2 + FMA (x86-64 only); see isa.inc.
#define PYRNN_ISA Avx2
#include "../common/isa_targets.h"
#define PYRNN_ISA_TARGET PYRNN_TARGET_AVX2
#define PYRNN_VEC_BYTES 32
#define PYRNN_TILE_ROWS 6  // 12 accumulators + 2 panel registers + 1 broadcast of the 16 ymm
#include "isa.inc"
