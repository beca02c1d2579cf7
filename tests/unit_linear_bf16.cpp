// bf16-weight linear kernels: every path equals an fp32 linear on the widened weights.
#include "kernels/linear_bf16.h"
#include "kernels/gemv_kernels.h"
#include "test_support.h"
#include "util/error.h"
#include "util/threads.h"

using namespace gill;
using gill::test::tensors_close;
using kernels::Bf16LinearPath;

namespace {

void check(int64_t m, int64_t n, int64_t k, Bf16LinearPath path, bool bias) {
  torch::manual_seed(m * 1000 + n + k);
  auto w = torch::randn({n, k}).to(torch::kBFloat16);
  auto x = torch::randn({m, k});
  auto b = bias ? torch::randn({n}) : torch::Tensor();
  auto want = torch::nn::functional::linear(x, w.to(torch::kFloat32), b);
  auto got = kernels::linear_bf16_weight(x, w, b, path);
  EXPECT_TRUE(tensors_close(got, want, 1e-5, 1e-4,
                            "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
                                " path=" + std::to_string(static_cast<int>(path))));
}

}  // namespace

TEST(LinearBf16, AllPathsMatchFp32Linear) {
  for (auto path : {Bf16LinearPath::kAuto, Bf16LinearPath::kGemv, Bf16LinearPath::kBlockedGemm,
                    Bf16LinearPath::kScalar})
    for (int64_t m : {1, 2, 3, 4, 5, 8, 9, 17})
      for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {7, 13}, {64, 64}, {130, 264}, {33, 1000}})
        check(m, n, k, path, m % 2 == 1);
}

TEST(LinearBf16, BatchedInputShapeAndBlocking) {
  auto w = torch::randn({3000, 1024}).to(torch::kBFloat16);  // more than one 2M-element block
  auto x = torch::randn({2, 10, 1024});
  auto got = kernels::linear_bf16_weight(x, w, {});
  EXPECT_EQ(got.sizes(), (std::vector<int64_t>{2, 10, 3000}));
  EXPECT_TRUE(tensors_close(got, torch::matmul(x, w.to(torch::kFloat32).t()), 1e-5, 1e-4, "blocked"));
}

// The block size benchmarks can set (gill-bench gemm): any size, including blocks of fewer rows than 8 (the floor)
// and a last block of fewer rows, gives the same product; 0 restores the default.
TEST(LinearBf16, EveryBlockSizeMatchesMatmul) {
  const int64_t def = kernels::blocked_gemm_block_elems();
  torch::manual_seed(11);
  auto w = torch::randn({203, 96}).to(torch::kBFloat16);
  auto x = torch::randn({12, 96});
  auto b = torch::randn({203});
  const auto want = torch::nn::functional::linear(x, w.to(torch::kFloat32), b);
  for (int64_t elems : {int64_t(1), int64_t(96 * 9 + 5), int64_t(96 * 50), int64_t(1) << 20}) {
    kernels::set_blocked_gemm_block_elems(elems);
    EXPECT_EQ(kernels::blocked_gemm_block_elems(), elems);
    auto got = kernels::linear_bf16_weight(x, w, b, Bf16LinearPath::kBlockedGemm);
    EXPECT_TRUE(tensors_close(got, want, 1e-5, 1e-4, "block elems " + std::to_string(elems)));
  }
  kernels::set_blocked_gemm_block_elems(0);
  EXPECT_EQ(kernels::blocked_gemm_block_elems(), def);
}

