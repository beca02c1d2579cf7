// The one decoding loop of gill. `gill run --lm` (lm_generate.h: stop rules) and the GILL turn (gill_decode.h:
// the reference's [IMG] rules) both run it, each adding its rules as a DecodePolicy. The loop sees the language
// model as a DecoderLM (a model plus the positions fed so far); CachedLM is any models::CausalLM behind it.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "models/causal_lm.h"

namespace gill::pipeline {

// The language model as the loop sees it: it keeps its own KV cache.
class DecoderLM {
 public:
  virtual ~DecoderLM() = default;
  struct Out {
    torch::Tensor logits;  // [n, V] for the fed positions (float32 or the model dtype); [1, V] (the last) when
                           //  the LM computes the last position's logits only
    torch::Tensor hidden;  // [n, D] final hidden states (after the final LayerNorm) of the fed positions
  };
  // Appends `embeds` [1, n, D] to the sequence (positions continue after everything fed before).
  virtual Out feed(const torch::Tensor& embeds) = 0;
  // Input embeddings of `ids` (the extended table with the trained [IMG] rows). [n] -> [1, n, D]
  virtual torch::Tensor embed(const std::vector<int64_t>& ids) = 0;
  // Number of positions fed so far.
  virtual int64_t n_past() const = 0;
  // Most positions the model can hold (OPT: max_position_embeddings); the loop never feeds past it.
  virtual int64_t max_positions() const { return std::numeric_limits<int64_t>::max(); }
};

// A models::CausalLM (not owned) behind DecoderLM: with a KV cache, or (use_cache = false) recomputing the whole
// sequence at every feed as the GILL reference does.
class CachedLM : public DecoderLM {
 public:
  struct Options {
    bool use_cache = true;
    bool last_logits_only = false;  // Out::logits holds the last position only (all a decoding loop needs)
  };
  explicit CachedLM(models::CausalLM& lm) : CachedLM(lm, Options()) {}
  CachedLM(models::CausalLM& lm, Options options) : lm_(&lm), options_(options) {}
  Out feed(const torch::Tensor& embeds) override;
  // feed() that also gives every hidden state of the pass (HF hidden_states, each [1, n, D]).
  Out feed(const torch::Tensor& embeds, std::vector<torch::Tensor>* hidden_states);
  torch::Tensor embed(const std::vector<int64_t>& ids) override;
  int64_t n_past() const override;
  int64_t max_positions() const override { return lm_->max_positions(); }
  void reset();
  void truncate(int64_t n);  // keep the first n positions (a failed chat turn rolls back)
  models::CausalLM& model() { return *lm_; }

 private:
  models::CausalLM* lm_;
  Options options_;
  models::KVCache cache_;
  torch::Tensor seq_;  // [1, n_past, D]: the whole sequence, kept only without a cache
};

// Picks the next token from a logits row [V] (float32) with the policy already applied (greedy_pick in
// sampling.h, or sample_next with a generator).
using Sampler = std::function<int64_t(const torch::Tensor& logits)>;

// What a caller adds to the loop. The defaults are the plain language model: the picked id alone, no rules.
class DecodePolicy {
 public:
  virtual ~DecodePolicy() = default;
  // Before picking at `step`: the last position's logits row [V] fp32, modifiable in place.
  virtual void adjust_logits(int64_t step, torch::Tensor& logits) {
    (void)step;
    (void)logits;
  }
  // The ids a step appends once `picked` is chosen (GILL: [IMG0] -> the whole [IMG0..7] block, in ONE step).
  virtual std::vector<int64_t> expand(int64_t picked) { return {picked}; }
  // Ids whose hidden states are needed: fed even when chosen at the last step, and dropped (never kept unfed)
  // when they no longer fit in the context.
  virtual bool needs_hidden_states(const std::vector<int64_t>& chosen) const {
    (void)chosen;
    return false;
  }
  // After a step, with every id generated so far: the reason to stop ("eos", "newline", ...), or "".
  virtual std::string stop_reason(const std::vector<int64_t>& ids) {
    (void)ids;
    return {};
  }
};

struct LoopOptions {
  int64_t max_steps = 32;          // decoding steps (a forced block counts as one)
  bool feed_final_tokens = false;  // feed the last step's ids too (keeps the cache complete for a next turn)
  bool keep_step_logits = false;   // fill LoopResult::step_logits
  bool keep_hidden = false;        // fill LoopResult::hidden
  // After each step with the ids it appended; returning false stops the loop ("callback").
  std::function<bool(const std::vector<int64_t>& chosen)> on_step;
};

struct LoopResult {
  std::vector<int64_t> ids;                // generated ids, every step's in order
  std::vector<int64_t> step_starts;        // index in ids where each kept step's ids begin
  std::vector<torch::Tensor> step_logits;  // per step, the row the pick was made from ([V] fp32, after the policy)
  torch::Tensor hidden;  // [T', D] hidden states where ids[j] was the INPUT token (T' <= ids.size(): ids chosen at
                         //  the last step are only fed when needed); undefined without keep_hidden or feeds
  // "max_steps" | "max_positions" (the context is full: a chosen id is kept unfed unless the policy needs its
  // hidden states, then it is dropped) | "callback" | the policy's reason.
  std::string stop_reason = "max_steps";
};

// Runs the loop. `prompt_embeds` [1, L0, D] is fed first unless it is undefined or empty; then `last_logits` is
// ignored. Otherwise `last_logits` [V] are the logits after everything already fed (a prefill done by the caller,
// or a continued chat turn). A prompt that does not fit after lm.n_past() is kInvalidArgument naming both counts.
LoopResult run_decode_loop(DecoderLM& lm, const torch::Tensor& prompt_embeds, torch::Tensor last_logits,
                           DecodePolicy& policy, const Sampler& sampler, const LoopOptions& options);

}  // namespace gill::pipeline
