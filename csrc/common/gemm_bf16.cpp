// See gemm_bf16.h: the run-time choice of path, the packing, the float32 emulation of the bf16
// products and the general GEMM gemm_bf16. The VDPBF16PS panel GEMM is gemm_bf16_avx512.cpp, the AMX one
// gemm_bf16_amx.cpp.
#include "gemm_bf16.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu.h"

// The VDPBF16PS and AMX kernels (gemm_bf16_avx512.cpp, gemm_bf16_amx.cpp) exist on x86-64 GCC/clang builds
#if defined(__x86_64__) && defined(__GNUC__)
#define PYRNN_HAVE_X86_BF16_KERNELS 1
#else
#define PYRNN_HAVE_X86_BF16_KERNELS 0
#endif

namespace pyrnn {

namespace {
std::atomic<int> g_path{-1};  // -1: not chosen yet

constexpr int64_t kMaxNR = 64;  // the widest panel the emulation takes

// row[0:NR) += A[i, :] P (one row of one product), bf16 widened to float32: the products are exact
void add_row_product(float* row, const Bf16Product& p, int64_t i, int64_t NR) {
  const bf16_t* a = p.A + i * p.lda;
  for (int64_t q = 0; q < p.K2; ++q) {
    const float a0 = from_bf16(a[2 * q]), a1 = from_bf16(a[2 * q + 1]);
    const bf16_t* b = p.P + q * NR * 2;
    for (int64_t c = 0; c < NR; ++c) row[c] += a0 * from_bf16(b[2 * c]) + a1 * from_bf16(b[2 * c + 1]);
  }
}

// C(M, n) = start + A1 P1 + A2 P2: the float32 emulation of the panel GEMM (any NR <= kMaxNR)
void panel_emulated(int64_t M, const Bf16Product& p1, const Bf16Product& p2, float* C, int64_t ldc, int64_t n,
                    const float* bias, bool acc, int64_t NR) {
  float row[kMaxNR];
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t c = 0; c < NR; ++c) row[c] = bias != nullptr ? bias[c] : 0.0f;
    add_row_product(row, p1, i, NR);
    add_row_product(row, p2, i, NR);
    float* out = C + i * ldc;
    for (int64_t c = 0; c < n; ++c) out[c] = acc ? out[c] + row[c] : row[c];
  }
}
}  // namespace

const char* bf16_path_name(Bf16Path path) {
  switch (path) {
    case Bf16Path::Emulated: return "emulated";
    case Bf16Path::Avx512Bf16: return "avx512_bf16";
    case Bf16Path::Amx: return "amx";
    case Bf16Path::AmxEmulated: return "amx_emulated";
  }
  return "unknown";
}

bool bf16_path_supported(Bf16Path path) {
  switch (path) {
    case Bf16Path::Emulated: return true;
    case Bf16Path::Avx512Bf16: return PYRNN_HAVE_X86_BF16_KERNELS && cpu_has(CpuFeature::Avx512Bf16);
    case Bf16Path::Amx: return PYRNN_HAVE_X86_BF16_KERNELS && amx_tiles_granted();
    case Bf16Path::AmxEmulated: return true;
  }
  return false;
}

Bf16Path active_bf16_path() {
  int v = g_path.load(std::memory_order_relaxed);
  if (v < 0) {
    const Bf16Path best = bf16_path_supported(Bf16Path::Amx)          ? Bf16Path::Amx
                          : bf16_path_supported(Bf16Path::Avx512Bf16) ? Bf16Path::Avx512Bf16
                                                                      : Bf16Path::Emulated;
    v = static_cast<int>(best);
    g_path.store(v, std::memory_order_relaxed);
  }
  return static_cast<Bf16Path>(v);
}

void set_bf16_path(Bf16Path path) {
  if (!bf16_path_supported(path))
    throw std::invalid_argument(std::string("bf16 path: expected one this CPU supports, got '") + bf16_path_name(path) +
                                "'");
  g_path.store(static_cast<int>(path), std::memory_order_relaxed);
}

bf16_panel_fn bf16_panel_for(int64_t NR) {
  if (NR < 1 || NR > kMaxNR) throw std::invalid_argument("bf16 panel: expected 1 <= NR <= 64");
  const Bf16Path path = active_bf16_path();
  if (NR == 32 && path == Bf16Path::AmxEmulated) return detail::panel_amx_emulated;
#if PYRNN_HAVE_X86_BF16_KERNELS
  if (NR == 32 && path == Bf16Path::Avx512Bf16) return detail::panel_avx512_bf16;
  if (NR == 32 && path == Bf16Path::Amx) return detail::panel_amx;
#endif
  return panel_emulated;
}

