// bf16-weight linear kernels: every path equals an fp32 linear on the widened weights.
#include "kernels/linear_bf16.h"
#include "test_support.h"
#include "util/error.h"

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
  EXPECT_EQ(msg(torch::zeros({2, 8}, torch::kBFloat16), w), "linear_bf16_weight: input must be fp32, got CPUBFloat16Type");
}
