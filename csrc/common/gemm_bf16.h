// bfloat16 GEMMs with float32 sums: the mixed precision of dtype="bfloat16" (specification:
// pyrnn/backends/bfloat16.py). Operands are rounded to bf16 (nearest, ties to even) when they are
// packed; products of two bf16 are exact in float32 and are summed in float32.
//
// Legend: M, N, K = rows of C, columns of C, summed length; NR = columns per packed panel; K2 =
// ceil(K/2) pairs of k.
//
// Layouts (what VDPBF16PS reads: each 32-bit lane holds a pair of consecutive k):
//   activations  row-major bf16 with an even row stride; a pair (k = 2q, 2q+1) of row i is the
//                32-bit word at A + i*lda + 2q (an odd K is padded with a zero column)
//   panel        NR columns of op(B) (K, N), pair-interleaved: element (k, c) at ((k/2)*NR + c)*2 +
//                k%2, zero past the matrix; size 2*K2*NR
//
// Paths, chosen at run time, the first the CPU has (set_bf16_path narrows the choice, for tests):
//   amx          TDPBF16PS on AMX tiles (amx_tiles.h) where the CPU has AMX-BF16 and the OS granted the
//                tile state (Sapphire Rapids+); panels of NR = 32 columns
//   avx512_bf16  VDPBF16PS (_mm512_dpbf16_ps) where the CPU has AVX512-BF16 (Zen 4/5, Cooper Lake+);
//                panels of NR = 32 columns
//   emulated     the same products in float32 (bf16 widened, multiply-add): any CPU, any NR
//   amx_emulated the amx kernel on a software model of the tiles (any CPU, NR = 32; slow): tests only,
//                never chosen by default
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>

#include "scratch.h"

