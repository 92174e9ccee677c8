// See planar.h. The drivers: per sample, the channel-planar padded copy of x (and for the weight
// gradient the planar copy of dy), the ISA's kernel over the whole plane, and the output transposed back
// to channels-last. Samples are split over the team: the forward hands them out one at a time (a
// descheduled member takes fewer); the weight gradient gives each member a fixed run of samples and
// sums the members' gradients in member order, so its result does not depend on the timing.
#include "planar.h"

#include <algorithm>
#include <vector>

#include "../common/channels.h"
#include "../common/cpu.h"
#include "../common/threads.h"
#include "igemm.h"

namespace pyrnn {

namespace {
bool planar_geometry(const Conv2dDims& d) {
  return d.G == 1 && d.sh == 1 && d.sw == 1 && d.pt >= 0 && d.pb >= 0 && d.pl >= 0 && d.pr >= 0;
}
}  // namespace

bool planar_forward_fits(const Conv2dDims& d, int64_t narrow_lanes) {
  return planar_geometry(d) &&
         ((d.C <= kPlanarChannels && d.O <= 4 * narrow_lanes) || (d.C <= 64 && 4 * d.O <= narrow_lanes));
}

bool planar_wgrad_fits(const Conv2dDims& d) { return planar_geometry(d) && d.C <= kPlanarChannels; }

namespace {

constexpr int64_t kPlanarChunkBytes = int64_t(1) << 17;

struct Plane {
  int64_t Hp, Wp, T, nq, ps;
  std::vector<int64_t> off;  // (T,): tap t = kh*KW + kw reads q + kh*dh*Wp + kw*dw
};

template <typename F>
Plane plane_of(const Conv2dDims& d, const PlanarKernels<F>& k) {
  Plane g;
  g.Hp = d.H + d.pt + d.pb, g.Wp = d.W + d.pl + d.pr, g.T = d.KH * d.KW;
  g.nq = (d.HO * g.Wp + k.block - 1) / k.block * k.block;
  g.off.resize(static_cast<size_t>(g.T));
  for (int64_t kh = 0; kh < d.KH; ++kh)
    for (int64_t kw = 0; kw < d.KW; ++kw) g.off[static_cast<size_t>(kh * d.KW + kw)] = kh * d.dh * g.Wp + kw * d.dw;
  g.ps = (g.nq + g.off.back() + 15) / 16 * 16;  // every read q + off < nq + off[T-1]
  return g;
}

// Between a line of n pixels of K channels (channels-last, row[j*K + k]) and K planes (planes[k*plane + j]). With K
// a constant (KK > 0) the compiler vectorises the copies: into planes pixel by pixel (in-register transposes) for
// powers of two and plane by plane (loads at a constant stride) for 3, 6 and 12, out of planes pixel by pixel for
// every count; each the faster order (SSE2, lines of 28 pixels in cache: 0.07-0.3 ns a value, the loops over a
// runtime K 0.6-1.2).

// planes[k*plane + j] = row[j*K + k]
template <int KK, typename F>
void planes_of_line(const F* __restrict row, int64_t n, int64_t K_, F* __restrict planes, int64_t plane) {
  const int64_t K = KK > 0 ? KK : K_;
  if (KK > 0 && (KK & (KK - 1)) == 0) {
    for (int64_t j = 0; j < n; ++j)
#pragma GCC unroll 16
      for (int64_t k = 0; k < K; ++k) planes[k * plane + j] = row[j * K + k];
  } else {
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < n; ++j) planes[k * plane + j] = row[j * K + k];
  }
}

// row[j*K + k] = bias[k] + planes[k*plane + j]
template <int KK, typename F>
void line_of_planes(const F* __restrict planes, int64_t plane, int64_t n, int64_t K_, const F* __restrict bias,
                    F* __restrict row) {
  const int64_t K = KK > 0 ? KK : K_;
  if (KK > 0) {
    for (int64_t j = 0; j < n; ++j)
#pragma GCC unroll 16
      for (int64_t k = 0; k < K; ++k) row[j * K + k] = bias[k] + planes[k * plane + j];
  } else {
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < n; ++j) row[j * K + k] = bias[k] + planes[k * plane + j];
  }
}

// xp[c][(h + pt)*Wp + pl + w] = x[b, h, w, c]; the rest of xp (the padding) is left as it is: zero
template <typename F>
void planar_input(const Conv2dDims& d, const Plane& g, const F* x, int64_t b, F* xp) {
  const F* xb = x + b * d.H * d.W * d.C;
  with_channels(d.C, [&](auto cc) {
    for (int64_t h = 0; h < d.H; ++h)
      planes_of_line<decltype(cc)::value>(xb + h * d.W * d.C, d.W, d.C, xp + (h + d.pt) * g.Wp + d.pl, g.ps);
  });
}

