// Picking the next token from a logits row: greedy, or transformers' sampling warpers.
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace gill::pipeline {

struct SamplingOptions {
  float temperature = 0;  // 0: greedy (greedy_pick); > 0: sample
  float top_p = 1;        // nucleus mass in (0, 1]; 1 = off
  int64_t top_k = 0;      // keep the k largest logits; 0 = off
  uint64_t seed = 0;      // seeds the generator the caller makes with make_generator()
};

// Throws kInvalidArgument naming the option: temperature < 0 or not finite, top_p outside (0, 1], top_k < 0.
void validate(const SamplingOptions& options);

// A CPU generator seeded from options.seed.
torch::Generator make_generator(const SamplingOptions& options);

// logits: [V] float32 (other float dtypes are converted). Returns the next id.
// Greedy when temperature == 0: greedy_pick.
// Otherwise transformers v4.30.2 generate(do_sample=True) semantics, in its warper order:
// TemperatureLogitsWarper (scores / t), TopKLogitsWarper (scores below the k-th largest -> -inf),
// TopPLogitsWarper (ascending sort, softmax, cumsum; drop entries with cumulative mass <= 1 - top_p, always
// keeping the largest), then softmax and torch.multinomial with `gen`.
int64_t sample_next(const torch::Tensor& logits, const SamplingOptions& options, torch::Generator& gen);

// The warped scores (before softmax) that sample_next draws from; exposed for tests.
torch::Tensor warp_logits(const torch::Tensor& logits, const SamplingOptions& options);

// The one greedy rule of gill (`gill run --lm` and the GILL turn): torch.argmax's, as transformers v4.30.2
// greedy_search and the GILL reference call it: the first index of the maximum, where NaN counts as larger than
// every number (the first NaN wins; a row of NaN gives 0). An empty row is kInvalidArgument.
int64_t greedy_pick(const torch::Tensor& logits);

}  // namespace gill::pipeline
