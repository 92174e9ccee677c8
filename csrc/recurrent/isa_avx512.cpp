// The recurrent time loops for AVX-512 (F, VL, DQ, BW; x86-64 only); see isa.inc.
#define PYRNN_ISA Avx512
#include "../common/isa_targets.h"
#define PYRNN_ISA_TARGET PYRNN_TARGET_AVX512
#define PYRNN_VEC_BYTES 64
#define PYRNN_TILE_ROWS 8  // 16 accumulators + 2 panel registers + 1 broadcast of the 32 zmm
// 24 accumulators (of the 32 zmm) where wide_tiles(), i.e. on Intel: 12 rows / 8, 2 threads of a Xeon with AMX, one
// process alternating, medians of 6-10 rounds: LSTM T=100 B=64 I=H=512 inference 1.081x [1.005-1.113], training
// 1.052x; I=128 H=256 1.061x / 1.048x (GRU 1.054x / 1.003x, RNN 1.038x / 1.014x); T=50 B=32 I=32 H=64 0.98x /
// 1.00x (GRU training 1.009x). Elsewhere 8 stays: on AMD Zen 4 (two 256-bit FMA pipes, which a 512-bit FMA takes
// both of) 8 / 12 rows, 2 threads of an EPYC (family 25 model 17), one process alternating, medians of 6-10 rounds:
// inference LSTM I=128 H=256 1.047x, I=H=512 1.079x, GRU 1.088x, RNN 1.057x; training LSTM 1.022x, GRU 0.992x, RNN
// 0.997x, LSTM T=50 B=32 I=32 H=64 0.994x.
#define PYRNN_TILE_ROWS_WIDE 12
#include "isa.inc"
