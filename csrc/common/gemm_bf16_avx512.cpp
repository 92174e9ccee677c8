// The AVX512-BF16 panel GEMM of gemm_bf16.h: VDPBF16PS (_mm512_dpbf16_ps) on register tiles of
// R <= 8 rows by 32 columns (16 accumulators, 2 panel registers, 1 broadcast of the 32 zmm). Per pair
// of k: two loads of the panel (32 columns x 2 k as bf16 pairs), per row one 32-bit broadcast of the
// row's pair of A and two VDPBF16PS, each 16 columns x 2 products summed into float32.
// Compiled with its own target attribute (the rest of the module targets baseline x86-64); called only
// where cpu_has(CpuFeature::Avx512Bf16) (gemm_bf16.cpp decides).
#include "gemm_bf16.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define PYRNN_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace pyrnn {
namespace {

constexpr int64_t kNR = 32;

template <int R>
PYRNN_BF16_TARGET inline void add_product(__m512 (&c0)[R], __m512 (&c1)[R], const Bf16Product& p, int64_t row0) {
  if (p.K2 == 0) return;
  const bf16_t* A = p.A + row0 * p.lda;
  for (int64_t q = 0; q < p.K2; ++q) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(p.P + q * 2 * kNR);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(p.P + q * 2 * kNR + kNR);
    for (int i = 0; i < R; ++i) {
      int32_t pair;
      std::memcpy(&pair, A + i * p.lda + 2 * q, sizeof(pair));
      const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
      c0[i] = _mm512_dpbf16_ps(c0[i], a, b0);
      c1[i] = _mm512_dpbf16_ps(c1[i], a, b1);
    }
  }
}

template <int R>
PYRNN_BF16_TARGET void tile(const Bf16Product& p1, const Bf16Product& p2, int64_t row0, float* C, int64_t ldc,
                            int64_t n, const float* bias, bool acc) {
  const __m512 s0 = bias != nullptr ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
  const __m512 s1 = bias != nullptr ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
  __m512 c0[R], c1[R];
  for (int i = 0; i < R; ++i) c0[i] = s0, c1[i] = s1;
  add_product<R>(c0, c1, p1, row0);
  add_product<R>(c0, c1, p2, row0);
  // columns [0, n) of the 32: a mask per half
  const __mmask16 m0 = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
  const __mmask16 m1 = n >= 32 ? __mmask16(0xFFFF) : n <= 16 ? __mmask16(0) : __mmask16((1u << (n - 16)) - 1u);
  for (int i = 0; i < R; ++i) {
    float* c = C + (row0 + i) * ldc;
    if (acc) {
      c0[i] = _mm512_add_ps(c0[i], _mm512_maskz_loadu_ps(m0, c));
      c1[i] = _mm512_add_ps(c1[i], _mm512_maskz_loadu_ps(m1, c + 16));
    }
    _mm512_mask_storeu_ps(c, m0, c0[i]);
    _mm512_mask_storeu_ps(c + 16, m1, c1[i]);
  }
}

template <int R>
PYRNN_BF16_TARGET void tail(int64_t r, const Bf16Product& p1, const Bf16Product& p2, int64_t row0, float* C,
                            int64_t ldc, int64_t n, const float* bias, bool acc) {
  if (r == R)
    tile<R>(p1, p2, row0, C, ldc, n, bias, acc);
  else if constexpr (R > 1)
    tail<R - 1>(r, p1, p2, row0, C, ldc, n, bias, acc);
}

}  // namespace

namespace detail {
PYRNN_BF16_TARGET void convert_avx512_bf16(int64_t n, const float* src, bf16_t* dst) {
  int64_t c = 0;
  for (; c + 32 <= n; c += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + c + 16), _mm512_loadu_ps(src + c));
    _mm512_storeu_si512(dst + c, (__m512i)v);
  }
  for (; c < n; c += 16) {
    const __mmask16 m = n - c >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - c)) - 1u);
    const __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + c));
    _mm256_mask_storeu_epi16(dst + c, m, (__m256i)v);
  }
}

