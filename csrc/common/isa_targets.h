// The target strings of the wider instruction sets, written once for every per-ISA file
// (recurrent/, conv/, norm/, pool2d/ isa_*.cpp): a file sets PYRNN_ISA_TARGET to one of them.
#pragma once

#define PYRNN_TARGET_AVX2 "avx2,fma"
#if defined(__clang__)  // clang's target attribute knows no prefer-vector-width
#define PYRNN_TARGET_AVX512 "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma"
#else
#define PYRNN_TARGET_AVX512 "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,prefer-vector-width=512"
#endif
