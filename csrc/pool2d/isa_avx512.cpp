// The pooling/upsampling loops for AVX-512 (F, VL, DQ, BW; x86-64 only); see lines.inc.
#define PYRNN_ISA Avx512
#include "../common/isa_targets.h"
#define PYRNN_ISA_TARGET PYRNN_TARGET_AVX512
#define PYRNN_POOL_V16 1  // the masked-vector loops of C <= 16 float32 channels
#define PYRNN_VEC_BYTES 64
#include "lines.inc"
