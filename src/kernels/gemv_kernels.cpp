// The raw GEMV kernels (see gemv_kernels.h). Built alone, without torch headers: GCC 12 reports false
// -Wmaybe-uninitialized warnings inside its own AVX-512 intrinsics headers (masked loads, reductions), which
// CMakeLists.txt silences for this file only.
#include "kernels/gemv_kernels.h"

#include <algorithm>
#include <cstring>

#ifdef GILL_GEMV_X86
#include <immintrin.h>
#endif

namespace gill::kernels::gemv {

namespace {

inline float bf16_to_f32(uint16_t v) {
  const uint32_t u = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Round to nearest even, NaN to the quiet NaN 0x7fc0: c10::BFloat16's conversion, bit for bit.
inline uint16_t f32_to_bf16(float f) {
  if (f != f) return 0x7fc0;
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace

void gemv_scalar(const GemvArgs& a, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; ++n) {
    const uint16_t* row = a.w + n * a.K;
    for (int64_t m = 0; m < a.M; ++m) {
      const float* xm = a.x + m * a.ldx;
      float acc = 0.f;
      for (int64_t k = 0; k < a.K; ++k) acc += bf16_to_f32(row[k]) * xm[k];
      a.y[m * a.ldy + n] = acc + (a.bias ? a.bias[n] : 0.f);
    }
  }
}

void widen_scalar(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

#ifdef GILL_GEMV_X86
namespace {

__attribute__((target("avx2,fma"))) inline __m256 load8_bf16(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx2,fma"))) inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// M tokens x R weight rows per tile: M*R accumulators stay in registers (at most 8 of the 16 ymm registers).
template <int M, int R>
__attribute__((target("avx2,fma"))) void gemv_avx2(const GemvArgs& a, int64_t n0, int64_t n1) {
  const int64_t K = a.K;
  const int64_t K8 = K & ~int64_t(7);
  int64_t n = n0;
  for (; n + R <= n1; n += R) {
    __m256 acc[M][R];
    for (int m = 0; m < M; ++m)
      for (int r = 0; r < R; ++r) acc[m][r] = _mm256_setzero_ps();
    const uint16_t* rows[R];
    for (int r = 0; r < R; ++r) rows[r] = a.w + (n + r) * K;
    for (int64_t k = 0; k < K8; k += 8) {
      __m256 wv[R];
      for (int r = 0; r < R; ++r) wv[r] = load8_bf16(rows[r] + k);
      for (int m = 0; m < M; ++m) {
        const __m256 xv = _mm256_loadu_ps(a.x + m * a.ldx + k);
        for (int r = 0; r < R; ++r) acc[m][r] = _mm256_fmadd_ps(wv[r], xv, acc[m][r]);
      }
    }
    for (int m = 0; m < M; ++m) {
      const float* xm = a.x + m * a.ldx;
      for (int r = 0; r < R; ++r) {
        float s = hsum8(acc[m][r]);
        for (int64_t k = K8; k < K; ++k) s += bf16_to_f32(rows[r][k]) * xm[k];
        a.y[m * a.ldy + n + r] = s + (a.bias ? a.bias[n + r] : 0.f);
      }
    }
  }
  if (n < n1) gemv_avx2<M, 1>(a, n, n1);
}

}  // namespace

__attribute__((target("avx2,fma"))) void widen_avx2(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8_bf16(src + i));
  for (; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

// M (1..8) tokens at once.
void gemv_avx2_dispatch(const GemvArgs& a, int64_t n0, int64_t n1) {
  switch (a.M) {
    case 1: return gemv_avx2<1, 8>(a, n0, n1);  // 8 rows: ~19 GB/s on 2 threads here, 4 rows: ~14
    case 2: return gemv_avx2<2, 4>(a, n0, n1);
    case 3: return gemv_avx2<3, 2>(a, n0, n1);
    case 4: return gemv_avx2<4, 2>(a, n0, n1);
    case 5: return gemv_avx2<5, 1>(a, n0, n1);
    case 6: return gemv_avx2<6, 1>(a, n0, n1);
    case 7: return gemv_avx2<7, 1>(a, n0, n1);
    default: return gemv_avx2<8, 1>(a, n0, n1);
  }
}

namespace {

// Row r of tile t, of T = (n1 - n0) / R tiles over the band [n0, n1): adjacent rows (n0 + t R + r), or, with
// `spread`, R sub-bands read side by side (n0 + r T + t): R sequential streams far apart instead of R rows 2K bytes
// apart (see gemv_kernels.h). Either way the tiles cover [n0, n0 + T R) and the rest is left to the caller.
inline int64_t tile_row(bool spread, int64_t n0, int64_t T, int R, int64_t t, int r) {
  return n0 + (spread ? r * T + t : t * R + r);
}

// M = 1, see gemv_kernels.h. R rows x U blocks of 16: 2*R*U accumulators (even and odd lanes apart).
template <int R, int U, int PF, bool Spread>
__attribute__((target("avx2,fma"))) void gemv1_split(const GemvArgs& a, const float* xs, int64_t n0, int64_t n1) {
  const int64_t K = a.K;
  const int64_t K16 = K & ~int64_t(15);
  const int64_t KU = K16 - K16 % (16 * U);
  const __m256i hi = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  const int64_t T = (n1 - n0) / R;
  for (int64_t t = 0; t < T; ++t) {
    __m256 acc[R][2 * U];
    for (int r = 0; r < R; ++r)
      for (int u = 0; u < 2 * U; ++u) acc[r][u] = _mm256_setzero_ps();
    int64_t rn[R];
    const uint16_t* rows[R];
    for (int r = 0; r < R; ++r) {
      rn[r] = tile_row(Spread, n0, T, R, t, r);
      rows[r] = a.w + rn[r] * K;
    }
    int64_t k = 0;
    for (; k < KU; k += 16 * U) {
      if (PF > 0)
        for (int r = 0; r < R; ++r)
          for (int c = 0; c < (32 * U + 63) / 64; ++c)
            _mm_prefetch(reinterpret_cast<const char*>(rows[r] + k) + PF + 64 * c, _MM_HINT_T0);
      __m256 xe[U], xo[U];
      for (int u = 0; u < U; ++u) {
        xe[u] = _mm256_loadu_ps(xs + k + 16 * u);
        xo[u] = _mm256_loadu_ps(xs + k + 16 * u + 8);
      }
      for (int r = 0; r < R; ++r)
        for (int u = 0; u < U; ++u) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[r] + k + 16 * u));
          const __m256 we = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
          const __m256 wo = _mm256_castsi256_ps(_mm256_and_si256(v, hi));
          acc[r][2 * u] = _mm256_fmadd_ps(we, xe[u], acc[r][2 * u]);
          acc[r][2 * u + 1] = _mm256_fmadd_ps(wo, xo[u], acc[r][2 * u + 1]);
        }
    }
    for (; k < K16; k += 16)  // the blocks of 16 that do not fill an unrolled step
      for (int r = 0; r < R; ++r) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[r] + k));
        acc[r][0] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), _mm256_loadu_ps(xs + k), acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, hi)), _mm256_loadu_ps(xs + k + 8),
                                    acc[r][1]);
      }
    for (int r = 0; r < R; ++r) {
      __m256 s = acc[r][0];
      for (int u = 1; u < 2 * U; ++u) s = _mm256_add_ps(s, acc[r][u]);
      float sum = hsum8(s);
      for (int64_t kk = K16; kk < K; ++kk) sum += bf16_to_f32(rows[r][kk]) * a.x[kk];
      a.y[rn[r]] = sum + (a.bias ? a.bias[rn[r]] : 0.f);
    }
  }
  if (n0 + T * R < n1) gemv1_split<1, U, PF, false>(a, xs, n0 + T * R, n1);
}

