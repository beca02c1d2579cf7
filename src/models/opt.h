// OPT decoder-only language model (OPTForCausalLM), exact to transformers v4.30.2 modeling_opt.py.
//
// Module tree and registered names follow the checkpoint: `decoder` = {embed_tokens, embed_positions,
// project_in?, project_out?, final_layer_norm?, layers.N.{self_attn.{q,k,v,out}_proj, self_attn_layer_norm,
// fc1, fc2, final_layer_norm}}; `lm_head` is tied to `decoder.embed_tokens` and has no tensor of its own.
//
// Precision: parameters are stored in the load dtype (ModuleOptions::dtype); activations use the model's
// *compute dtype* (models::compute_dtype of the ModuleOptions: the compute policy, util/compute_policy.h). On the
// CPU with bf16 storage and the fp32 policy, big matrices stay bf16 and are widened on the fly
// (kernels/linear_bf16.h), 1-D parameters (biases, LayerNorms) are kept in fp32. Under the bf16 policy everything
// is bf16 in the reference's op order (what the Python reference does on a GPU); decode GEMVs still use gill's
// kernels (vdpbf16ps where the CPU has AVX512-BF16), prefill GEMMs go to oneDNN.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "io/loader.h"
#include "models/causal_lm.h"
#include "models/layers.h"

namespace gill::models {

// Fields named as in config.json; absent fields take transformers' OPTConfig defaults.
struct OPTConfig {
  int64_t vocab_size = 50272;
  int64_t hidden_size = 768;
  int64_t ffn_dim = 3072;
  int64_t num_attention_heads = 12;
  int64_t num_hidden_layers = 12;
  int64_t max_position_embeddings = 2048;
  int64_t word_embed_proj_dim = 768;  // absent -> hidden_size
  bool do_layer_norm_before = true;   // false: post-LN (opt-350m), no decoder final_layer_norm
  bool remove_final_layer_norm = false;  // json: _remove_final_layer_norm
  bool enable_bias = true;
  bool layer_norm_elementwise_affine = true;
  std::string activation_function = "relu";
  int64_t pad_token_id = 1;
  int64_t bos_token_id = 2;
  int64_t eos_token_id = 2;
  std::string torch_dtype;  // informational ("float16" for the hub checkpoints)

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  bool has_projections() const { return word_embed_proj_dim != hidden_size; }
  bool has_final_layer_norm() const { return do_layer_norm_before && !remove_final_layer_norm; }

  // Validates sizes and the activation name (kInvalidArgument / kFormat with the field and value).
  static OPTConfig from_json(const nlohmann::json& j);
  static OPTConfig from_file(const std::filesystem::path& config_json);
};

// The CausalLM types under OPT's names.
using OPTOutput = CausalLMOutput;
using OPTForwardOptions = CausalLMForwardOptions;

class OPTAttentionImpl : public torch::nn::Module {
 public:
  OPTAttentionImpl(const OPTConfig& c, const ModuleOptions& opt);
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
  int64_t n_heads, head_dim;
};
TORCH_MODULE(OPTAttention);

class OPTDecoderLayerImpl : public torch::nn::Module {
 public:
  OPTDecoderLayerImpl(const OPTConfig& c, const ModuleOptions& opt);
  OPTAttention self_attn{nullptr};
  LayerNorm self_attn_layer_norm{nullptr}, final_layer_norm{nullptr};
  Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(OPTDecoderLayer);

class OPTDecoderImpl : public torch::nn::Module {
 public:
  OPTDecoderImpl(const OPTConfig& c, const ModuleOptions& opt);
  Embedding embed_tokens{nullptr};
  Embedding embed_positions{nullptr};  // [max_position_embeddings + 2, hidden]
  Linear project_in{nullptr}, project_out{nullptr};  // only when word_embed_proj_dim != hidden_size
  LayerNorm final_layer_norm{nullptr};               // only when has_final_layer_norm()
  torch::nn::ModuleList layers{nullptr};
  std::vector<OPTDecoderLayer> layer_list;
};
TORCH_MODULE(OPTDecoder);

// OPT behind the CausalLM interface (models/causal_lm.h; the registry's "opt").
class OPTForCausalLMImpl : public torch::nn::Module, public CausalLM {
 public:
  OPTForCausalLMImpl(const OPTConfig& config, const ModuleOptions& opt);

