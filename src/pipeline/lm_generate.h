// The plain language model on the one decoding loop (decode_loop.h): prefill, then one token per step with a KV
// cache (or full recomputation), sampling, stop rules (eos, newline, stop strings) as the loop's policy, a logits
// hook, streaming (text_streamer.h). `gill run --lm` uses run_lm(); any decoder of the registry
// (models/causal_lm.h) runs.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "io/tensor_dump.h"
#include "models/causal_lm.h"
#include "pipeline/decode_loop.h"
#include "pipeline/sampling.h"
#include "pipeline/text_streamer.h"

namespace gill::pipeline {

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  SamplingOptions sampling;
  int64_t eos_token_id = -1;              // stop after generating it (-1: never)
  bool stop_on_newline = false;           // needs `decode`
  std::vector<std::string> stop_strings;  // needs `decode`
  bool use_cache = true;                  // false: recompute the whole sequence every step (the GILL reference)
  bool keep_step_logits = false;          // fill GenerateResult::step_logits
  bool prompt_hidden_states = false;      // fill GenerateResult::prompt_hidden_states (prefill pass)
  // Before sampling step `step`: the last position's logits [V] fp32, modifiable in place ([IMG] rules).
  std::function<void(int64_t step, torch::Tensor& logits)> logits_hook;
  // After each new token; return false to stop ("callback").
  std::function<bool(int64_t id)> on_token;
  // ids -> text (skip special tokens), for newline / stop-string checks and GenerateResult::text.
  std::function<std::string(const std::vector<int64_t>&)> decode;
};

struct GenerateResult {
  std::vector<int64_t> ids;  // new tokens, the stopping token included
  std::string text;          // decode(ids), cut before the newline / stop string (empty without `decode`)
  // "max_new_tokens" | "eos" | "newline" | "stop_string" | "callback" | "max_positions"
  std::string stop_reason;
  torch::Tensor step_logits;  // [n_steps, V] fp32: the logits each token was picked from (after the hook)
  std::vector<torch::Tensor> prompt_hidden_states;  // HF hidden_states of the prompt pass, each [1, T, D]
  double prefill_s = 0, decode_s = 0;               // wall time of the prompt pass and of the later steps
};

// prompt_embeds: [1, T, embed_dim()] (model.embed_tokens(ids), possibly with image embeddings spliced in).
// A prompt longer than the model's positions is an error (the model's own); reaching the limit while generating
// stops ("max_positions").
GenerateResult generate(models::CausalLM& model, const torch::Tensor& prompt_embeds, const GenerateOptions& options,
                        torch::Generator& gen);

// What `gill run --lm DIR` does.
struct LmRunOptions {
  std::filesystem::path lm_dir;
  std::string prompt;               // encoded with the tokenizer in lm_dir (special tokens added, as HF's)
  std::vector<int64_t> prompt_ids;  // used instead of `prompt` when non-empty
  int64_t max_new_tokens = 32;
  SamplingOptions sampling;
  std::string dtype = "bf16";   // fp32 | bf16 (storage)
  util::ComputePolicy compute;  // how bf16 storage computes (models/layers.h)
  io::Residency residency = io::Residency::kMap;  // where the weights live (io/mapped_file.h)
  bool stop_on_eos = true;
  bool stop_on_newline = false;
  std::vector<std::string> stop_strings;
  bool use_cache = true;
  bool dump_hidden = false;  // lm.hidden_states in the dump
};

struct LmRunResult {
  std::vector<int64_t> prompt_ids, new_ids;
  std::string text;  // the continuation (decoded; ids joined by spaces when the folder has no tokenizer)
  std::string stop_reason;
  double load_s = 0, prefill_s = 0, decode_s = 0;
};

// Loads the model (and tokenizer when present), generates, hands each printable piece of the continuation to
// `on_text` (if set; "ID " pieces without a tokenizer; returning false stops with "callback"), fills `dump` (if
// not null) with lm.input_ids, lm.output_ids, lm.logits and, with dump_hidden, lm.hidden_states.
LmRunResult run_lm(const LmRunOptions& options, const std::function<bool(const std::string&)>& on_text,
                   io::TensorDump* dump);

// Storage dtype from a --dtype value: fp32 | bf16 (kInvalidArgument otherwise).
torch::Dtype parse_lm_dtype(const std::string& name);

}  // namespace gill::pipeline
