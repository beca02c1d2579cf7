// The decoder-only language model as everything above models/ sees it (the pipeline's decoding loop, GILL's
// loading, scoring), and the registry from config.json's `model_type` to the model that implements it. OPT
// (models/opt.h) is the one decoder today; a new one (e.g. Llama) is one models/ file implementing CausalLM plus
// one line in the registry table of causal_lm.cpp.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/layers.h"

namespace gill::models {

// Keys and values of every layer for incremental decoding. Buffers grow by doubling; views are handed out.
struct KVCache {
  std::vector<torch::Tensor> k, v;  // per layer: [B, H, capacity, head_dim]
  int64_t n_tokens = 0;             // positions filled

  int64_t length() const { return n_tokens; }
  void clear();
  void truncate(int64_t n);  // keep the first n positions (0 <= n <= length())

  // Internal (used by the attention layers): writes `k_new`/`v_new` [B, H, T, hd] after the current length for
  // `layer` and returns views of all positions [B, H, length()+T, hd]. commit(T) then advances the length.
  std::pair<torch::Tensor, torch::Tensor> append(size_t layer, const torch::Tensor& k_new, const torch::Tensor& v_new);
  void commit(int64_t n_new);
};

struct CausalLMOutput {
  torch::Tensor logits;       // [B, T, vocab] fp32 ([B, 1, vocab] with last_logits_only)
  torch::Tensor last_hidden;  // [B, T, embed_dim()] = HF hidden_states[-1] (after the final norm / projection)
  std::vector<torch::Tensor> hidden_states;  // n_layers + 1 entries when requested, HF semantics
};

struct CausalLMForwardOptions {
  bool output_hidden_states = false;
  // When non-empty (with output_hidden_states): every hidden state keeps only these positions of this call's
  // sequence, [B, n_positions, D]. Negative indices count from the end.
  std::vector<int64_t> hidden_positions;
  // Optional [B, past + T] 0/1 mask (HF semantics). Absent: all ones.
  torch::Tensor attention_mask;
  // Compute logits for the last position only ([B, 1, vocab]); what a decoding loop needs.
  bool last_logits_only = false;
};

class CausalLM {
 public:
  virtual ~CausalLM() = default;
  // inputs_embeds [B, T, embed_dim()] appended after the `cache`'s positions (none without a cache).
  // A sequence longer than max_positions() is kInvalidArgument.
  virtual CausalLMOutput forward(const torch::Tensor& inputs_embeds, KVCache* cache,
                                 const CausalLMForwardOptions& options) = 0;
  // [B, T] int64 -> [B, T, embed_dim()] in the compute dtype. Ids outside the table: kInvalidArgument.
  virtual torch::Tensor embed_tokens(const torch::Tensor& ids) = 0;
  virtual int64_t embed_dim() const = 0;      // width of inputs_embeds and last_hidden
  virtual int64_t max_positions() const = 0;  // positions the model can hold
  virtual int64_t eos_token_id() const = 0;
  virtual torch::Dtype storage_dtype() const = 0;
  // The extended vocabulary (GILL's [IMG] rows): keeps the first min(old, n_rows) rows, new rows are zero (a tied
  // output head follows). Then set_token_embeddings writes rows [n, embed_dim()] at `ids` of the input table.
  virtual void resize_token_embeddings(int64_t n_rows) = 0;
  virtual void set_token_embeddings(const std::vector<int64_t>& ids, const torch::Tensor& rows) = 0;
};

// config.json's `model_type` of an HF model folder. kNotFound / kFormat naming DIR/config.json when it is missing,
// not JSON, or has no string `model_type`.
std::string causal_lm_model_type(const std::filesystem::path& dir);

// The model_type values the registry knows, in table order ("opt").
std::vector<std::string> causal_lm_model_types();

// Loads the decoder of an HF folder through the registry: kUnsupported naming DIR/config.json and the
// model_type when no decoder implements it; a missing folder is kNotFound.
std::shared_ptr<CausalLM> load_causal_lm(const std::filesystem::path& dir, const ModuleOptions& options);

// Bytes the folder's floating-point tensors would take in fp32 (sum of numel * 4 over its tensor index:
// safetensors headers, a shard index, a pickle), whatever the decoder; no tensor data is read. A stored
// `lm_head.weight` (transformers' name for every CausalLM's output layer) is tied to the input embedding, and so
// not counted, unless config.json says "tie_word_embeddings": false (transformers' default is true).
int64_t fp32_parameter_bytes(const std::filesystem::path& dir);

}  // namespace gill::models