  // [B, T] int64 -> [B, T, word_embed_proj_dim] in the compute dtype. Ids outside the table: kInvalidArgument.
  torch::Tensor embed_tokens(const torch::Tensor& ids) override;
  OPTOutput forward(const torch::Tensor& inputs_embeds, KVCache* cache = nullptr, bool output_hidden_states = false);
  OPTOutput forward(const torch::Tensor& inputs_embeds, KVCache* cache, const OPTForwardOptions& options) override;
  // Convenience: embed_tokens + forward.
  OPTOutput forward_ids(const torch::Tensor& ids, KVCache* cache = nullptr, const OPTForwardOptions& options = {});

  // Keeps the first min(old, n_rows) rows; new rows are zero; lm_head stays tied. Updates config().vocab_size.
  void resize_token_embeddings(int64_t n_rows) override;
  void set_token_embeddings(const std::vector<int64_t>& ids, const torch::Tensor& rows) override;
  torch::Tensor embedding_weight();  // the tied table [V, word_embed_proj_dim] (storage dtype)
  const OPTConfig& config() const { return config_; }
  OPTDecoder& decoder() { return decoder_; }
  int64_t embed_dim() const override { return config_.word_embed_proj_dim; }
  int64_t max_positions() const override { return config_.max_position_embeddings; }
  int64_t eos_token_id() const override { return config_.eos_token_id; }

  // Activation dtype (see the header comment). Converts 1-D parameters to it (biases, LayerNorm affine).
  void set_compute_dtype(torch::Dtype dtype);
  torch::Dtype compute_dtype() const { return compute_dtype_; }
  torch::Dtype storage_dtype() const override { return storage_dtype_; }
  // false: every linear and LayerNorm is libtorch's own (torch::linear in the compute dtype), as transformers runs it;
  // the in-process peer of the benchmarks. Default true (gill's bf16-weight kernels).
  void use_gill_kernels(bool on) { gill_kernels_ = on; }

  // Touches every parameter page (populating mmapped weights) so the first forward pays no page faults.
  void prefault();

 private:
  torch::Tensor linear(const torch::Tensor& x, const Linear& l) const;
  torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) const;
  torch::Tensor layer_norm(const torch::Tensor& x, const LayerNorm& ln) const;
  torch::Tensor attention(OPTAttentionImpl& a, const torch::Tensor& h, const torch::Tensor& mask, KVCache* cache,
                          size_t layer) const;
  torch::Tensor decoder_layer(OPTDecoderLayerImpl& l, const torch::Tensor& h, const torch::Tensor& mask,
                              KVCache* cache, size_t layer) const;
  torch::Tensor activation(torch::Tensor x) const;

  OPTConfig config_;
  OPTDecoder decoder_{nullptr};  // ckpt: model.decoder (registered as "model" -> "decoder" for named_parameters)
  torch::Dtype storage_dtype_, compute_dtype_;
  torch::Device device_;
  util::GemvKernel gemv_;  // decode GEMV kernel for bf16 weights (from ModuleOptions::compute)
  bool gill_kernels_ = true;
};
TORCH_MODULE(OPTForCausalLM);

// The one table of checkpoint differences for OPT: prefixes `model.decoder.` (new files) and `decoder.` (the
// facebook/opt-* bins); a stored `lm_head.weight` is tied (left unused).
io::LoadSpec opt_load_spec();


// Loads config.json + weights from an HF folder (model.safetensors, pytorch_model.bin, or shards of either).
// fp16/fp32 files are converted to opt.dtype one tensor at a time. Errors carry "loading OPT from DIR: ".
OPTForCausalLM load_opt(const std::filesystem::path& dir, const ModuleOptions& opt);
// load_opt behind the CausalLM interface: the registry's loader for model_type "opt" (models/causal_lm.cpp).
std::shared_ptr<CausalLM> load_opt_causal_lm(const std::filesystem::path& dir, const ModuleOptions& options);

}  // namespace gill::models
