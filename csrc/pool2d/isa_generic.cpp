// The pooling/upsampling loops for baseline x86-64 (SSE2) and every other CPU; see lines.inc.
#define PYRNN_ISA Generic
#define PYRNN_VEC_BYTES 16
#include "lines.inc"
