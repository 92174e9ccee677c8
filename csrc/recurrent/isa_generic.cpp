// The recurrent time loops for baseline x86-64 (SSE2) and every other CPU; see isa.inc.
#define PYRNN_ISA Generic
#define PYRNN_VEC_BYTES 16
#define PYRNN_TILE_ROWS 6
#include "isa.inc"