namespace pyrnn {

using bf16_t = uint16_t;

// float32 -> bf16, round to nearest even. As VCVTNE2PS2BF16 and VDPBF16PS (DAZ): a denormal float32
// becomes a signed zero; NaN stays a (quiet) NaN; beyond the largest bf16, infinity.
// Branch-free (selects), so loops of it vectorise.
inline bf16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x40u, zero = (u >> 16) & 0x8000u;
  const uint32_t r = (u & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded;
  return static_cast<bf16_t>((u & 0x7F800000u) == 0 ? zero : r);
}

inline float from_bf16(bf16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

enum class Bf16Path : int { Emulated = 0, Avx512Bf16 = 1, Amx = 2, AmxEmulated = 3 };
constexpr Bf16Path kBf16Paths[] = {Bf16Path::Emulated, Bf16Path::AmxEmulated, Bf16Path::Avx512Bf16, Bf16Path::Amx};
// A path of the CPU's own bf16 instructions (VDPBF16PS or TDPBF16PS): ~4x the float32 products' speed
inline bool bf16_path_native(Bf16Path p) { return p == Bf16Path::Avx512Bf16 || p == Bf16Path::Amx; }

const char* bf16_path_name(Bf16Path path);
bool bf16_path_supported(Bf16Path path);  // by this CPU and build
Bf16Path active_bf16_path();              // the best supported unless set_bf16_path chose another
void set_bf16_path(Bf16Path path);        // throws std::invalid_argument when unsupported

// One product of a panel GEMM: A (M, 2*K2) bf16 activations (row stride lda, even), P one panel.
struct Bf16Product {
  const bf16_t* A;
  int64_t lda;
  const bf16_t* P;
  int64_t K2;  // 0: no product
};

// C(M, n) = start + A1 P1 + A2 P2 for one panel of NR columns (n <= NR of them stored), start =
// C itself (acc), a float32 row of NR bias values added to every row (bias), or zero.
using bf16_panel_fn = void (*)(int64_t M, const Bf16Product& p1, const Bf16Product& p2, float* C, int64_t ldc,
                               int64_t n, const float* bias, bool acc, int64_t NR);

// The active path's panel GEMM for panels of NR columns (the emulation where the path needs another NR).
bf16_panel_fn bf16_panel_for(int64_t NR);
// The panel width of the active path's general GEMM (gemm_bf16).
int64_t bf16_gemm_panel_width();

// Holds this thread's AMX tile configuration across the panel calls made while it lives (one time loop: 32-64 panel
// calls a step, each of which would otherwise load a configuration and release the tiles), and releases the tiles
// when it ends. Only the scope's own panel calls may run on the thread meanwhile: other AMX code (oneDNN's, in the
// same process) would change the tiles under it. No effect on the other paths. LSTM inference, 2 threads of a
// Xeon with AMX, the configuration kept against per call (one process, alternating, medians of 10-12 rounds):
// T=100 B=64 I=H=512 1.09x, I=128 H=256 1.37x, T=50 B=32 I=32 H=64 1.17x.
class Bf16TileScope {
 public:
  Bf16TileScope();
  ~Bf16TileScope();
  Bf16TileScope(const Bf16TileScope&) = delete;
  Bf16TileScope& operator=(const Bf16TileScope&) = delete;
};

// Rows [0, rows) and columns [c0, c1) of float32 src (row stride lds) into bf16 dst (row stride ldd).
void convert_bf16(int64_t rows, int64_t c0, int64_t c1, const float* src, int64_t lds, bf16_t* dst, int64_t ldd);

// op(B) (K, N), element (k, n) = B[k*ldk + n*ldn], as ceil(N/NR) panels of 2*ceil(K/2)*NR values each.
void pack_bf16_panels(const float* B, int64_t ldk, int64_t ldn, int64_t K, int64_t N, int64_t NR, bf16_t* out);

inline int64_t even_up(int64_t k) { return k + (k & 1); }

// n bf16 on a 64-byte boundary (scratch.h; a panel row of 32 pairs is one cache line: no load straddles two),
// zeroed or not
using Bf16Buffer = Scratch<bf16_t>;
Bf16Buffer bf16_buffer(int64_t n, bool zeroed);

// Row-major C = beta * C + bf16(op(A)) bf16(op(B)), beta 0 or 1, op(A) (M, K), op(B) (K, N), float32
// sums (the general GEMM: the backward's products after the time loop, Dense). Allocates its packing
// buffers per call; single-threaded (callers split the work).
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
               int64_t ldb, float beta, float* C, int64_t ldc);
// The same with op(B) packed already (a weight used by many calls): pack_bf16_panels(..., K, N,
// bf16_gemm_panel_width(), Bp), i.e. ceil(N/32) panels of even(K) pair rows.
void gemm_bf16_packed(bool trans_a, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const bf16_t* Bp,
                      float beta, float* C, int64_t ldc);

namespace detail {
// The AVX512-BF16 kernels, defined by gemm_bf16_avx512.cpp on x86-64 GCC/clang builds:
// the panel GEMM (NR = 32)
void panel_avx512_bf16(int64_t M, const Bf16Product& p1, const Bf16Product& p2, float* C, int64_t ldc, int64_t n,
                       const float* bias, bool acc, int64_t NR);
// dst[c] = to_bf16(src[c]), c < n (VCVTNE2PS2BF16: the same rounding as to_bf16)
void convert_avx512_bf16(int64_t n, const float* src, bf16_t* dst);
// dst[c] = the pair (to_bf16(r0[c]), to_bf16(r1[c])) as one 32-bit word, r0's in the low half; r1 null: zeros
void pairs_avx512_bf16(int64_t n, const float* r0, const float* r1, uint32_t* dst);
// dst[q*ldd + c] = the pair (to_bf16(src[c*lds + 2q]), to_bf16(src[c*lds + 2q + 1])) as one word, for c < 16 and
// q < ceil(K/2): zeros for the rows c >= rows and past K (a transpose of 16 rows, 16 x 16 words at a time)
void transpose_pairs_avx512_bf16(int64_t rows, int64_t K, const float* src, int64_t lds, uint32_t* dst, int64_t ldd);
// The AMX panel GEMM (NR = 32; gemm_bf16_amx.cpp): on the tiles (x86-64 GCC/clang builds), and on their
// software model (any build)
void panel_amx(int64_t M, const Bf16Product& p1, const Bf16Product& p2, float* C, int64_t ldc, int64_t n,
               const float* bias, bool acc, int64_t NR);
void panel_amx_emulated(int64_t M, const Bf16Product& p1, const Bf16Product& p2, float* C, int64_t ldc, int64_t n,
                        const float* bias, bool acc, int64_t NR);
}  // namespace detail

}  // namespace pyrnn
