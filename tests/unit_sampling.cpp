// Next-token selection: greedy ties, transformers' temperature / top-k / top-p warpers, seeded sampling.
#include "pipeline/sampling.h"
#include "pipeline/lm_generate.h"
#include "test_support.h"
#include "util/error.h"

using gill::test::error_of;

using namespace gill;
using namespace gill::pipeline;

namespace {
const float kInf = std::numeric_limits<float>::infinity();
}  // namespace

TEST(Sampling, GreedyFirstIndexWinsTies) {
  auto gen = make_generator({});
  EXPECT_EQ(sample_next(torch::tensor({1.f, 3.f, 3.f, 2.f}), {}, gen), 1);
  // One greedy rule (torch.argmax's, as the reference): NaN counts as the maximum.
  EXPECT_EQ(sample_next(torch::tensor({-kInf, std::nanf(""), -1.f}), {}, gen), 1);
  EXPECT_EQ(greedy_pick(torch::tensor({5.f, 5.f})), 0);
}

TEST(Sampling, TopKAndTopPLikeTransformers) {
  SamplingOptions o;
  o.temperature = 2;
  o.top_k = 2;
  auto w = warp_logits(torch::tensor({1.f, 4.f, 2.f, 4.f}), o);
  EXPECT_TRUE(torch::equal(w, torch::tensor({-kInf, 2.f, -kInf, 2.f})));  // ties at the k-th value are kept
  // top_p: probabilities 0.5, 0.25, 0.125, 0.125 (log-space logits). top_p = 0.7 keeps {0.5, 0.25}:
  // ascending cumsum 0.125, 0.25, 0.5, 1.0 — removed where <= 0.3.
  SamplingOptions p;
  p.temperature = 1;
  p.top_p = 0.7f;
  auto logits = torch::log(torch::tensor({0.125f, 0.5f, 0.125f, 0.25f}));
  auto wp = warp_logits(logits, p);
  EXPECT_TRUE(torch::isinf(wp[0]).item<bool>());
  EXPECT_TRUE(torch::isinf(wp[2]).item<bool>());
  EXPECT_FALSE(torch::isinf(wp[1]).item<bool>());
  EXPECT_FALSE(torch::isinf(wp[3]).item<bool>());
  p.top_p = 0.01f;  // always keeps the most likely token
  auto w1 = warp_logits(logits, p);
  EXPECT_EQ(torch::isfinite(w1).sum().item<int64_t>(), 1);
  EXPECT_TRUE(torch::isfinite(w1[1]).item<bool>());
}

TEST(Sampling, SeededAndDistributed) {
  SamplingOptions o;
  o.temperature = 1;
  o.seed = 42;
  auto logits = torch::log(torch::tensor({0.1f, 0.6f, 0.3f}));
  auto g1 = make_generator(o), g2 = make_generator(o);
  std::vector<int64_t> a, b, counts(3, 0);
  for (int i = 0; i < 2000; ++i) {
    a.push_back(sample_next(logits, o, g1));
    b.push_back(sample_next(logits, o, g2));
    counts[a.back()]++;
  }
  EXPECT_EQ(a, b);
  EXPECT_NEAR(counts[1] / 2000.0, 0.6, 0.05);
  EXPECT_NEAR(counts[0] / 2000.0, 0.1, 0.03);
}

TEST(Sampling, BadOptions) {
  auto gen = make_generator({});
  auto l = torch::zeros({3});
  SamplingOptions o;
  o.temperature = -1;
  EXPECT_EQ(error_of([&] { sample_next(l, o, gen); }), "temperature must be >= 0 (0 = greedy), got -1");
  o = {};
  o.top_p = 0;
  EXPECT_EQ(error_of([&] { sample_next(l, o, gen); }), "top_p must be in (0, 1], got 0");
  o = {};
  o.top_k = -2;
  EXPECT_EQ(error_of([&] { sample_next(l, o, gen); }), "top_k must be >= 0 (0 = off), got -2");
  o = {};
  o.temperature = 1;
  EXPECT_EQ(error_of([&] { sample_next(torch::full({3}, -kInf), o, gen); }),
            "cannot sample: the logits give no finite probabilities (all -inf or NaN)");
}

TEST(TextStreamer, EmitsUpToLastSpaceThenRest) {
  // A decode that joins token strings and applies one clean-up rule (" ." -> "."), like transformers.
  std::vector<std::string> vocab = {"Hello", " world", " .", " again", "\xE2", "\x82\xAC"};
  auto decode = [&](const std::vector<int64_t>& ids) {
    std::string s;
    for (auto i : ids) s += vocab[i];
    size_t p;
    while ((p = s.find(" .")) != std::string::npos) s.erase(p, 1);
    return s;
  };
  TextStreamer st(decode);
  std::string out;
  for (int64_t id : {0, 1, 2, 3}) out += st.push(id);
  EXPECT_EQ(out, "Hello world.");
  out += st.finish(decode({0, 1, 2, 3}));
  EXPECT_EQ(out, "Hello world. again");
}