// sum of p[0, n) in 8 interleaved partial sums (not one chain of dependent adds)
template <typename F>
F plane_sum(const F* p, int64_t n) {
  F s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += p[i + k];
  for (; i < n; ++i) s[0] += p[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

int team(const Conv2dDims& d) { return team_for(2 * d.B * d.HO * d.WO * d.O * d.C * d.KH * d.KW, d.B); }

}  // namespace

template <typename F>
void planar_convolve(const Conv2dDims& d, const PlanarKernels<F>& k, const F* x, const F* wt, const F* b, PostOp post,
                     F* y, Cancel& cancel) {
  const Plane g = plane_of(d, k);
  WorkQueue samples(d.B);
  std::vector<F> zero_bias(b ? 0 : static_cast<size_t>(d.O), F(0));
  const F* bias = b ? b : zero_bias.data();
  auto member = [&](int tid) {
    DenormalsFlushed ftz;
    std::vector<F> xp(static_cast<size_t>(d.C * g.ps), F(0)), yt(static_cast<size_t>(d.O * g.nq));
    const PlanarCall<F> call{d.C, d.O, g.T, g.nq, xp.data(), g.ps, g.off.data(), wt, yt.data()};
    for (int64_t s; samples.take(s);) {
      if (tid == 0) cancel.poll(s);
      if (cancel.cancelled()) return;
      planar_input(d, g, x, s, xp.data());
      k.forward(call);
      with_channels(d.O, [&](auto oc) {
        for (int64_t i = 0; i < d.HO; ++i) {  // y[s, i, j, o] = b[o] + yt[o][i*Wp + j]: one output line
          F* out = y + (s * d.HO + i) * d.WO * d.O;
          line_of_planes<decltype(oc)::value>(yt.data() + i * g.Wp, g.nq, d.WO, d.O, bias, out);
          if (post != PostOp::None) igemm_kernels<F>().post(post, out, d.WO * d.O);
        }
      });
    }
  };
  parallel_optional(team(d), member);
}

template <typename F>
void planar_weight_grad(const Conv2dDims& d, const PlanarKernels<F>& k, const F* x, const F* dy, F* dw, F* db,
                        Cancel& cancel) {
  const Plane g = plane_of(d, k);
  const int want = team(d);
  Slots slots(d.B, want);
  const size_t dsize = static_cast<size_t>(d.O * d.C * g.T), count = static_cast<size_t>(slots.count());
  std::vector<F> D(dsize * count, F(0));                                // (O, C, T) per slot
  std::vector<F> dbs(db ? static_cast<size_t>(d.O) * count : 0, F(0));  // (O,) per slot
  // samples per kernel call: their planes (x's and dy's) near kPlanarChunkBytes, so the accumulators' tiles sum
  // over many positions (few lane sums) while the planes stay in cache
  const int64_t per_sample = (d.C * g.ps + d.O * g.nq) * static_cast<int64_t>(sizeof(F));
  const int64_t S = std::max<int64_t>(1, std::min<int64_t>(d.B, kPlanarChunkBytes / per_sample));
  auto region = [&](int tid) {
    DenormalsFlushed ftz;
    std::vector<F> xp(static_cast<size_t>(S * d.C * g.ps), F(0));
    std::vector<F> dyp(static_cast<size_t>(S * d.O * g.nq), F(0));  // the junk positions stay zero
    for (int64_t slot, first, s1; !cancel.cancelled() && slots.take(slot, first, s1);)
      for (int64_t s0 = first; s0 < s1; s0 += S) {
        F* my_db = db ? dbs.data() + static_cast<size_t>(d.O) * static_cast<size_t>(slot) : nullptr;
        if (tid == 0) cancel.poll(s0);
        if (cancel.cancelled()) return;
        const int64_t m = std::min(S, s1 - s0);
        for (int64_t u = 0; u < m; ++u) {
          const int64_t s = s0 + u;
          planar_input(d, g, x, s, xp.data() + u * d.C * g.ps);
          F* planes = dyp.data() + u * d.O * g.nq;
          with_channels(d.O, [&](auto oc) {
            for (int64_t i = 0; i < d.HO; ++i)  // planes[o][i*Wp + j] = dy[s, i, j, o]: one output line
              planes_of_line<decltype(oc)::value>(dy + (s * d.HO + i) * d.WO * d.O, d.WO, d.O, planes + i * g.Wp, g.nq);
          });
          if (my_db)  // the junk positions are zero: a plane's sum is the channel's
            for (int64_t o = 0; o < d.O; ++o) my_db[o] += plane_sum(planes + o * g.nq, g.nq);
        }
        k.wgrad(PlanarWgradCall<F>{d.C, d.O, g.T, g.nq, m, xp.data(), g.ps, g.off.data(), dyp.data(),
                                   D.data() + dsize * static_cast<size_t>(slot)});
      }
  };
  parallel_optional(want, region);
  if (cancel.cancelled()) return;
  add_member_parts(D.data(), static_cast<int64_t>(dsize), slots.count(), dw);
  if (db) add_member_parts(dbs.data(), d.O, slots.count(), db);
}

#define PYRNN_PLANAR_INSTANTIATE(F)                                                                                  \
  template void planar_convolve<F>(const Conv2dDims&, const PlanarKernels<F>&, const F*, const F*, const F*, PostOp, \
                                   F*, Cancel&);                                                                     \
  template void planar_weight_grad<F>(const Conv2dDims&, const PlanarKernels<F>&, const F*, const F*, F*, F*, Cancel&);
PYRNN_PLANAR_INSTANTIATE(float)
PYRNN_PLANAR_INSTANTIATE(double)
#undef PYRNN_PLANAR_INSTANTIATE

}  // namespace pyrnn