TEST(LinearBf16, BadInputs) {
  auto w = torch::zeros({4, 8}, torch::kBFloat16);
  auto msg = [&](const torch::Tensor& x, const torch::Tensor& ww) {
    try {
      kernels::linear_bf16_weight(x, ww, {});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(msg(torch::zeros({2, 7}), w), "linear_bf16_weight: input [2, 7] does not match weight [4, 8]");
  EXPECT_EQ(msg(torch::zeros({2, 8}, torch::kHalf), w), "linear_bf16_weight: input must be fp32 or bf16, got CPUHalfType");
}

namespace {

// The GEMV kernels this CPU can run (the others are reported as skipped by the tests that need them).
std::vector<kernels::GemvKernel> runnable_kernels() {
  std::vector<kernels::GemvKernel> out;
  for (auto k : {kernels::GemvKernel::kAvx512Bf16, kernels::GemvKernel::kAvx2, kernels::GemvKernel::kScalar})
    if (util::can_run(util::cpu_features(), k)) out.push_back(k);
  return out;
}

}  // namespace

// Every kernel the CPU runs, fp32 activations: an fp32 linear on the widened weights, ragged K and N tails included.
TEST(LinearBf16, EveryGemvKernelMatchesFp32Linear) {
  for (auto kern : runnable_kernels()) {
    for (int64_t m : {1, 2, 3, 5, 8})
      for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {9, 15}, {17, 31}, {70, 33}, {130, 1000}}) {
        torch::manual_seed(m * 7 + n * 3 + k);
        auto w = torch::randn({n, k}).to(torch::kBFloat16);
        auto x = torch::randn({m, k});
        auto b = m % 2 ? torch::randn({n}) : torch::Tensor();
        auto want = torch::nn::functional::linear(x, w.to(torch::kFloat32), b);
        auto got = kernels::linear_bf16_weight(x, w, b, Bf16LinearPath::kGemv, kern);
        EXPECT_TRUE(tensors_close(got, want, 1e-5, 1e-4,
                                  std::string(util::gemv_kernel_name(kern)) + " m=" + std::to_string(m) +
                                      " n=" + std::to_string(n) + " k=" + std::to_string(k)));
      }
  }
}

// OPT-like rows (K = 4096) and long rows with a K tail (K = 20001) on every kernel, split over the threads as the
// engine splits them: every row computed once, against fp64 sums. Bound: 1e-6 of sum |x||w| (fp32 sums in another
// order; a row left out or done twice is off by far more).
TEST(LinearBf16, LongRowsEveryRowOnEveryKernel) {
  for (auto kern : runnable_kernels())
    for (int64_t m : {1, 3, 8})
      for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{300, 4096}, {37, 20001}}) {
        torch::manual_seed(m + n + k);
        auto w = torch::randn({n, k}).to(torch::kBFloat16);
        auto x = torch::randn({m, k});
        auto b = torch::randn({n});
        auto want = torch::nn::functional::linear(x.to(torch::kDouble), w.to(torch::kDouble), b.to(torch::kDouble));
        auto mag = torch::nn::functional::linear(x.to(torch::kDouble).abs(), w.to(torch::kDouble).abs(),
                                                 b.to(torch::kDouble).abs());
        auto got = kernels::linear_bf16_weight(x, w, b, Bf16LinearPath::kGemv, kern);
        auto err = (got.to(torch::kDouble) - want).abs();
        EXPECT_TRUE((err <= mag * 1e-6).all().item<bool>())
            << util::gemv_kernel_name(kern) << " m=" << m << " n=" << n << " k=" << k << " max err "
            << err.max().item<double>() << " bound " << (mag * 1e-6).min().item<double>();
      }
}

// bf16 activations (the bf16 compute policy): the exact products of the bf16 operands summed in fp32, rounded to bf16
// once. Reference: the same sums in fp64, rounded to bf16; bound: one bf16 rounding (2^-8 relative) plus fp32
// summation error.
TEST(LinearBf16, Bf16ActivationsEveryKernelAndGemm) {
  for (auto kern : runnable_kernels()) {
    for (auto path : {Bf16LinearPath::kGemv, Bf16LinearPath::kBlockedGemm})
      for (int64_t m : {1, 4, 8, 11})
        for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{3, 7}, {33, 64}, {65, 95}, {128, 1024}, {300, 4096}}) {
          torch::manual_seed(m * 11 + n + k);
          auto w = torch::randn({n, k}).to(torch::kBFloat16);
          auto x = torch::randn({m, k}).to(torch::kBFloat16);
          auto b = torch::randn({n}).to(torch::kBFloat16);
          auto want = torch::nn::functional::linear(x.to(torch::kDouble), w.to(torch::kDouble), b.to(torch::kDouble));
          auto got = kernels::linear_bf16_weight(x, w, b, path, kern);
          ASSERT_EQ(got.scalar_type(), torch::kBFloat16);
          const std::string what = std::string(util::gemv_kernel_name(kern)) + " path " +
                                   std::to_string(static_cast<int>(path)) + " m=" + std::to_string(m) +
                                   " n=" + std::to_string(n) + " k=" + std::to_string(k);
          // |got - want| <= 2^-8 |want| (the final rounding) + 1e-5 * sum |x||w| (fp32 sums)
          auto mag = torch::nn::functional::linear(x.to(torch::kDouble).abs(), w.to(torch::kDouble).abs(),
                                                   b.to(torch::kDouble).abs());
          auto err = (got.to(torch::kDouble) - want).abs();
          auto bound = want.abs() * std::ldexp(1.0, -8) + mag * 1e-5;
          EXPECT_TRUE((err <= bound).all().item<bool>()) << what << " max err " << err.max().item<double>();
        }
  }
}