int64_t bf16_gemm_panel_width() { return 32; }

namespace {
// The packs are written as 32-bit words (pairs) and read as bf16: a type that may alias them (bf16_t
// buffers from new[] and std::vector are aligned for words).
typedef uint32_t __attribute__((__may_alias__)) word_t;
word_t* words(bf16_t* p) { return reinterpret_cast<word_t*>(p); }

bool vector_conversions() {  // VCVTNE2PS2BF16 on the native paths where the CPU has it (the same rounding as to_bf16)
#if PYRNN_HAVE_X86_BF16_KERNELS
  static const bool has = bf16_path_supported(Bf16Path::Avx512Bf16);
  return has && bf16_path_native(active_bf16_path());
#else
  return false;
#endif
}

void convert_run(int64_t n, const float* src, bf16_t* dst, bool vec) {
#if PYRNN_HAVE_X86_BF16_KERNELS
  if (vec) return detail::convert_avx512_bf16(n, src, dst);
#endif
  (void)vec;
  for (int64_t c = 0; c < n; ++c) dst[c] = to_bf16(src[c]);
}

// dst[c] = the pair (r0[c], r1[c]) in bf16, r0's in the low half (the word VDPBF16PS reads); r1 null: zeros
void pairs_run(int64_t n, const float* r0, const float* r1, word_t* dst, bool vec) {
#if PYRNN_HAVE_X86_BF16_KERNELS
  if (vec) return detail::pairs_avx512_bf16(n, r0, r1, dst);
#endif
  (void)vec;
  for (int64_t c = 0; c < n; ++c)
    dst[c] = uint32_t(to_bf16(r0[c])) | (r1 != nullptr ? uint32_t(to_bf16(r1[c])) << 16 : 0u);
}

}  // namespace

Bf16Buffer bf16_buffer(int64_t n, bool zeroed) {  // never null: a pointer into it is valid even for n = 0
  Bf16Buffer b = scratch<bf16_t>(std::max<int64_t>(n, 1));
  if (zeroed) std::memset(b.get(), 0, static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(bf16_t));
  return b;
}

void convert_bf16(int64_t rows, int64_t c0, int64_t c1, const float* src, int64_t lds, bf16_t* dst, int64_t ldd) {
  const bool vec = vector_conversions();
  for (int64_t r = 0; r < rows; ++r) convert_run(c1 - c0, src + r * lds + c0, dst + r * ldd + c0, vec);
}

void pack_bf16_panels(const float* B, int64_t ldk, int64_t ldn, int64_t K, int64_t N, int64_t NR, bf16_t* out) {
  const int64_t K2 = (K + 1) / 2, np = (N + NR - 1) / NR;
  const bool vec = vector_conversions();
  word_t* w = words(out);
  if (ldn == 1) {  // rows of op(B) contiguous: pair two rows, one panel's columns at a time
    for (int64_t q = 0; q < K2; ++q) {
      const float* r0 = B + 2 * q * ldk;
      const float* r1 = 2 * q + 1 < K ? r0 + ldk : nullptr;
      for (int64_t p = 0; p < np; ++p) {
        const int64_t n = std::min(NR, N - p * NR);
        word_t* dst = w + (p * K2 + q) * NR;
        pairs_run(n, r0 + p * NR, r1 == nullptr ? nullptr : r1 + p * NR, dst, vec);
        for (int64_t c = n; c < NR; ++c) dst[c] = 0;
      }
    }
    return;
  }
  // columns of op(B) contiguous (ldk == 1, e.g. W^T of a row-major W): with VCVTNE2PS2BF16, 16 columns at a time,
  // converted and transposed in registers (16 x 16 words: each store is 16 words of a panel row, where a column at a
  // time stored one word a line). LSTM T=100 B=64 I=H=512 inference on AMX, whose forward packs W_ih^T and W_hh^T
  // every call: 4.2 % of the samples on the calling thread before, 1.9 % over both members now (with the split
  // of recurrent.cpp); the two together against neither, two builds alternating in fresh processes: 1.067x
  // [0.99-1.10]. The same bits.
#if PYRNN_HAVE_X86_BF16_KERNELS
  if (vec && ldk == 1 && NR % 16 == 0) {
    for (int64_t p = 0; p < np; ++p)
      for (int64_t c0 = 0; c0 < NR; c0 += 16) {
        const int64_t n0 = p * NR + c0;
        detail::transpose_pairs_avx512_bf16(std::min<int64_t>(16, std::max<int64_t>(0, N - n0)), K,
                                            B + std::min(n0, N) * ldn, ldn, w + p * K2 * NR + c0, NR);
      }
    return;
  }
#endif
  // else convert a column, its pairs are words
  std::vector<bf16_t> col(static_cast<size_t>(2 * K2));
  col[2 * K2 - 1] = 0;  // the pad of an odd K
  const word_t* cw = words(col.data());
  for (int64_t p = 0; p < np; ++p)
    for (int64_t c = 0; c < NR; ++c) {
      const int64_t n = p * NR + c;
      word_t* dst = w + p * K2 * NR + c;
      if (n >= N) {
        for (int64_t q = 0; q < K2; ++q) dst[q * NR] = 0;
        continue;
      }
      if (ldk == 1)
        convert_run(K, B + n * ldn, col.data(), vec);
      else
        for (int64_t k = 0; k < K; ++k) col[k] = to_bf16(B[k * ldk + n * ldn]);
      for (int64_t q = 0; q < K2; ++q) dst[q * NR] = cw[q];
    }
}

