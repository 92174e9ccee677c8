// The AMX panel GEMM of gemm_bf16.h: TDPBF16PS on tiles of 16 x 16 float32 sums.
//
// Legend: M rows of C, NR = 32 columns of one panel, K2 pairs of k (gemm_bf16.h's layouts).
// Palette 1 has 8 tiles tmm0-7 of up to 16 rows x 64 bytes. A block of 32 rows x 32 columns of C is
// four tiles; each step reads 16 pairs of k (A: 16 rows x 16 pairs; P: 16 pair rows x 16 columns):
//   tmm0 C[ 0:16,  0:16]   tmm1 C[ 0:16, 16:32]   tmm4 A[ 0:16, q:q+16]   tmm6 P[q:q+16,  0:16]
//   tmm2 C[16:32,  0:16]   tmm3 C[16:32, 16:32]   tmm5 A[16:32, q:q+16]   tmm7 P[q:q+16, 16:32]
// TDPBF16PS C, A, B: C[m][n] += A[m][2k] B[k][2n] + A[m][2k+1] B[k][2n+1], k < 16, with A and B holding a
// pair of bf16 per 32-bit word: A's rows are gemm_bf16.h's activation rows (stride lda), B's rows are a
// panel's pair rows (stride NR * 4 bytes) -- the layouts VDPBF16PS reads are what TILELOADD reads.
// A block of fewer than 32 rows gets tiles of fewer rows (a TILECFG per shape); a last step of fewer than
// 16 pairs reads zero-padded copies of A's and P's rows.
//
// Two implementations of the tile instructions, one kernel:
//   AmxTiles   the instructions (asm: no compiler target needed), where the CPU has AMX-BF16 and the OS
//              granted the tile state (cpu.h's amx_tiles_granted)
//   SoftTiles  a software model of the same registers that raises what the CPU faults on (a tile not
//              configured, shapes that disagree, an invalid TILECFG), so the kernel's blocking, tails and
//              configurations are tested on every machine (the bf16 path "amx_emulated")
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "gemm_bf16.h"

