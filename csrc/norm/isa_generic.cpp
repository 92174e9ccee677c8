// The batch norm loops for baseline x86-64 (SSE2) and every other CPU; see rows.inc.
#define PYRNN_ISA Generic
#include "rows.inc"
