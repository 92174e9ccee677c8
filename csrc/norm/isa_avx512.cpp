// The batch norm loops for AVX-512 (F, VL, DQ, BW; x86-64 only); see rows.inc.
#define PYRNN_ISA Avx512
#if defined(__clang__)  // clang's target attribute knows no prefer-vector-width
#define PYRNN_ISA_TARGET "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma"
#else
#define PYRNN_ISA_TARGET "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,prefer-vector-width=512"
#endif
#include "rows.inc"