// K blocked by kKC (the packed panel of one block stays in L2), rows of A by kMC.
constexpr int64_t kKC = 512, kMC = 96;

void gemm_bf16_packed(bool ta, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const bf16_t* Bp,
                      float beta, float* C, int64_t ldc) {
  if (beta != 0.0f && beta != 1.0f) throw std::invalid_argument("gemm_bf16: expected beta 0 or 1");
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (beta == 0.0f)
      for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
    return;
  }
  const int64_t NR = bf16_gemm_panel_width(), np = (N + NR - 1) / NR, Kp = even_up(K);
  const bf16_panel_fn panel = bf16_panel_for(NR);
  const int64_t kc_max = std::min(K, kKC);
  const Bf16Buffer apack = bf16_buffer(std::min(M, kMC) * even_up(kc_max), true);
  std::vector<uint32_t> pairs(ta ? static_cast<size_t>(std::min(M, kMC) * even_up(kc_max) / 2) : 0);
  const bool vec = vector_conversions();
  const Bf16TileScope tiles;                 // AMX: a configuration per shape of block, not per panel call
  for (int64_t k0 = 0; k0 < K; k0 += kKC) {  // kKC even: a block starts on a pair row (k0 / 2) of every panel
    const int64_t kc = std::min(kKC, K - k0), kp = even_up(kc);
    const bool acc = k0 > 0 || beta != 0.0f;
    for (int64_t i0 = 0; i0 < M; i0 += kMC) {
      const int64_t mc = std::min(kMC, M - i0);
      bf16_t* a = apack.get();
      if (!ta) {
        convert_bf16(mc, 0, kc, A + i0 * lda + k0, lda, a, kp);
        if (kc & 1)
          for (int64_t i = 0; i < mc; ++i) a[i * kp + kc] = 0;
      } else {  // op(A)(i, k) = A[k*lda + i]: pair rows k, k+1 along i, then transpose the pairs
        const int64_t q2 = kp / 2;
        for (int64_t q = 0; q < q2; ++q) {
          const float* r0 = A + (k0 + 2 * q) * lda + i0;
          pairs_run(mc, r0, 2 * q + 1 < kc ? r0 + lda : nullptr, pairs.data() + q * mc, vec);
        }
        word_t* aw = words(a);
        for (int64_t i = 0; i < mc; ++i)
          for (int64_t q = 0; q < q2; ++q) aw[i * q2 + q] = pairs[q * mc + i];
      }
      for (int64_t p = 0; p < np; ++p)
        panel(mc, {a, kp, Bp + p * Kp * NR + k0 * NR, kp / 2}, {nullptr, 0, nullptr, 0}, C + i0 * ldc + p * NR, ldc,
              std::min(NR, N - p * NR), nullptr, acc, NR);
    }
  }
}

void gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
               int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  const int64_t NR = bf16_gemm_panel_width();
  const Bf16Buffer bpack = bf16_buffer((N + NR - 1) / NR * even_up(K) * NR, false);   // the pack writes all of it
  if (K > 0) pack_bf16_panels(B, tb ? 1 : ldb, tb ? ldb : 1, K, N, NR, bpack.get());  // (k, n) = op(B)
  gemm_bf16_packed(ta, M, N, K, A, lda, bpack.get(), beta, C, ldc);
}

}  // namespace pyrnn
