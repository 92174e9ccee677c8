// The pooling/upsampling loops for AVX2 + FMA (x86-64 only); see lines.inc.
#define PYRNN_ISA Avx2
#define PYRNN_ISA_TARGET "avx2,fma"
#include "lines.inc"
