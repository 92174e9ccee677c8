// The activation loops for baseline x86-64 (SSE2) and every other CPU; see spans.inc.
#define PYRNN_ISA Generic
#include "spans.inc"
