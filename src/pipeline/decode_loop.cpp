// The one decoding loop (decode_loop.h) and CachedLM.
// Ref: transformers v4.30.2 generation/utils.py greedy_search / sample (one token per step, KV cache);
//      kohjingyu/gill @4600b71 gill/models.py GILLModel.generate (a step may append several ids).
#include "pipeline/decode_loop.h"

#include "util/error.h"

namespace gill::pipeline {

using detail::str_cat;

// ---------------------------------------------------------------------------------------------- CachedLM

DecoderLM::Out CachedLM::feed(const torch::Tensor& embeds) {
  return feed(embeds, nullptr);
}

DecoderLM::Out CachedLM::feed(const torch::Tensor& embeds, std::vector<torch::Tensor>* hidden_states) {
  models::CausalLMForwardOptions fo;
  fo.last_logits_only = options_.last_logits_only;
  fo.output_hidden_states = hidden_states != nullptr;
  const int64_t n = embeds.size(1);
  models::CausalLMOutput out;
  if (options_.use_cache) {
    out = lm_->forward(embeds, &cache_, fo);
  } else {
    seq_ = seq_.defined() ? torch::cat({seq_.to(embeds.scalar_type()), embeds}, 1) : embeds;  // [1, S, D]
    out = lm_->forward(seq_, nullptr, fo);
  }
  if (hidden_states) *hidden_states = std::move(out.hidden_states);
  auto logits = out.logits[0];       // [S | n | 1, V]
  auto hidden = out.last_hidden[0];  // [S | n, D]
  if (!options_.use_cache) {         // keep the fed positions only
    hidden = hidden.narrow(0, hidden.size(0) - n, n);
    if (!options_.last_logits_only) logits = logits.narrow(0, logits.size(0) - n, n);
  }
  return {logits, hidden};
}

torch::Tensor CachedLM::embed(const std::vector<int64_t>& ids) {
  return lm_->embed_tokens(torch::tensor(ids, torch::kInt64).unsqueeze(0));  // [1, n, D]
}

int64_t CachedLM::n_past() const {
  if (options_.use_cache) return cache_.length();
  return seq_.defined() ? seq_.size(1) : 0;
}

void CachedLM::reset() {
  cache_.clear();
  seq_ = torch::Tensor();
}

void CachedLM::truncate(int64_t n) {
  if (options_.use_cache) return cache_.truncate(n);
  GILL_CHECK(n >= 0 && n <= n_past(), ErrorCode::kInvalidArgument, "CachedLM::truncate(", n, "): the sequence holds ",
             n_past(), " positions");
  seq_ = n == 0 ? torch::Tensor() : seq_.narrow(1, 0, n);
}

// ---------------------------------------------------------------------------------------------- the loop

LoopResult run_decode_loop(DecoderLM& lm, const torch::Tensor& prompt_embeds, torch::Tensor last_logits,
                           DecodePolicy& policy, const Sampler& sampler, const LoopOptions& o) {
  GILL_CHECK(sampler, ErrorCode::kInternal, "decode: no sampler");
  LoopResult r;
  const int64_t n_prompt = prompt_embeds.defined() ? prompt_embeds.size(1) : 0;
  GILL_CHECK(lm.n_past() + n_prompt <= lm.max_positions(), ErrorCode::kInvalidArgument, "the prompt needs ", n_prompt,
             " positions (its text tokens plus the visual tokens of its images)",
             lm.n_past() > 0 ? str_cat(" after ", lm.n_past(), " from earlier turns") : std::string(),
             ", more than the LM's context of ", lm.max_positions(), " positions (max_position_embeddings)");
  if (n_prompt > 0) {
    auto out = lm.feed(prompt_embeds);
    last_logits = out.logits[-1];
  }
  GILL_CHECK(last_logits.defined(), ErrorCode::kInvalidArgument, "decode: empty prompt and no previous logits");
  std::vector<torch::Tensor> hidden_rows;
  for (int64_t step = 0; step < o.max_steps; ++step) {
    auto logits = last_logits.to(torch::kFloat32).reshape({-1}).clone();  // [V]
    policy.adjust_logits(step, logits);
    if (o.keep_step_logits) r.step_logits.push_back(logits);
    const std::vector<int64_t> chosen = policy.expand(sampler(logits));
    const auto n_chosen = static_cast<int64_t>(chosen.size());
    const bool needed = policy.needs_hidden_states(chosen);
    const bool fits = lm.n_past() + n_chosen <= lm.max_positions();
    if (needed && !fits) {  // ids without their hidden states are of no use: dropped
      r.stop_reason = "max_positions";
      break;
    }
    r.step_starts.push_back(static_cast<int64_t>(r.ids.size()));
    r.ids.insert(r.ids.end(), chosen.begin(), chosen.end());
    if (o.on_step && !o.on_step(chosen)) {
      r.stop_reason = "callback";
      break;
    }
    if (std::string why = policy.stop_reason(r.ids); !why.empty()) {
      r.stop_reason = std::move(why);
      break;
    }
    // The last step's ids are fed only when needed (the reference never feeds them; it has no hidden states for
    // an [IMG] block chosen last and crashes) or asked for (a following chat turn).
    if (step + 1 == o.max_steps && !needed && !o.feed_final_tokens) break;
    if (!fits) {  // kept, but there is no room to feed it
      r.stop_reason = "max_positions";
      break;
    }
    auto out = lm.feed(lm.embed(chosen));
    if (o.keep_hidden) hidden_rows.push_back(out.hidden);
    last_logits = out.logits[-1];
  }
  if (!hidden_rows.empty()) r.hidden = torch::cat(hidden_rows, 0);  // [T', D]
  return r;
}

}  // namespace gill::pipeline