PYRNN_BF16_TARGET void pairs_avx512_bf16(int64_t n, const float* r0, const float* r1, uint32_t* dst) {
  // word j of the result: bf16 j/2 of r0 (the low half of the conversion) for even j, of r1 for odd j
  alignas(64) int16_t order[32];
  for (int j = 0; j < 32; ++j) order[j] = static_cast<int16_t>((j & 1) * 16 + j / 2);
  const __m512i idx = _mm512_load_si512(order);
  for (int64_t c = 0; c < n; c += 16) {
    const __mmask16 m = n - c >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - c)) - 1u);
    const __m512 a = _mm512_maskz_loadu_ps(m, r0 + c);
    const __m512 b = r1 != nullptr ? _mm512_maskz_loadu_ps(m, r1 + c) : _mm512_setzero_ps();
    const __m512i v = (__m512i)_mm512_cvtne2ps_pbh(b, a);  // words 0..15: r0's, 16..31: r1's
    _mm512_mask_storeu_epi32(dst + c, m, _mm512_permutexvar_epi16(idx, v));
  }
}

// r[j] <- word j of every r[c] (a 16 x 16 transpose of 32-bit words): interleave words, then pairs of words within
// each 128-bit lane, then the lanes across registers (4 x 4, two rounds of VSHUFI32X4)
PYRNN_BF16_TARGET inline void transpose_words16(__m512i (&r)[16]) {
  __m512i a[16], b[16];
  for (int i = 0; i < 8; ++i) {  // a[2i], a[2i+1]: words 4L, 4L+1 / 4L+2, 4L+3 of rows 2i, 2i+1 (lane L), interleaved
    a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // b[4i+m], lane L: word 4L+m of rows 4i..4i+3
    b[4 * i] = _mm512_unpacklo_epi64(a[4 * i], a[4 * i + 2]);
    b[4 * i + 1] = _mm512_unpackhi_epi64(a[4 * i], a[4 * i + 2]);
    b[4 * i + 2] = _mm512_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
    b[4 * i + 3] = _mm512_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
  }
  for (int m = 0; m < 4; ++m) {  // word 4L+m of every row: lane L of b[m], b[4+m], b[8+m], b[12+m]
    const __m512i c0 = _mm512_shuffle_i32x4(b[m], b[4 + m], 0x88), c1 = _mm512_shuffle_i32x4(b[m], b[4 + m], 0xDD);
    const __m512i c2 = _mm512_shuffle_i32x4(b[8 + m], b[12 + m], 0x88);
    const __m512i c3 = _mm512_shuffle_i32x4(b[8 + m], b[12 + m], 0xDD);
    r[m] = _mm512_shuffle_i32x4(c0, c2, 0x88);
    r[4 + m] = _mm512_shuffle_i32x4(c1, c3, 0x88);
    r[8 + m] = _mm512_shuffle_i32x4(c0, c2, 0xDD);
    r[12 + m] = _mm512_shuffle_i32x4(c1, c3, 0xDD);
  }
}

PYRNN_BF16_TARGET void transpose_pairs_avx512_bf16(int64_t rows, int64_t K, const float* src, int64_t lds,
                                                   uint32_t* dst, int64_t ldd) {
  const int64_t K2 = (K + 1) / 2;
  for (int64_t q0 = 0; q0 < K2; q0 += 16) {  // 16 pairs (32 values of k) of 16 rows, then their transpose
    const int64_t k0 = 2 * q0, kn = K - k0 < 32 ? K - k0 : 32;
    const __mmask16 lo = kn >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << kn) - 1u);
    const __mmask16 hi = kn >= 32 ? __mmask16(0xFFFF) : kn <= 16 ? __mmask16(0) : __mmask16((1u << (kn - 16)) - 1u);
    __m512i r[16];
    for (int c = 0; c < 16; ++c) {
      const float* s = src + c * lds + k0;
      r[c] = c < rows ? (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, s + 16), _mm512_maskz_loadu_ps(lo, s))
                      : _mm512_setzero_si512();
    }
    transpose_words16(r);
    for (int64_t j = 0; j < 16 && q0 + j < K2; ++j) _mm512_storeu_si512(dst + (q0 + j) * ldd, r[j]);
  }
}

PYRNN_BF16_TARGET void panel_avx512_bf16(int64_t M, const Bf16Product& p1, const Bf16Product& p2, float* C, int64_t ldc,
                                         int64_t n, const float* bias, bool acc, int64_t NR) {
  (void)NR;  // 32: bf16_panel_for hands this kernel out for that width only
  constexpr int kMR = 8;
  int64_t i = 0;
  for (; i + kMR <= M; i += kMR) tile<kMR>(p1, p2, i, C, ldc, n, bias, acc);
  if (i < M) tail<kMR - 1>(M - i, p1, p2, i, C, ldc, n, bias, acc);
}
}  // namespace detail

}  // namespace pyrnn
#endif
