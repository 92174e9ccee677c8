// The batch norm loops for AVX2 + FMA (x86-64 only); see rows.inc.
#define PYRNN_ISA Avx2
#define PYRNN_ISA_TARGET "avx2,fma"
#include "rows.inc"
