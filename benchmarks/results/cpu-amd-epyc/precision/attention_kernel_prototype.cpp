// A CPU attention kernel for small heads, measured for issue 28 and not shipped (see int8_profile.md,
// "An attention kernel of its own"). Packed q/k/v (tokens, heads, head_dim) with cu_seqlens, fp32, non-causal.
// Build: g++ -O3 -std=c++17 -shared -fPIC -fopenmp -DQBV=16 -DCPU_CAPABILITY_AVX512 -mavx512f -mavx512dq
//        -mavx512vl -mavx512bw -mfma $(torch include paths as -I) attention_kernel_prototype.cpp -o attn.so

#include <ATen/cpu/vec/vec.h>
#include <omp.h>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

using Vec = at::vec::Vectorized<float>;
constexpr int64_t VL = Vec::size();

static inline float hmax(Vec v) {
#if defined(CPU_CAPABILITY_AVX512)
  return _mm512_reduce_max_ps(v);
#else
  float l[VL];
  v.store(l);
  float m = l[0];
  for (int64_t i = 1; i < VL; ++i) m = std::max(m, l[i]);
  return m;
#endif
}
static inline float hsum(Vec v) {
#if defined(CPU_CAPABILITY_AVX512)
  return _mm512_reduce_add_ps(v);
#else
  float l[VL];
  v.store(l);
  float m = 0.f;
  for (int64_t i = 0; i < VL; ++i) m += l[i];
  return m;
#endif
}
constexpr int64_t QB = QBV;  // query rows per block
constexpr int RT = 4;       // query rows per register tile
constexpr int CT = 4;       // vectors per register tile

template <int R, int NV>
static inline void score_tile(const float* const* qr, const float* kt, int64_t ldk, int64_t D, float* s) {
  Vec acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < NV; ++n) acc[r][n] = Vec(0.f);
  for (int64_t d = 0; d < D; ++d) {
    Vec kv[NV];
    for (int n = 0; n < NV; ++n) kv[n] = Vec::loadu(kt + d * ldk + n * VL);
    for (int r = 0; r < R; ++r) {
      Vec qb(qr[r][d]);
      for (int n = 0; n < NV; ++n) acc[r][n] = at::vec::fmadd(qb, kv[n], acc[r][n]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < NV; ++n) acc[r][n].store(s + r * ldk + n * VL);
}

template <int R>
static inline void score_rows(const float* const* qr, const float* kt, int64_t ldk, int64_t D, float* s) {
  int64_t c = 0;
  for (; c + CT * VL <= ldk; c += CT * VL) score_tile<R, CT>(qr, kt + c, ldk, D, s + c);
  switch ((ldk - c) / VL) {
    case 3: score_tile<R, 3>(qr, kt + c, ldk, D, s + c); break;
    case 2: score_tile<R, 2>(qr, kt + c, ldk, D, s + c); break;
    case 1: score_tile<R, 1>(qr, kt + c, ldk, D, s + c); break;
    default: break;
  }
}

// out rows (R of them) [0, NV * VL) = sum_j p[r][j] v[j][...]; TAIL: the last vector holds dn < VL columns
template <int R, int NV, bool TAIL>
static inline void pv_tile(const float* p, int64_t ldk, const float* v, int64_t sv, int64_t lk, int64_t dn,
                           const float* inv, float* const* orow) {
  Vec acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < NV; ++n) acc[r][n] = Vec(0.f);
  for (int64_t j = 0; j < lk; ++j) {
    Vec vv[NV];
    const float* vr = v + j * sv;
    for (int n = 0; n < NV; ++n)
      vv[n] = (TAIL && n == NV - 1) ? Vec::loadu(vr + n * VL, dn) : Vec::loadu(vr + n * VL);
    for (int r = 0; r < R; ++r) {
      Vec pb(p[r * ldk + j]);
      for (int n = 0; n < NV; ++n) acc[r][n] = at::vec::fmadd(pb, vv[n], acc[r][n]);
    }
  }
  for (int r = 0; r < R; ++r) {
    Vec iv(inv[r]);
    for (int n = 0; n < NV; ++n) {
      Vec x = acc[r][n] * iv;
      if (TAIL && n == NV - 1) x.store(orow[r] + n * VL, dn); else x.store(orow[r] + n * VL);
    }
  }
}

template <int R, int NV>
static inline void pv_tile_any(const float* p, int64_t ldk, const float* v, int64_t sv, int64_t lk, int64_t dn,
                               const float* inv, float* const* orow) {
  if (dn == VL) pv_tile<R, NV, false>(p, ldk, v, sv, lk, dn, inv, orow);
  else pv_tile<R, NV, true>(p, ldk, v, sv, lk, dn, inv, orow);
}

