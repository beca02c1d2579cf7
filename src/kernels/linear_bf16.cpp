// bf16-weight / fp32-activation linear layers (see linear_bf16.h). The AVX2 functions carry a target attribute
// instead of file-wide -mavx2 flags, so the rest of the library stays portable and the runtime check decides.
#include "kernels/linear_bf16.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <vector>

#include "kernels/gemv_kernels.h"

#include "util/cpu.h"
#include "util/error.h"

namespace gill::kernels {

namespace {

using namespace gemv;

// Won end to end on an AVX2 EPYC (docs/performance.md, session 9) and on an AVX512-BF16 Zen 5 (session 12).
std::atomic<bool> g_row_order{true};

void run_gemv(const float* x, int64_t M, const uint16_t* w, int64_t N, int64_t K, const float* bias, float* y,
              GemvKernel kernel) {
#ifdef GILL_GEMV_X86
  const bool row_order = M == 1 && g_row_order.load(std::memory_order_relaxed);
  if (row_order && kernel == GemvKernel::kAvx512Bf16 && K <= kGemv1Avx512F32RowsMaxK) {  // one stream per thread
    GemvArgs a{x, K, 1, w, K, y, N, bias};
    at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) { gemv1_avx512_f32_rows(a, begin, end); });
    return;
  }
  if (row_order && kernel == GemvKernel::kAvx2) {
    // One token: the rows in memory order, one sequential stream per thread (see gemv_kernels.h).
    thread_local std::vector<float> xs_buf;  // the caller's; the workers get the pointer
    xs_buf.resize(static_cast<size_t>(K));
    const float* xs = xs_buf.data();
    split_x_avx2(x, K, xs_buf.data());
    GemvArgs a{x, K, 1, w, K, y, N, bias};
    const Gemv1Tuning t = gemv1_avx2_tuning(K);
    at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) { gemv1_avx2(a, xs, begin, end, t); });
    return;
  }
#endif
  for (int64_t m0 = 0; m0 < M; m0 += kGemvMaxRows) {
    GemvArgs a{x + m0 * K, K, std::min<int64_t>(kGemvMaxRows, M - m0), w, K, y + m0 * N, N, bias};
    // Each thread takes a contiguous band of weight rows: one pass over the weight per 8 tokens.
    at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) {
#ifdef GILL_GEMV_X86
      if (kernel == GemvKernel::kAvx512Bf16) return gemv_avx512_f32_dispatch(a, begin, end);
      if (kernel == GemvKernel::kAvx2) return gemv_avx2_dispatch(a, begin, end);
#endif
      gemv_scalar(a, begin, end);
    });
  }
}

#ifdef GILL_GEMV_X86
// The 8-row tiles, M tokens at a time (one token in row order is linear_bf16_weight's own path, bf16 out).
void run_gemv_bf16x(const uint16_t* x, int64_t M, const uint16_t* w, int64_t N, int64_t K, const float* bias,
                    float* y) {
  for (int64_t m0 = 0; m0 < M; m0 += kGemvMaxRows) {
    GemvArgsBf16 a{x + m0 * K, K, std::min<int64_t>(kGemvMaxRows, M - m0), w, K, y + m0 * N, N, bias};
    at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) { gemv_avx512_bf16_dispatch(a, begin, end); });
  }
}
#endif

void widen(const uint16_t* src, float* dst, int64_t n) {
  at::parallel_for(0, n, int64_t(1) << 16, [&](int64_t begin, int64_t end) {
#ifdef GILL_GEMV_X86
    if (util::can_run(util::cpu_features(), GemvKernel::kAvx2))
      return widen_avx2(src + begin, dst + begin, end - begin);
#endif
    widen_scalar(src + begin, dst + begin, end - begin);
  });
}

// Widen kBlockElems weights at a time (8 MiB of fp32: stays in L3 between the widening and the GEMM).
constexpr int64_t kBlockElems = int64_t(2) << 20;
std::atomic<int64_t> g_block_elems{0};  // 0: kBlockElems

void run_blocked_gemm(const torch::Tensor& x2, const uint16_t* w, int64_t N, int64_t K, torch::Tensor& y) {
  int64_t block_rows = std::max<int64_t>(8, blocked_gemm_block_elems() / std::max<int64_t>(K, 1));
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

void set_blocked_gemm_block_elems(int64_t elems) { g_block_elems.store(std::max<int64_t>(0, elems)); }
int64_t blocked_gemm_block_elems() {
  const int64_t e = g_block_elems.load(std::memory_order_relaxed);
  return e > 0 ? e : kBlockElems;
}

void use_row_order_gemv(bool on) { g_row_order.store(on, std::memory_order_relaxed); }

GemvKernel default_gemv_kernel() {
#ifdef GILL_GEMV_X86
  static const GemvKernel k = util::best_gemv_kernel(util::cpu_features());
  return k;
#else
  return GemvKernel::kScalar;
#endif
}

torch::Tensor linear_bf16_weight(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                                 Bf16LinearPath path, GemvKernel kernel) {
  using detail::str_cat;
  GILL_CHECK(w.dim() == 2 && w.scalar_type() == torch::kBFloat16, ErrorCode::kInvalidArgument,
             "linear_bf16_weight: weight must be a 2-D bf16 tensor, got ", w.toString(), " ",
             detail::shape_str(w.sizes().vec()));
  const bool bf16x = x.scalar_type() == torch::kBFloat16;
  GILL_CHECK(x.scalar_type() == torch::kFloat32 || bf16x, ErrorCode::kInvalidArgument,
             "linear_bf16_weight: input must be fp32 or bf16, got ", x.toString());
  const int64_t N = w.size(0), K = w.size(1);
  GILL_CHECK(x.dim() >= 1 && x.size(-1) == K, ErrorCode::kInvalidArgument, "linear_bf16_weight: input ",
             detail::shape_str(x.sizes().vec()), " does not match weight ", detail::shape_str(w.sizes().vec()));
  GILL_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == N &&
                              (b.scalar_type() == torch::kFloat32 || b.scalar_type() == torch::kBFloat16)),
             ErrorCode::kInvalidArgument, "linear_bf16_weight: bias must be fp32 or bf16 [", N, "]");