template <int R, int U, bool Spread>
void gemv1_pf(const GemvArgs& a, const float* xs, int64_t n0, int64_t n1, int pf) {
  switch (pf) {
    case 0: return gemv1_split<R, U, 0, Spread>(a, xs, n0, n1);
    case 256: return gemv1_split<R, U, 256, Spread>(a, xs, n0, n1);
    case 512: return gemv1_split<R, U, 512, Spread>(a, xs, n0, n1);
    default: return gemv1_split<R, U, 1024, Spread>(a, xs, n0, n1);
  }
}

template <int R, int U>
void gemv1_spread(const GemvArgs& a, const float* xs, int64_t n0, int64_t n1, Gemv1Tuning t) {
  if (t.spread) return gemv1_pf<R, U, true>(a, xs, n0, n1, t.prefetch);
  return gemv1_pf<R, U, false>(a, xs, n0, n1, t.prefetch);
}

template <int R>
void gemv1_unroll(const GemvArgs& a, const float* xs, int64_t n0, int64_t n1, Gemv1Tuning t) {
  switch (t.unroll) {
    case 1: return gemv1_spread<R, 1>(a, xs, n0, n1, t);
    case 2: return gemv1_spread<R, 2>(a, xs, n0, n1, t);
    default: return gemv1_spread<R, 4>(a, xs, n0, n1, t);
  }
}

}  // namespace