TEST(LinearBf16, Avx512Bf16KernelNeedsTheCpu) {
  if (util::can_run(util::cpu_features(), kernels::GemvKernel::kAvx512Bf16))
    GTEST_SKIP() << "this CPU has AVX512-BF16 (" << util::cpu_features().describe() << ")";
  auto w = torch::zeros({4, 8}, torch::kBFloat16);
  try {
    kernels::linear_bf16_weight(torch::zeros({1, 8}), w, {}, Bf16LinearPath::kGemv, kernels::GemvKernel::kAvx512Bf16);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "linear_bf16_weight: this CPU cannot run the avx512_bf16 GEMV kernel");
  }
}

#ifdef GILL_GEMV_X86
// The one-token row-order AVX2 kernel at every tuning gill-bench sweeps: a plain fp32 matmul on the widened weights,
// with N not a multiple of the tile and K tails below 16 and below one unrolled step, rows adjacent and spread, each
// call over two bands as the threads split them (y starts as NaN: a row left out fails).
TEST(LinearBf16, RowOrderAvx2KernelEveryTuningMatchesMatmul) {
  if (!util::can_run(util::cpu_features(), kernels::GemvKernel::kAvx2))
    GTEST_SKIP() << "this CPU has no AVX2/FMA (" << util::cpu_features().describe() << ")";
  for (int rows : {1, 2, 4})
    for (int unroll : {1, 2, 4})
      for (int pf : {0, 256, 512, 1024})
      for (bool spread : {false, true}) {
        const kernels::gemv::Gemv1Tuning t{rows, unroll, pf, spread};
        ASSERT_TRUE(kernels::gemv::gemv1_avx2_supports(t));
        for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {5, 15}, {7, 16}, {9, 33}, {13, 80}, {70, 1000}}) {
          torch::manual_seed(rows * 100 + unroll * 10 + n + k);
          auto w = torch::randn({n, k}).to(torch::kBFloat16);
          auto x = torch::randn({k});
          auto b = torch::randn({n});
          std::vector<float> xs(static_cast<size_t>(k));
          kernels::gemv::split_x_avx2(x.data_ptr<float>(), k, xs.data());
          auto y = torch::full({n}, std::nanf(""));
          kernels::gemv::GemvArgs a{x.data_ptr<float>(), k, 1, reinterpret_cast<const uint16_t*>(w.data_ptr()), k,
                                    y.data_ptr<float>(), n, b.data_ptr<float>()};
          kernels::gemv::gemv1_avx2(a, xs.data(), 0, n / 3, t);
          kernels::gemv::gemv1_avx2(a, xs.data(), n / 3, n, t);
          auto want = torch::matmul(w.to(torch::kFloat32), x) + b;
          EXPECT_TRUE(tensors_close(y, want, 1e-5, 1e-4,
                                    "rows=" + std::to_string(rows) + " unroll=" + std::to_string(unroll) +
                                        " prefetch=" + std::to_string(pf) + " spread=" + std::to_string(spread) +
                                        " n=" + std::to_string(n) +
                                        " k=" + std::to_string(k)));
        }
      }
  EXPECT_FALSE(kernels::gemv::gemv1_avx2_supports({3, 2, 0, false}));
}
#endif