template <int R>
static inline void pv_rows(const float* p, int64_t ldk, const float* v, int64_t sv, int64_t lk, int64_t D,
                           const float* inv, float* const* orow) {
  constexpr int MAXV = R > 4 ? 2 : 4;
  for (int64_t d0 = 0; d0 < D; d0 += MAXV * VL) {
    int64_t w = std::min<int64_t>(MAXV * VL, D - d0);
    int64_t nv = (w + VL - 1) / VL, dn = w - (nv - 1) * VL;
    float* o2[R];
    for (int r = 0; r < R; ++r) o2[r] = orow[r] + d0;
    switch (nv) {
      case 4: pv_tile_any<R, 4>(p, ldk, v + d0, sv, lk, dn, inv, o2); break;
      case 3: pv_tile_any<R, 3>(p, ldk, v + d0, sv, lk, dn, inv, o2); break;
      case 2: pv_tile_any<R, 2>(p, ldk, v + d0, sv, lk, dn, inv, o2); break;
      default: pv_tile_any<R, 1>(p, ldk, v + d0, sv, lk, dn, inv, o2); break;
    }
  }
}

extern "C" int fb_attention_f32(const float* q, const float* k, const float* v, float* o, const int64_t* cu_q,
                                const int64_t* cu_k, int64_t nseq, int64_t H, int64_t D, int64_t sq_t,
                                int64_t sq_h, int64_t sk_t, int64_t sk_h, int64_t sv_t, int64_t sv_h,
                                int64_t so_t, int64_t so_h, float scale, int64_t max_lk, int nthreads) {
  const int64_t items = nseq * H;
  const int64_t ldk = (max_lk + VL - 1) / VL * VL;
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<float> kt(D * ldk);
    std::vector<float> s(QB * ldk);
    float inv[QB];
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t b = it / H, h = it % H;
      const int64_t q0 = cu_q[b], lq = cu_q[b + 1] - q0, k0 = cu_k[b], lk = cu_k[b + 1] - k0;
      if (lq <= 0) continue;
      if (lk <= 0) {
        for (int64_t i = 0; i < lq; ++i) std::fill_n(o + (q0 + i) * so_t + h * so_h, D, 0.f);
        continue;
      }
      const int64_t lkp = (lk + VL - 1) / VL * VL;  // this sequence's padded row
      for (int64_t j = 0; j < lk; ++j) {
        const float* kr = k + (k0 + j) * sk_t + h * sk_h;
        for (int64_t d = 0; d < D; ++d) kt[d * ldk + j] = kr[d];
      }
      for (int64_t d = 0; d < D; ++d) std::fill(kt.begin() + d * ldk + lk, kt.begin() + d * ldk + lkp, 0.f);
      const float* vb = v + k0 * sv_t + h * sv_h;
      for (int64_t r0 = 0; r0 < lq; r0 += QB) {
        const int64_t rb = std::min(QB, lq - r0);
        const float* qr[QB];
        float* orow[QB];
        for (int64_t r = 0; r < rb; ++r) {
          qr[r] = q + (q0 + r0 + r) * sq_t + h * sq_h;
          orow[r] = o + (q0 + r0 + r) * so_t + h * so_h;
        }
        int64_t r = 0;
        for (; r + RT <= rb; r += RT) score_rows<RT>(qr + r, kt.data(), ldk, D, s.data() + r * ldk);
        for (; r < rb; ++r) score_rows<1>(qr + r, kt.data(), ldk, D, s.data() + r * ldk);
        // (score_rows wrote ldk columns per row; only lkp are computed on real or zero keys)
        const Vec vscale(scale);
        for (r = 0; r < rb; ++r) {
          float* sr = s.data() + r * ldk;
          for (int64_t j = lk; j < lkp; ++j) sr[j] = -std::numeric_limits<float>::infinity();
          Vec vmax(-std::numeric_limits<float>::infinity());
          for (int64_t j = 0; j < lkp; j += VL) vmax = at::vec::maximum(vmax, Vec::loadu(sr + j));
          const Vec vm(hmax(vmax) * scale);
          Vec vsum(0.f);
          for (int64_t j = 0; j < lkp; j += VL) {
            Vec x = (at::vec::fmsub(Vec::loadu(sr + j), vscale, vm)).exp_u20();
            x.store(sr + j);
            vsum = vsum + x;
          }
          inv[r] = 1.f / hsum(vsum);
        }
        r = 0;
        if (D <= 2 * VL)
          for (; r + 8 <= rb; r += 8) pv_rows<8>(s.data() + r * ldk, ldk, vb, sv_t, lk, D, inv + r, orow + r);
        for (; r + RT <= rb; r += RT) pv_rows<RT>(s.data() + r * ldk, ldk, vb, sv_t, lk, D, inv + r, orow + r);
        for (; r < rb; ++r) pv_rows<1>(s.data() + r * ldk, ldk, vb, sv_t, lk, D, inv + r, orow + r);
      }
    }
  }
  return 0;
}