bool gemv1_avx2_supports(Gemv1Tuning t) {
  return (t.rows == 1 || t.rows == 2 || t.rows == 4) && (t.unroll == 1 || t.unroll == 2 || t.unroll == 4) &&
         (t.prefetch == 0 || t.prefetch == 256 || t.prefetch == 512 || t.prefetch == 1024);
}

__attribute__((target("avx2,fma"))) void split_x_avx2(const float* x, int64_t K, float* xs) {
  const int64_t K16 = K & ~int64_t(15);
  for (int64_t k = 0; k < K16; k += 16)
    for (int i = 0; i < 8; ++i) {
      xs[k + i] = x[k + 2 * i];
      xs[k + 8 + i] = x[k + 2 * i + 1];
    }
}

void gemv1_avx2(const GemvArgs& a, const float* xs, int64_t n0, int64_t n1, Gemv1Tuning t) {
  switch (t.rows) {
    case 1: return gemv1_unroll<1>(a, xs, n0, n1, t);
    case 2: return gemv1_unroll<2>(a, xs, n0, n1, t);
    default: return gemv1_unroll<4>(a, xs, n0, n1, t);
  }
}

namespace {

// AVX-512 kernels (CPUs with AVX512-BF16; AVX-512 F/BW suffice for the fp32-activation one). K tails use masked
// loads: masked-off lanes read as zero and add nothing.
#define GILL_AVX512 "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma"
// The __m512 helpers below are internal and inlined: the ABI note about passing them without -mavx512f is moot.
#pragma GCC diagnostic ignored "-Wpsabi"

__attribute__((target(GILL_AVX512))) inline __m512 load16_bf16_masked(const uint16_t* p, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// fp32 activations: widen 16 weights to fp32, fma (the fp32-compute policy on an AVX-512 CPU).
template <int M, int R>
__attribute__((target(GILL_AVX512))) inline void f32_step(const GemvArgs& a, const uint16_t* const* rows, int64_t k,
                                                          __mmask16 mask, __m512 (&acc)[M][R]) {
  __m512 wv[R];
  for (int r = 0; r < R; ++r) wv[r] = load16_bf16_masked(rows[r] + k, mask);
  for (int m = 0; m < M; ++m) {
    const __m512 xv = _mm512_maskz_loadu_ps(mask, a.x + m * a.ldx + k);
    for (int r = 0; r < R; ++r) acc[m][r] = _mm512_fmadd_ps(wv[r], xv, acc[m][r]);
  }
}

template <int M, int R>
__attribute__((target(GILL_AVX512))) void gemv_avx512_f32(const GemvArgs& a, int64_t n0, int64_t n1) {
  const int64_t K = a.K;
  const __mmask16 tail = static_cast<__mmask16>((1u << (K & 15)) - 1);
  int64_t n = n0;
  for (; n + R <= n1; n += R) {
    __m512 acc[M][R];
    for (int m = 0; m < M; ++m)
      for (int r = 0; r < R; ++r) acc[m][r] = _mm512_setzero_ps();
    const uint16_t* rows[R];
    for (int r = 0; r < R; ++r) rows[r] = a.w + (n + r) * K;
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) f32_step<M, R>(a, rows, k, static_cast<__mmask16>(0xffff), acc);
    if (k < K) f32_step<M, R>(a, rows, k, tail, acc);
    for (int m = 0; m < M; ++m)
      for (int r = 0; r < R; ++r)
        a.y[m * a.ldy + n + r] = _mm512_reduce_add_ps(acc[m][r]) + (a.bias ? a.bias[n + r] : 0.f);
  }
  if (n < n1) gemv_avx512_f32<M, 1>(a, n, n1);
}

// bf16 activations: vdpbf16ps multiplies 32 bf16 pairs and sums them into 16 fp32 lanes (exact products, fp32
// sums; denormal inputs count as zero).

template <int M, int R>
__attribute__((target(GILL_AVX512))) inline void bf16_step(const GemvArgsBf16& a, const uint16_t* const* rows,
                                                           int64_t k, __mmask32 mask, __m512 (&acc)[M][R]) {
  __m512bh wv[R];
  for (int r = 0; r < R; ++r) wv[r] = (__m512bh)_mm512_maskz_loadu_epi16(mask, rows[r] + k);
  for (int m = 0; m < M; ++m) {
    const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(mask, a.x + m * a.ldx + k);
    for (int r = 0; r < R; ++r) acc[m][r] = _mm512_dpbf16_ps(acc[m][r], wv[r], xv);
  }
}

template <int M, int R>
__attribute__((target(GILL_AVX512))) void gemv_avx512_bf16(const GemvArgsBf16& a, int64_t n0, int64_t n1) {
  const int64_t K = a.K;
  const __mmask32 tail = static_cast<__mmask32>((uint64_t(1) << (K & 31)) - 1);
  int64_t n = n0;
  for (; n + R <= n1; n += R) {
    __m512 acc[M][R];
    for (int m = 0; m < M; ++m)
      for (int r = 0; r < R; ++r) acc[m][r] = _mm512_setzero_ps();
    const uint16_t* rows[R];
    for (int r = 0; r < R; ++r) rows[r] = a.w + (n + r) * K;
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) bf16_step<M, R>(a, rows, k, ~__mmask32(0), acc);
    if (k < K) bf16_step<M, R>(a, rows, k, tail, acc);
    for (int m = 0; m < M; ++m)
      for (int r = 0; r < R; ++r)
        a.y[m * a.ldy + n + r] = _mm512_reduce_add_ps(acc[m][r]) + (a.bias ? a.bias[n + r] : 0.f);
  }
  if (n < n1) gemv_avx512_bf16<M, 1>(a, n, n1);
}

}  // namespace