#ifdef GILL_GEMV_X86
// The one-token AVX-512 kernels, rows in memory order (fp32 and bf16 activations): every K tail around their steps
// (16/32 for fp32 activations, 32/64 for bf16), N not a multiple of anything, and weights starting 0-31 elements
// past a 64-byte boundary (each row's loads are aligned first: the head), each call over two bands as the threads
// split them (y starts as NaN: a row left out fails). fp32 activations: an fp32 matmul on the widened weights;
// bf16: fp64 sums of the exact products, bound 1e-6 of sum |x||w| (fp32 sums in another order).
TEST(LinearBf16, RowOrderAvx512KernelsEveryTailMatchesMatmul) {
  if (!util::can_run(util::cpu_features(), kernels::GemvKernel::kAvx512Bf16))
    GTEST_SKIP() << "this CPU has no AVX512-BF16 (" << util::cpu_features().describe() << ")";
  for (int64_t k : {1, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 95, 96, 97, 1000, 4096})
    for (int64_t n : {1, 7, 70})
      for (int64_t offset : {0, 1, 13, 31}) {
        torch::manual_seed(n * 1000 + k + offset);
        auto w = torch::randn({n, k}).to(torch::kBFloat16);
        auto buf = torch::empty({n * k + 32}, torch::kBFloat16);  // 64-byte aligned (libtorch's CPU allocator)
        buf.narrow(0, offset, n * k).copy_(w.flatten());
        auto b = torch::randn({n});
        const auto* wp = reinterpret_cast<const uint16_t*>(buf.data_ptr()) + offset;
        const std::string what = "n=" + std::to_string(n) + " k=" + std::to_string(k) + " offset=" + std::to_string(offset);
        {
          auto x = torch::randn({k});
          auto y = torch::full({n}, std::nanf(""));
          kernels::gemv::GemvArgs a{x.data_ptr<float>(), k, 1, wp, k, y.data_ptr<float>(), n, b.data_ptr<float>()};
          kernels::gemv::gemv1_avx512_f32_rows(a, 0, n / 3);
          kernels::gemv::gemv1_avx512_f32_rows(a, n / 3, n);
          EXPECT_TRUE(tensors_close(y, torch::matmul(w.to(torch::kFloat32), x) + b, 1e-5, 1e-4, "fp32 x " + what));
        }
        {
          auto x = torch::randn({k}).to(torch::kBFloat16);
          auto y = torch::full({n}, std::nanf(""));
          kernels::gemv::GemvArgsBf16 a{reinterpret_cast<const uint16_t*>(x.data_ptr()), k, 1, wp, k,
                                        y.data_ptr<float>(), n, b.data_ptr<float>()};
          kernels::gemv::gemv1_avx512_bf16_rows(a, 0, n / 3);
          kernels::gemv::gemv1_avx512_bf16_rows(a, n / 3, n);
          auto want = torch::matmul(w.to(torch::kDouble), x.to(torch::kDouble)) + b.to(torch::kDouble);
          auto mag =
              torch::matmul(w.to(torch::kDouble).abs(), x.to(torch::kDouble).abs()) + b.to(torch::kDouble).abs();
          auto err = (y.to(torch::kDouble) - want).abs();
          EXPECT_TRUE((err <= mag * 1e-6).all().item<bool>())
              << "bf16 x " << what << " max err " << err.max().item<double>();
        }
      }
}
#endif

// One token through linear_bf16_weight with the row-order kernels (the default) and with the 8-row tiles
// (use_row_order_gemv(false), what gill-bench times beside them): the same products on every kernel, both dtypes.
TEST(LinearBf16, OneTokenRowOrderAndTilesAgree) {
  for (auto kern : runnable_kernels())
    for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
      torch::manual_seed(5);
      auto w = torch::randn({203, 1000}).to(torch::kBFloat16);
      auto x = torch::randn({1, 1000}).to(dt);
      auto b = torch::randn({203});
      auto rows = kernels::linear_bf16_weight(x, w, b, Bf16LinearPath::kGemv, kern);
      kernels::use_row_order_gemv(false);
      auto tiles = kernels::linear_bf16_weight(x, w, b, Bf16LinearPath::kGemv, kern);
      kernels::use_row_order_gemv(true);
      auto want = torch::nn::functional::linear(x.to(torch::kFloat32), w.to(torch::kFloat32), b);
      const std::string what = std::string(util::gemv_kernel_name(kern)) + (dt == torch::kFloat32 ? " fp32" : " bf16");
      const double rtol = dt == torch::kFloat32 ? 1e-5 : std::ldexp(1.0, -8);  // bf16 x: one bf16 rounding of y
      EXPECT_TRUE(tensors_close(rows.to(torch::kFloat32), want, rtol, 1e-4, "row order " + what));
      EXPECT_TRUE(tensors_close(tiles.to(torch::kFloat32), want, rtol, 1e-4, "tiles " + what));
    }
}

