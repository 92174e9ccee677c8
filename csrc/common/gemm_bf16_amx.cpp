// The AMX panel GEMM of gemm_bf16.h on the tiles (amx_tiles.h's AmxTiles) and on their software model
// (SoftTiles: the path "amx_emulated", for tests). gemm_bf16.cpp hands out the first only where
// amx_tiles_granted() (cpu.h). Bf16TileScope (gemm_bf16.h) holds the configuration of both across its calls.
#include "amx_tiles.h"

namespace pyrnn {
namespace detail {

#if defined(__x86_64__) && defined(__GNUC__)
void panel_amx(int64_t M, const Bf16Product& p1, const Bf16Product& p2, float* C, int64_t ldc, int64_t n,
               const float* bias, bool acc, int64_t NR) {
  (void)NR;  // 32: bf16_panel_for hands this kernel out for that width only
  amx::panel<amx::AmxTiles>(M, p1, p2, C, ldc, n, bias, acc);
}
#endif

void panel_amx_emulated(int64_t M, const Bf16Product& p1, const Bf16Product& p2, float* C, int64_t ldc, int64_t n,
                        const float* bias, bool acc, int64_t NR) {
  (void)NR;
  amx::panel<amx::SoftTiles>(M, p1, p2, C, ldc, n, bias, acc);
}

}  // namespace detail

Bf16TileScope::Bf16TileScope() {
#if defined(__x86_64__) && defined(__GNUC__)
  amx::hold_begin<amx::AmxTiles>();
#endif
  amx::hold_begin<amx::SoftTiles>();
}

Bf16TileScope::~Bf16TileScope() {  // TILERELEASE only where a panel call configured the tiles
#if defined(__x86_64__) && defined(__GNUC__)
  amx::hold_end<amx::AmxTiles>();
#endif
  amx::hold_end<amx::SoftTiles>();
}

}  // namespace pyrnn