// One token (M = 1), rows in memory order, one at a time: each thread reads its band of the weight as one
// sequential stream (on a 2-vCPU AMD Zen 5, 50-65 GB/s against 30-35 for tiles of 8 adjacent rows, whose 8 streams
// a row apart the hardware prefetchers follow less well; docs/performance.md, session 12). Each row's loads start
// at a 64-byte boundary: the elements before it (a safetensors file aligns its tensors to 8 bytes at best) go in one
// masked step first, since loads that straddle cache lines cost ~20 % of the bandwidth there. Two accumulators, 64
// weights per step; the K tail as masked loads.

namespace {
// Elements of a bf16 row before its first 64-byte boundary (at most K).
inline int64_t head_to_64(const uint16_t* row, int64_t K) {
  const auto mis = static_cast<int64_t>(reinterpret_cast<uintptr_t>(row) & 63);
  return std::min<int64_t>(K, ((64 - mis) & 63) / 2);
}
inline __mmask32 mask32(int64_t n) { return n >= 32 ? ~__mmask32(0) : static_cast<__mmask32>((uint64_t(1) << n) - 1); }
inline __mmask16 mask16(int64_t n) { return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1); }
}  // namespace

__attribute__((target(GILL_AVX512))) void gemv1_avx512_bf16_rows(const GemvArgsBf16& a, int64_t n0, int64_t n1) {
  const int64_t K = a.K;
  const uint16_t* x = a.x;
  for (int64_t n = n0; n < n1; ++n) {
    const uint16_t* row = a.w + n * K;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t k = head_to_64(row, K);  // 0..31
    if (k > 0) {
      const __mmask32 m = mask32(k);
      acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_maskz_loadu_epi16(m, row), (__m512bh)_mm512_maskz_loadu_epi16(m, x));
    }
    for (; k + 64 <= K; k += 64) {
      acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)_mm512_load_si512(row + k), (__m512bh)_mm512_loadu_si512(x + k));
      acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_load_si512(row + k + 32),
                              (__m512bh)_mm512_loadu_si512(x + k + 32));
    }
    const int64_t rem = K - k;  // 0..63
    if (rem > 0) {
      const __mmask32 m = mask32(rem);
      acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)_mm512_maskz_loadu_epi16(m, row + k),
                              (__m512bh)_mm512_maskz_loadu_epi16(m, x + k));
    }
    if (rem > 32) {
      const __mmask32 m = mask32(rem - 32);
      acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_maskz_loadu_epi16(m, row + k + 32),
                              (__m512bh)_mm512_maskz_loadu_epi16(m, x + k + 32));
    }
    const float b = a.bias ? a.bias[n] : a.bias16 ? bf16_to_f32(a.bias16[n]) : 0.f;
    const float v = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + b;
    if (a.y16)
      a.y16[n] = f32_to_bf16(v);
    else
      a.y[n] = v;
  }
}

