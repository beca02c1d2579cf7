// Ref: transformers v4.30.2 generation/logits_process.py (TemperatureLogitsWarper, TopKLogitsWarper,
// TopPLogitsWarper) and generation/utils.py sample(): probs = softmax(scores); multinomial(probs, 1).
#include "pipeline/sampling.h"

#include <cmath>
#include <limits>

#include "util/error.h"

namespace gill::pipeline {

void validate(const SamplingOptions& o) {
  GILL_CHECK(std::isfinite(o.temperature) && o.temperature >= 0, ErrorCode::kInvalidArgument,
             "temperature must be >= 0 (0 = greedy), got ", o.temperature);
  GILL_CHECK(o.top_p > 0 && o.top_p <= 1, ErrorCode::kInvalidArgument, "top_p must be in (0, 1], got ", o.top_p);
  GILL_CHECK(o.top_k >= 0, ErrorCode::kInvalidArgument, "top_k must be >= 0 (0 = off), got ", o.top_k);
}

torch::Generator make_generator(const SamplingOptions& o) {
  return at::detail::createCPUGenerator(o.seed);
}

// Ref: ATen native/SharedReduceOps.h greater_or_nan (argmax's comparison): NaN is the maximum, ties keep the
// smaller index.
int64_t greedy_pick(const torch::Tensor& logits) {
  auto l = logits.to(torch::kCPU, torch::kFloat32).contiguous().view({-1});
  const float* p = l.data_ptr<float>();
  const int64_t n = l.numel();
  GILL_CHECK(n > 0, ErrorCode::kInvalidArgument, "cannot pick a token from empty logits");
  int64_t best = 0;
  for (int64_t i = 1; i < n && !std::isnan(p[best]); ++i)
    if (std::isnan(p[i]) || p[i] > p[best]) best = i;
  return best;
}

torch::Tensor warp_logits(const torch::Tensor& logits, const SamplingOptions& o) {
  validate(o);
  GILL_CHECK(o.temperature > 0, ErrorCode::kInvalidArgument, "warp_logits: temperature must be > 0");
  const float neg_inf = -std::numeric_limits<float>::infinity();
  auto scores = logits.to(torch::kCPU, torch::kFloat32).reshape({-1}).clone();  // [V]
  if (o.temperature != 1.0f) scores = scores / o.temperature;
  if (o.top_k > 0) {
    const int64_t k = std::min<int64_t>(o.top_k, scores.numel());
    auto kth = std::get<0>(torch::topk(scores, k)).select(0, k - 1);
    scores = scores.masked_fill(scores < kth, neg_inf);
  }
  if (o.top_p < 1.0f) {
    auto [sorted, order] = torch::sort(scores, /*dim=*/0, /*descending=*/false);
    auto cum = torch::softmax(sorted, 0).cumsum(0);
    auto remove_sorted = cum <= (1.0 - o.top_p);
    remove_sorted.narrow(0, remove_sorted.numel() - 1, 1).fill_(false);  // min_tokens_to_keep = 1
    auto remove = torch::zeros_like(remove_sorted).scatter(0, order, remove_sorted);
    scores = scores.masked_fill(remove, neg_inf);
  }
  return scores;
}

int64_t sample_next(const torch::Tensor& logits, const SamplingOptions& o, torch::Generator& gen) {
  validate(o);
  GILL_CHECK(logits.numel() > 0, ErrorCode::kInvalidArgument, "cannot pick a token from empty logits");
  if (o.temperature == 0) return greedy_pick(logits);
  auto probs = torch::softmax(warp_logits(logits, o), 0);
  GILL_CHECK(torch::isfinite(probs).all().item<bool>(), ErrorCode::kInvalidArgument,
             "cannot sample: the logits give no finite probabilities (all -inf or NaN)");
  return torch::multinomial(probs, 1, /*replacement=*/false, gen).item<int64_t>();
}

}  // namespace gill::pipeline