namespace pyrnn {
namespace amx {

// LDTILECFG's 64-byte operand, palette 1: tile t has rows[t] rows of colsb[t] bytes (0: not configured)
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64, "LDTILECFG reads 64 bytes");

constexpr int kTiles = 8, kMaxRows = 16, kRowBytes = 64;

#if defined(__x86_64__) && defined(__GNUC__)
struct AmxTiles {
  static void configure(const TileConfig& c) { asm volatile("ldtilecfg %0" ::"m"(c)); }
  static void release() { asm volatile("tilerelease" ::: "memory"); }
  template <int T>
  static void zero() {
    asm volatile("tilezero %%tmm%c0" ::"i"(T));
  }
  template <int T>
  static void load(const void* base, int64_t stride) {
    asm volatile("tileloadd (%0,%1,1), %%tmm%c2" ::"r"(base), "r"(stride), "i"(T) : "memory");
  }
  template <int T>
  static void store(void* base, int64_t stride) {
    asm volatile("tilestored %%tmm%c2, (%0,%1,1)" ::"r"(base), "r"(stride), "i"(T) : "memory");
  }
  template <int C, int A, int B>
  static void dot() {  // C += A B (AT&T order: B, A, C)
    asm volatile("tdpbf16ps %%tmm%c2, %%tmm%c1, %%tmm%c0" ::"i"(C), "i"(A), "i"(B));
  }
};
#endif

struct SoftTiles {
  struct State {
    TileConfig cfg;
    bool on = false;
    alignas(64) uint8_t t[kTiles][kMaxRows * kRowBytes] = {};
  };
  static State& state() {
    static thread_local State s;
    return s;
  }
  [[noreturn]] static void fault(const std::string& what) {
    throw std::logic_error("AMX tile model: " + what + " (the CPU raises #UD or #GP here)");
  }
  static void check(int t) {
    const State& s = state();
    if (!s.on || s.cfg.rows[t] == 0 || s.cfg.colsb[t] == 0) fault("tmm" + std::to_string(t) + " is not configured");
  }
  static void configure(const TileConfig& c) {  // as LDTILECFG: validates, then zeroes every tile
    if (c.palette != 1 || c.start_row != 0) fault("expected palette 1 and start_row 0");
    for (uint8_t r : c.reserved)
      if (r != 0) fault("reserved TILECFG bytes must be zero");
    for (int t = 0; t < 16; ++t) {
      const bool used = c.rows[t] != 0 || c.colsb[t] != 0;
      if (used && (t >= kTiles || c.rows[t] == 0 || c.colsb[t] == 0 || c.rows[t] > kMaxRows || c.colsb[t] > kRowBytes ||
                   c.colsb[t] % 4 != 0))
        fault("tmm" + std::to_string(t) + ": invalid shape");
    }
    State& s = state();
    s.cfg = c;
    s.on = true;
    std::memset(s.t, 0, sizeof(s.t));
  }
  static void release() { state().on = false; }
  template <int T>
  static void zero() {
    check(T);
    std::memset(state().t[T], 0, sizeof(state().t[T]));
  }
  template <int T>
  static void load(const void* base, int64_t stride) {  // rows of colsb bytes; the rest of a row is zero
    check(T);
    State& s = state();
    std::memset(s.t[T], 0, sizeof(s.t[T]));
    for (int r = 0; r < s.cfg.rows[T]; ++r)
      std::memcpy(s.t[T] + r * kRowBytes, static_cast<const uint8_t*>(base) + r * stride, s.cfg.colsb[T]);
  }
  template <int T>
  static void store(void* base, int64_t stride) {
    check(T);
    const State& s = state();
    for (int r = 0; r < s.cfg.rows[T]; ++r)
      std::memcpy(static_cast<uint8_t*>(base) + r * stride, s.t[T] + r * kRowBytes, s.cfg.colsb[T]);
  }
  template <int C, int A, int B>
  static void dot() {  // TDPBF16PS as the SDM's pseudo-code: per pair, two float32 adds of exact products
    static_assert(C != A && C != B && A != B, "TDPBF16PS: the three tiles must differ");
    check(C), check(A), check(B);
    State& s = state();
    const TileConfig& g = s.cfg;
    if (g.colsb[A] / 4 != g.rows[B] || g.colsb[C] != g.colsb[B] || g.rows[C] != g.rows[A])
      fault("TDPBF16PS: the shapes of C, A and B disagree");
    for (int m = 0; m < g.rows[C]; ++m) {
      float c[kRowBytes / 4];
      std::memcpy(c, s.t[C] + m * kRowBytes, sizeof(c));
      const uint8_t* a = s.t[A] + m * kRowBytes;
      for (int k = 0; k < g.colsb[A] / 4; ++k) {
        const uint8_t* b = s.t[B] + k * kRowBytes;
        for (int n = 0; n < g.colsb[C] / 4; ++n)
          for (int h = 0; h < 2; ++h) {
            bf16_t x, y;
            std::memcpy(&x, a + 4 * k + 2 * h, 2);
            std::memcpy(&y, b + 4 * n + 2 * h, 2);
            c[n] += from_bf16(x) * from_bf16(y);
          }
      }
      std::memcpy(s.t[C] + m * kRowBytes, c, sizeof(c));
    }
  }
};

constexpr int64_t kNR = 32, kPairs = 16;  // the panel width; pairs of k per step

// This thread's tiles as the panel calls left them: the shape loaded (r0 * 32 + r1, -1 none), and whether a
// Bf16TileScope (gemm_bf16.h) holds them, i.e. whether only its own panel calls run on the thread until it ends
struct Held {
  bool scoped = false;
  int shape = -1;
};

template <class Tiles>
Held& held() {
  static thread_local Held h;
  return h;
}

template <class Tiles>
void hold_begin() {
  held<Tiles>() = {true, -1};  // the first panel call configures: other code may have left any state
}

template <class Tiles>
void hold_end() {
  Held& h = held<Tiles>();
  if (h.shape >= 0) Tiles::release();
  h = {};
}

// The tiles of a block of r0 + r1 rows (r0 <= 16 in tmm0, 1, 4; r1 <= 16 in tmm2, 3, 5; r1 = 0: unused)
inline TileConfig block_config(int r0, int r1) {
  TileConfig c;
  auto set = [&c](int t, int rows) {
    c.rows[t] = static_cast<uint8_t>(rows);
    c.colsb[t] = rows > 0 ? kRowBytes : 0;
  };
  for (int t : {0, 1, 4}) set(t, r0);
  for (int t : {2, 3, 5}) set(t, r1);
  set(6, kPairs), set(7, kPairs);
  return c;
}

// The block's C tiles += the product's A rows [i0, i0 + r0 + r1) times its panel
template <class Tiles>
void add_product(const Bf16Product& p, int64_t i0, int r0, int r1) {
  if (p.K2 == 0) return;
  const bf16_t* a0 = p.A + i0 * p.lda;
  const bf16_t* a1 = a0 + kMaxRows * p.lda;
  const int64_t sa = p.lda * int64_t(sizeof(bf16_t)), sp = kNR * 4;
  auto step = [&](const bf16_t* x0, const bf16_t* x1, int64_t sx, const bf16_t* b, int64_t sb) {
    Tiles::template load<4>(x0, sx);
    Tiles::template load<6>(b, sb);
    Tiles::template load<7>(b + kNR, sb);  // columns 16..31: 16 pairs further
    Tiles::template dot<0, 4, 6>();
    Tiles::template dot<1, 4, 7>();
    if (r1 == 0) return;
    Tiles::template load<5>(x1, sx);
    Tiles::template dot<2, 5, 6>();
    Tiles::template dot<3, 5, 7>();
  };
  int64_t q = 0;
  for (; q + kPairs <= p.K2; q += kPairs) step(a0 + 2 * q, a1 + 2 * q, sa, p.P + q * 2 * kNR, sp);
  if (q == p.K2) return;
  // the last kq < 16 pairs: copies padded with zeros to 16 pairs (zero times zero adds nothing)
  const int64_t kq = p.K2 - q;
  alignas(64) uint32_t at[2 * kMaxRows][kPairs] = {};
  alignas(64) uint32_t pt[kPairs][kNR] = {};
  for (int i = 0; i < r0 + r1; ++i) std::memcpy(at[i], a0 + i * p.lda + 2 * q, kq * 4);
  std::memcpy(pt, p.P + q * 2 * kNR, kq * kNR * 4);
  const auto* as = reinterpret_cast<const bf16_t*>(at);
  step(as, as + kMaxRows * 2 * kPairs, kRowBytes, reinterpret_cast<const bf16_t*>(pt), sp);
}

// gemm_bf16.h's panel GEMM for NR = 32: C(M, n) = start + A1 P1 + A2 P2, start = C (acc), the bias row
// (bias) or zero. A full panel (n = 32) is read and written in place unless it needs both C and the bias;
// otherwise each block goes through `out`. The tiles are configured per call and released at its end, unless a
// Bf16TileScope holds them: then a call configures only a shape the tiles do not have, and releases nothing.
template <class Tiles>
void panel(int64_t M, const Bf16Product& p1, const Bf16Product& p2, float* C, int64_t ldc, int64_t n, const float* bias,
           bool acc) {
  const bool in_place = n == kNR && !(acc && bias != nullptr);
  alignas(64) float out[2 * kMaxRows][kNR];
  const int64_t sc = ldc * int64_t(sizeof(float)), so = kNR * int64_t(sizeof(float));
  Held& h = held<Tiles>();
  if (!h.scoped) h.shape = -1;  // configure: whatever ran since may have changed the tiles
  for (int64_t i0 = 0; i0 < M; i0 += 2 * kMaxRows) {
    const int r0 = static_cast<int>(std::min<int64_t>(kMaxRows, M - i0));
    const int r1 = static_cast<int>(std::clamp<int64_t>(M - i0 - kMaxRows, 0, kMaxRows));
    if (r0 * 32 + r1 != h.shape) {
      Tiles::configure(block_config(r0, r1));
      h.shape = r0 * 32 + r1;
    }
    float* c = C + i0 * ldc;
    float* c1 = c + kMaxRows * ldc;
    if (in_place && acc) {
      Tiles::template load<0>(c, sc), Tiles::template load<1>(c + 16, sc);
      if (r1) Tiles::template load<2>(c1, sc), Tiles::template load<3>(c1 + 16, sc);
    } else if (bias != nullptr) {  // the bias row on every row of the tiles: rows 0 bytes apart
      Tiles::template load<0>(bias, 0), Tiles::template load<1>(bias + 16, 0);
      if (r1) Tiles::template load<2>(bias, 0), Tiles::template load<3>(bias + 16, 0);
    } else {
      Tiles::template zero<0>(), Tiles::template zero<1>();
      if (r1) Tiles::template zero<2>(), Tiles::template zero<3>();
    }
    add_product<Tiles>(p1, i0, r0, r1);
    add_product<Tiles>(p2, i0, r0, r1);
    if (in_place) {
      Tiles::template store<0>(c, sc), Tiles::template store<1>(c + 16, sc);
      if (r1) Tiles::template store<2>(c1, sc), Tiles::template store<3>(c1 + 16, sc);
      continue;
    }
    Tiles::template store<0>(out[0], so), Tiles::template store<1>(&out[0][16], so);
    if (r1) Tiles::template store<2>(out[kMaxRows], so), Tiles::template store<3>(&out[kMaxRows][16], so);
    for (int i = 0; i < r0 + r1; ++i) {
      float* row = c + i * ldc;
      for (int64_t j = 0; j < n; ++j) row[j] = acc ? row[j] + out[i][j] : out[i][j];
    }
  }
  if (!h.scoped) hold_end<Tiles>();
}

}  // namespace amx
}  // namespace pyrnn
