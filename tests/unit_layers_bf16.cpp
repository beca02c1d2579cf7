// The bf16 GEMM contract of models::ops (layers.h bf16_gemm_in_fp32): bf16 inputs, fp32 accumulation, one rounding
// to bf16, on every CPU. libtorch 1.13's own bf16 matmul/bmm/conv accumulate in bf16 on CPUs without AVX-512
// (8-12% max error at K = 1024-4096 there); oneDNN's (AVX-512 CPUs) accumulate in fp32.
#include "models/layers.h"
#include "test_support.h"
#include "util/cpu.h"

using namespace gill;

namespace {

// Max |got - ref| over max |ref|, ref = the fp32 result of the same bf16 operands.
double rel_err(const torch::Tensor& got, const torch::Tensor& ref) {
  return (got.to(torch::kFloat32) - ref).abs().max().item<double>() / ref.abs().max().item<double>();
}
// One bf16 rounding of the result (2^-8 relative) and fp32 summation-order differences; bf16 accumulation over
// K >= 1024 is 30x that.
constexpr double kOneRounding = 1.0 / 256;

torch::Tensor bf16_randn(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randn(shape, gen).to(torch::kBFloat16);
}

}  // namespace

TEST(LayersBf16, RuleFollowsTheCpu) {
  const auto x = bf16_randn({2, 2}, 0);
  EXPECT_EQ(models::ops::bf16_gemm_in_fp32(x), !util::cpu_features().avx512_core());
  EXPECT_FALSE(models::ops::bf16_gemm_in_fp32(x.to(torch::kFloat32)));  // fp32 is never rerouted
}

TEST(LayersBf16, MatmulAccumulatesInFp32) {
  torch::NoGradGuard ng;
  for (const int64_t K : {64, 1024, 4096}) {
    SCOPED_TRACE(K);
    const auto a = bf16_randn({3, 17, K}, 1), b = bf16_randn({3, K, 33}, 2);
    const auto got = models::ops::matmul(a, b);
    EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
    EXPECT_LE(rel_err(got, torch::matmul(a.to(torch::kFloat32), b.to(torch::kFloat32))), kOneRounding);
  }
}

TEST(LayersBf16, ConvAndAttentionAccumulateInFp32) {
  torch::NoGradGuard ng;
  const auto x = bf16_randn({1, 64, 12, 12}, 3), w = bf16_randn({16, 64, 3, 3}, 4), b = bf16_randn({16}, 5);
  const auto got = models::ops::conv2d(x, w, b, 1, 1);
  EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
  EXPECT_LE(rel_err(got, torch::conv2d(x.to(torch::kFloat32), w.to(torch::kFloat32), b.to(torch::kFloat32), 1, 1)),
            kOneRounding);
  // Channels-last in, channels-last out (the VAE's layout under the bf16 policy).
  const auto xcl = x.contiguous(torch::MemoryFormat::ChannelsLast);
  EXPECT_TRUE(models::ops::conv2d(xcl, w, b, 1, 1).is_contiguous(torch::MemoryFormat::ChannelsLast));

  // Attention over 1024 keys of width 512 (2 heads): scores and probs @ v both accumulate in fp32.
  const auto q = bf16_randn({1, 64, 512}, 6), k = bf16_randn({1, 1024, 512}, 7), v = bf16_randn({1, 1024, 512}, 8);
  const double scale = 1.0 / 16;
  const auto att = models::ops::attention(q, k, v, 2, scale, /*upcast_softmax=*/true);
  const auto ref = models::ops::attention(q.to(torch::kFloat32), k.to(torch::kFloat32), v.to(torch::kFloat32), 2,
                                          scale, true);
  EXPECT_EQ(att.scalar_type(), torch::kBFloat16);
  // Scores and probabilities are rounded to bf16 on the way (as oneDNN's bf16 attention does): a few roundings.
  EXPECT_LE(rel_err(att, ref), 4 * kOneRounding);
}
