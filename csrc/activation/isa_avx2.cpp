// The activation loops for AVX2 + FMA (x86-64 only); see spans.inc.
#define PYRNN_ISA Avx2
#include "../common/isa_targets.h"
#define PYRNN_ISA_TARGET PYRNN_TARGET_AVX2
#include "spans.inc"