// gill's own parallel loops (the GEMV kernels') run on the threads libtorch is given, not on the calling thread
// alone: at::parallel_for is inline, so this depends on gill's own code being built with OpenMP (CMakeLists.txt).
// And splitting the rows over threads does not change a result: one thread and two give the same bits.
TEST(LinearBf16, KernelsRunOnEveryThreadSameBits) {
  const int saved = torch::get_num_threads();
  torch::set_num_threads(2);
  if (built_with_openmp()) {
    EXPECT_EQ(parallel_loop_threads(), 2);
  }
  torch::manual_seed(9);
  auto w = torch::randn({4099, 512}).to(torch::kBFloat16);
  for (auto kern : runnable_kernels())
    for (int64_t m : {1, 3})
      for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
        auto x = torch::randn({m, 512}).to(dt);
        torch::set_num_threads(2);
        auto two = kernels::linear_bf16_weight(x, w, {}, Bf16LinearPath::kGemv, kern);
        torch::set_num_threads(1);
        auto one = kernels::linear_bf16_weight(x, w, {}, Bf16LinearPath::kGemv, kern);
        EXPECT_TRUE(torch::equal(one, two)) << util::gemv_kernel_name(kern) << " m=" << m;
      }
  torch::set_num_threads(saved);
  if (!built_with_openmp())
    GTEST_SKIP() << "built without OpenMP (a clang build): gill's own loops run on the calling thread, so only the "
                    "same-bits half of this test ran";
}

#ifdef GILL_GEMV_X86
// One bf16 token on the AVX512-BF16 row-order kernel writes bf16 output and reads a bf16 bias itself: the same bits
// as the kernel's fp32 output (fp32 bias) rounded by Tensor::to, with and without a bias, fp32 bias too.
TEST(LinearBf16, OneBf16TokenRoundsAsTensorTo) {
  if (!util::can_run(util::cpu_features(), kernels::GemvKernel::kAvx512Bf16))
    GTEST_SKIP() << "this CPU has no AVX512-BF16 (" << util::cpu_features().describe() << ")";
  for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{1, 5}, {77, 96}, {300, 4096}}) {
    torch::manual_seed(n + k);
    auto w = torch::randn({n, k}).to(torch::kBFloat16);
    auto x = torch::randn({1, k}).to(torch::kBFloat16);
    auto b16 = torch::randn({n}).to(torch::kBFloat16);
    for (int bias = 0; bias < 3; ++bias) {  // none, bf16, fp32
      torch::Tensor b = bias == 0 ? torch::Tensor() : bias == 1 ? b16 : b16.to(torch::kFloat32);
      auto got = kernels::linear_bf16_weight(x, w, b);
      auto y = torch::full({n}, std::nanf(""));
      auto bf = b16.to(torch::kFloat32);
      kernels::gemv::GemvArgsBf16 a{reinterpret_cast<const uint16_t*>(x.data_ptr()), k, 1,
                                    reinterpret_cast<const uint16_t*>(w.data_ptr()), k, y.data_ptr<float>(), n,
                                    bias ? bf.data_ptr<float>() : nullptr};
      kernels::gemv::gemv1_avx512_bf16_rows(a, 0, n);
      ASSERT_EQ(got.scalar_type(), torch::kBFloat16);
      EXPECT_TRUE(torch::equal(got.view({n}), y.to(torch::kBFloat16))) << "n=" << n << " k=" << k << " bias " << bias;
    }
  }
}
#endif
