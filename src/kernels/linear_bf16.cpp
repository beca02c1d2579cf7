// bf16-weight / fp32-activation linear layers (see linear_bf16.h). The AVX2 functions carry a target attribute
// instead of file-wide -mavx2 flags, so the rest of the library stays portable and the runtime check decides.
#include "kernels/linear_bf16.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cstring>

#include "util/error.h"

namespace gill::kernels {

namespace {

inline float bf16_to_f32(uint16_t v) {
  const uint32_t u = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// The arguments every gemv kernel takes: y[m, n] = sum_k x[m, k] w[n, k] + bias[n] for n in [n0, n1), m < M.
struct GemvArgs {
  const float* x;
  int64_t ldx;
  int64_t M;
  const uint16_t* w;
  int64_t K;
  float* y;
  int64_t ldy;
  const float* bias;  // may be null
};

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

#if defined(__x86_64__) || defined(__i386__)
#define GILL_HAVE_X86_KERNELS 1

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
#endif

void run_gemv(const float* x, int64_t M, const uint16_t* w, int64_t N, int64_t K, const float* bias, float* y,
              bool scalar) {
#ifndef GILL_HAVE_X86_KERNELS
  scalar = true;
#endif
  for (int64_t m0 = 0; m0 < M; m0 += kGemvMaxRows) {
    GemvArgs a{x + m0 * K, K, std::min<int64_t>(kGemvMaxRows, M - m0), w, K, y + m0 * N, N, bias};
    // Each thread takes a contiguous band of weight rows: one pass over the weight per 8 tokens.
    at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) {
#ifdef GILL_HAVE_X86_KERNELS
      if (!scalar) return gemv_avx2_dispatch(a, begin, end);
#endif
      gemv_scalar(a, begin, end);
    });
  }
}

void widen(const uint16_t* src, float* dst, int64_t n) {
  at::parallel_for(0, n, int64_t(1) << 16, [&](int64_t begin, int64_t end) {
#ifdef GILL_HAVE_X86_KERNELS
    if (cpu_has_avx2_fma()) return widen_avx2(src + begin, dst + begin, end - begin);
#endif
    widen_scalar(src + begin, dst + begin, end - begin);
  });
}

// Widen kBlockElems weights at a time (8 MiB of fp32: stays in L3 between the widening and the GEMM).
constexpr int64_t kBlockElems = int64_t(2) << 20;

void run_blocked_gemm(const torch::Tensor& x2, const uint16_t* w, int64_t N, int64_t K, torch::Tensor& y) {
  int64_t block_rows = std::max<int64_t>(8, kBlockElems / std::max<int64_t>(K, 1));
  block_rows = std::min(block_rows, N);
  auto buf = torch::empty({block_rows, K}, torch::kFloat32);
  for (int64_t n0 = 0; n0 < N; n0 += block_rows) {
    const int64_t c = std::min(block_rows, N - n0);
    widen(w + n0 * K, buf.data_ptr<float>(), c * K);
    auto out = y.narrow(1, n0, c);                        // [M, c] strided view into y
    at::mm_out(out, x2, buf.narrow(0, 0, c).t());         // fp32 GEMM (OpenBLAS)
  }
}

}  // namespace

bool cpu_has_avx2_fma() {
#ifdef GILL_HAVE_X86_KERNELS
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
#else
  return false;
#endif
}

torch::Tensor linear_bf16_weight(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                                 Bf16LinearPath path) {
  using detail::str_cat;
  GILL_CHECK(w.dim() == 2 && w.scalar_type() == torch::kBFloat16, ErrorCode::kInvalidArgument,
             "linear_bf16_weight: weight must be a 2-D bf16 tensor, got ", w.toString(), " ",
             detail::shape_str(w.sizes().vec()));
  GILL_CHECK(x.scalar_type() == torch::kFloat32, ErrorCode::kInvalidArgument,
             "linear_bf16_weight: input must be fp32, got ", x.toString());
  const int64_t N = w.size(0), K = w.size(1);
  GILL_CHECK(x.dim() >= 1 && x.size(-1) == K, ErrorCode::kInvalidArgument, "linear_bf16_weight: input ",
             detail::shape_str(x.sizes().vec()), " does not match weight ", detail::shape_str(w.sizes().vec()));
  GILL_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == N && b.scalar_type() == torch::kFloat32),
             ErrorCode::kInvalidArgument, "linear_bf16_weight: bias must be fp32 [", N, "]");
  if (!x.device().is_cpu() || !w.device().is_cpu())  // accelerators: their own kernels
    return torch::nn::functional::linear(x, w.to(x.scalar_type()), b);

  auto out_shape = x.sizes().vec();
  out_shape.back() = N;
  auto x2 = x.reshape({-1, K}).contiguous();  // [M, K]
  const int64_t M = x2.size(0);
  auto y = torch::empty({M, N}, torch::kFloat32);  // [M, N]
  if (M == 0 || N == 0) return y.view(out_shape);
  auto wc = w.contiguous();
  auto bc = b.defined() ? b.contiguous() : b;
  const auto* wp = reinterpret_cast<const uint16_t*>(wc.data_ptr<at::BFloat16>());
  const float* bp = bc.defined() ? bc.data_ptr<float>() : nullptr;

  if (path == Bf16LinearPath::kAuto) path = M <= kGemvMaxRows ? Bf16LinearPath::kGemv : Bf16LinearPath::kBlockedGemm;
  if (path == Bf16LinearPath::kGemv && !cpu_has_avx2_fma()) path = Bf16LinearPath::kScalar;
  switch (path) {
    case Bf16LinearPath::kGemv:
    case Bf16LinearPath::kScalar:
      run_gemv(x2.data_ptr<float>(), M, wp, N, K, bp, y.data_ptr<float>(), path == Bf16LinearPath::kScalar);
      break;
    default:
      run_blocked_gemm(x2, wp, N, K, y);
      if (bc.defined()) y.add_(bc);
      break;
  }
  return y.view(out_shape);
}

}  // namespace gill::kernels
