// The activation loops for AVX-512 (F, VL, DQ, BW; x86-64 only); see spans.inc.
#define PYRNN_ISA Avx512
#include "../common/isa_targets.h"
#define PYRNN_ISA_TARGET PYRNN_TARGET_AVX512
#include "spans.inc"
