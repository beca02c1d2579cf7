// Scoring text given an interleaved prompt: the reference's log-likelihood of one interleaved sequence (how GILL's
// retrieval evaluations rank candidates), for `prompt + candidate` per candidate.
// Ref: kohjingyu/gill @4600b71 gill/models.py GILL.get_log_likelihood_scores; transformers v4.30.2
//      modeling_opt.py OPTForCausalLM.forward (labels: shifted CrossEntropyLoss, mean over the scored labels).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "pipeline/gill_generate.h"

namespace gill::pipeline {

struct SequenceScore {
  // -loss: the mean log-probability of every scored label of prompt + candidate (text tokens of the prompt
  // included, as the reference), i.e. the reference's return value.
  double log_likelihood = 0;
  int64_t n_scored = 0;     // labels the mean runs over (text rows after the first row)
  int64_t n_positions = 0;  // rows of prompt + candidate fed to the LM
};

// Full-sequence logits [L, V] of prompt embeddings [1, L, D] with no cache (the reference's use_cache=False).
using FullLogits = std::function<torch::Tensor(const torch::Tensor& embeds)>;

// For each candidate text, the reference's score of the sequence `items + [candidate]`: the prompt is embedded
// once (BOS only before the first text, as assemble_prompt does; images as n_visual_tokens rows labelled -100),
// the candidate is appended as a text item, the LM runs on the whole sequence, and the result is
// -mean_t CE(logits[t], labels[t + 1]) over the labels that are not -100. `b.lm` embeds the ids and gives
// max_positions(). `between` runs before each candidate (progress, cancellation).
// kInvalidArgument: no candidates, an empty candidate, a sequence longer than the LM's positions.
std::vector<SequenceScore> score_candidates(GILLWeights& w, Backbones& b, const std::vector<PromptItem>& items,
                                            const std::vector<std::string>& candidates, const FullLogits& logits,
                                            const std::function<void(size_t k)>& between = nullptr);

// -mean CE of logits [L, V] against labels [L] shifted by one (labels[0] is never scored), ignoring -100.
// kInvalidArgument when no label is scored (the reference would return NaN).
SequenceScore shifted_log_likelihood(const torch::Tensor& logits, const std::vector<int64_t>& labels);

}  // namespace gill::pipeline
