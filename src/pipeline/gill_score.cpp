// Ref: kohjingyu/gill @4600b71 gill/models.py GILL.get_log_likelihood_scores; transformers v4.30.2
//      modeling_opt.py OPTForCausalLM.forward (shift_logits = logits[..., :-1], shift_labels = labels[..., 1:],
//      CrossEntropyLoss() with its default ignore_index -100 and mean reduction).
#include "pipeline/gill_score.h"

#include "util/error.h"

namespace gill::pipeline {

using detail::str_cat;

SequenceScore shifted_log_likelihood(const torch::Tensor& logits, const std::vector<int64_t>& labels) {
  torch::NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(labels.size());
  GILL_CHECK(logits.dim() == 2 && logits.size(0) == n, ErrorCode::kShapeMismatch, "scoring: logits ", logits.sizes(),
             " for ", n, " labels");
  SequenceScore s;
  s.n_positions = n;
  for (int64_t t = 1; t < n; ++t) s.n_scored += labels[t] != kIgnoreLabel;
  GILL_CHECK(s.n_scored > 0, ErrorCode::kInvalidArgument, "scoring: the sequence of ", n,
             " positions has no text token after its first position, so nothing is scored");
  auto shift_logits = logits.slice(0, 0, n - 1).to(torch::kFloat32);                                         // [L-1, V]
  auto shift_labels = torch::tensor(std::vector<int64_t>(labels.begin() + 1, labels.end()), torch::kInt64);  // [L-1]
  namespace F = torch::nn::functional;
  auto loss = F::cross_entropy(shift_logits, shift_labels, F::CrossEntropyFuncOptions().ignore_index(kIgnoreLabel));
  s.log_likelihood = -loss.item<double>();
  return s;
}

std::vector<SequenceScore> score_candidates(GILLWeights& w, Backbones& b, const std::vector<PromptItem>& items,
                                            const std::vector<std::string>& candidates, const FullLogits& logits,
                                            const std::function<void(size_t k)>& between) {
  torch::NoGradGuard no_grad;
  GILL_CHECK(!candidates.empty(), ErrorCode::kInvalidArgument, "scoring: no candidates (give at least one text)");
  for (size_t k = 0; k < candidates.size(); ++k)
    GILL_CHECK(!candidates[k].empty(), ErrorCode::kInvalidArgument, "scoring: candidate ", k, " is empty");

  // The prompt once; the candidate is one more text item, so BOS goes to it only when the prompt has no text.
  std::vector<int64_t> prompt_labels;
  torch::Tensor prompt_embeds;
  bool prompt_has_text = false;
  for (const auto& it : items) prompt_has_text |= !it.is_image;
  if (!items.empty()) prompt_embeds = assemble_prompt(w, b, items, /*bos_on_first_text=*/true, nullptr, &prompt_labels);

  std::vector<SequenceScore> out;
  for (size_t k = 0; k < candidates.size(); ++k) {
    if (between) between(k);
    PromptItem c;
    c.text = candidates[k];
    std::vector<int64_t> labels = prompt_labels;
    auto cand_embeds = assemble_prompt(w, b, {c}, /*bos_on_first_text=*/!prompt_has_text, nullptr, &labels);
    auto embeds = prompt_embeds.defined() ? torch::cat({prompt_embeds, cand_embeds}, 1) : cand_embeds;  // [1, L, D]
    const int64_t n = embeds.size(1);
    GILL_CHECK(n <= b.lm->max_positions(), ErrorCode::kInvalidArgument, "scoring: candidate ", k, ": prompt (",
               prompt_labels.size(), " positions) + candidate (", n - static_cast<int64_t>(prompt_labels.size()),
               " tokens) = ", n, " positions; the LM holds at most ", b.lm->max_positions());
    out.push_back(shifted_log_likelihood(logits(embeds), labels));
  }
  return out;
}

}  // namespace gill::pipeline
