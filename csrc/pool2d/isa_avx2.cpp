// The pooling/upsampling loops for AVX2 + FMA (x86-64 only); see lines.inc.
#define PYRNN_ISA Avx2
#include "../common/isa_targets.h"
#define PYRNN_ISA_TARGET PYRNN_TARGET_AVX2
#define PYRNN_VEC_BYTES 32
#include "lines.inc"