// The same for fp32 activations: 2 blocks of 16 weights per step (64 bytes), widened to fp32.
__attribute__((target(GILL_AVX512))) void gemv1_avx512_f32_rows(const GemvArgs& a, int64_t n0, int64_t n1) {
  const int64_t K = a.K;
  const __mmask16 all = static_cast<__mmask16>(0xffff);
  const float* x = a.x;
  for (int64_t n = n0; n < n1; ++n) {
    const uint16_t* row = a.w + n * K;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    const int64_t head = head_to_64(row, K);  // 0..31
    if (head > 0)
      acc0 = _mm512_fmadd_ps(load16_bf16_masked(row, mask16(head)), _mm512_maskz_loadu_ps(mask16(head), x), acc0);
    if (head > 16)
      acc1 = _mm512_fmadd_ps(load16_bf16_masked(row + 16, mask16(head - 16)),
                             _mm512_maskz_loadu_ps(mask16(head - 16), x + 16), acc1);
    int64_t k = head;
    for (; k + 32 <= K; k += 32) {
      acc0 = _mm512_fmadd_ps(load16_bf16_masked(row + k, all), _mm512_loadu_ps(x + k), acc0);
      acc1 = _mm512_fmadd_ps(load16_bf16_masked(row + k + 16, all), _mm512_loadu_ps(x + k + 16), acc1);
    }
    const int64_t rem = K - k;  // 0..31
    if (rem > 0)
      acc0 = _mm512_fmadd_ps(load16_bf16_masked(row + k, mask16(rem)), _mm512_maskz_loadu_ps(mask16(rem), x + k), acc0);
    if (rem > 16)
      acc1 = _mm512_fmadd_ps(load16_bf16_masked(row + k + 16, mask16(rem - 16)),
                             _mm512_maskz_loadu_ps(mask16(rem - 16), x + k + 16), acc1);
    a.y[n] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + (a.bias ? a.bias[n] : 0.f);
  }
}

void gemv_avx512_f32_dispatch(const GemvArgs& a, int64_t n0, int64_t n1) {
  switch (a.M) {
    case 1: return gemv_avx512_f32<1, 8>(a, n0, n1);
    case 2: return gemv_avx512_f32<2, 4>(a, n0, n1);
    case 3: return gemv_avx512_f32<3, 4>(a, n0, n1);
    case 4: return gemv_avx512_f32<4, 4>(a, n0, n1);
    case 5: return gemv_avx512_f32<5, 2>(a, n0, n1);
    case 6: return gemv_avx512_f32<6, 2>(a, n0, n1);
    case 7: return gemv_avx512_f32<7, 2>(a, n0, n1);
    default: return gemv_avx512_f32<8, 2>(a, n0, n1);
  }
}

void gemv_avx512_bf16_dispatch(const GemvArgsBf16& a, int64_t n0, int64_t n1) {
  switch (a.M) {
    case 1: return gemv_avx512_bf16<1, 8>(a, n0, n1);
    case 2: return gemv_avx512_bf16<2, 4>(a, n0, n1);
    case 3: return gemv_avx512_bf16<3, 4>(a, n0, n1);
    case 4: return gemv_avx512_bf16<4, 4>(a, n0, n1);
    case 5: return gemv_avx512_bf16<5, 2>(a, n0, n1);
    case 6: return gemv_avx512_bf16<6, 2>(a, n0, n1);
    case 7: return gemv_avx512_bf16<7, 2>(a, n0, n1);
    default: return gemv_avx512_bf16<8, 2>(a, n0, n1);
  }
}
#endif


}  // namespace gill::kernels::gemv