#ifndef GILL_GEMV_X86
  if (kernel != GemvKernel::kScalar) kernel = GemvKernel::kScalar;
#endif
  GILL_CHECK(util::can_run(util::cpu_features(), kernel), ErrorCode::kInvalidArgument,
             "linear_bf16_weight: this CPU cannot run the ", util::gemv_kernel_name(kernel), " GEMV kernel");
  if (!x.device().is_cpu() || !w.device().is_cpu())  // accelerators: their own kernels
    return torch::nn::functional::linear(x, w.to(x.scalar_type()), b.defined() ? b.to(x.scalar_type()) : b);

  auto out_shape = x.sizes().vec();
  out_shape.back() = N;
  auto x2 = x.reshape({-1, K}).contiguous();  // [M, K]
  const int64_t M = x2.size(0);
  if (path == Bf16LinearPath::kAuto) path = M <= kGemvMaxRows ? Bf16LinearPath::kGemv : Bf16LinearPath::kBlockedGemm;
  if (path == Bf16LinearPath::kScalar) kernel = GemvKernel::kScalar;
#ifdef GILL_GEMV_X86
  // One bf16 token on the AVX512-BF16 row-order kernel (decode under the bf16 policy, ~190 calls a token at
  // OPT-6.7B): the kernel reads a bf16 bias and writes the rounded bf16 output itself, so no conversion ops run
  // around it (the same bits as the fp32 output rounded by Tensor::to).
  if (bf16x && M == 1 && path == Bf16LinearPath::kGemv && kernel == GemvKernel::kAvx512Bf16 &&
      g_row_order.load(std::memory_order_relaxed)) {
    auto y16 = torch::empty({1, N}, torch::kBFloat16);
    auto wc = w.contiguous();
    auto bc = b.defined() ? b.contiguous() : b;
    GemvArgsBf16 a{reinterpret_cast<const uint16_t*>(x2.data_ptr<at::BFloat16>()), K, 1,
                   reinterpret_cast<const uint16_t*>(wc.data_ptr<at::BFloat16>()), K, nullptr, N, nullptr};
    if (bc.defined() && bc.scalar_type() == torch::kBFloat16)
      a.bias16 = reinterpret_cast<const uint16_t*>(bc.data_ptr<at::BFloat16>());
    else if (bc.defined())
      a.bias = bc.data_ptr<float>();
    a.y16 = reinterpret_cast<uint16_t*>(y16.data_ptr<at::BFloat16>());
    at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) { gemv1_avx512_bf16_rows(a, begin, end); });
    return y16.view(out_shape);
  }
#endif
  if (bf16x && path == Bf16LinearPath::kBlockedGemm)  // many rows in bf16: oneDNN's bf16 GEMM
    return torch::nn::functional::linear(x2, w, b.defined() ? b.to(torch::kBFloat16) : b).view(out_shape);

  auto y = torch::empty({M, N}, torch::kFloat32);  // [M, N]
  if (M == 0 || N == 0) return y.to(x.scalar_type()).view(out_shape);
  auto wc = w.contiguous();
  auto bc = b.defined() ? b.to(torch::kFloat32).contiguous() : b;
  const auto* wp = reinterpret_cast<const uint16_t*>(wc.data_ptr<at::BFloat16>());
  const float* bp = bc.defined() ? bc.data_ptr<float>() : nullptr;

  if (path == Bf16LinearPath::kBlockedGemm) {
    run_blocked_gemm(x2, wp, N, K, y);
    if (bc.defined()) y.add_(bc);
    return y.view(out_shape);
  }
#ifdef GILL_GEMV_X86
  if (bf16x && kernel == GemvKernel::kAvx512Bf16) {
    run_gemv_bf16x(reinterpret_cast<const uint16_t*>(x2.data_ptr<at::BFloat16>()), M, wp, N, K, bp,
                   y.data_ptr<float>());
    return y.to(torch::kBFloat16).view(out_shape);
  }
#endif
  // bf16 activations on the fp32 kernels: widening them is exact, so the sums are the same products.
  auto xf = bf16x ? x2.to(torch::kFloat32) : x2;
  run_gemv(xf.data_ptr<float>(), M, wp, N, K, bp, y.data_ptr<float>(), kernel);
  return bf16x ? y.to(torch::kBFloat16).view(out_shape) : y.view(out_shape);
}

}  // namespace gill::kernels
