// CLIPTextModel (the Stable Diffusion text_encoder/): token + position embeddings, pre-LN encoder layers with a
// causal mask and quick_gelu, final_layer_norm. Returns last_hidden_state.
// Ref: transformers v4.30.2 models/clip/modeling_clip.py (CLIPTextEmbeddings, CLIPAttention, CLIPMLP,
// CLIPEncoderLayer, CLIPTextTransformer, _build_causal_attention_mask).
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "models/clip_attention.h"
#include "models/layers.h"

namespace gill::models {

struct CLIPTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t max_position_embeddings = 77;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;

  static CLIPTextConfig from_json(const nlohmann::json& j, const std::string& where = "text_encoder config");
  static CLIPTextConfig from_file(const std::filesystem::path& path);
};

class CLIPTextEncoderLayerImpl : public torch::nn::Module {
 public:
  CLIPTextEncoderLayerImpl(const CLIPTextConfig& cfg, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& h /* [B,T,D] */, const torch::Tensor& mask /* [T,T] additive */);
  CLIPAttention self_attn{nullptr};
  LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  Linear fc1{nullptr}, fc2{nullptr};  // ckpt: mlp.fc1, mlp.fc2
  bool quick_gelu;
};
TORCH_MODULE(CLIPTextEncoderLayer);

class CLIPTextModelImpl : public torch::nn::Module {
 public:
  CLIPTextModelImpl(const CLIPTextConfig& cfg, const ModuleOptions& opt);
  // ids [B, T] int64 (T <= max_position_embeddings) -> last_hidden_state [B, T, hidden] in compute_dtype().
  torch::Tensor forward(const torch::Tensor& ids);
  torch::Dtype compute_dtype() const;

  CLIPTextConfig config;
  Embedding token_embedding{nullptr}, position_embedding{nullptr};  // ckpt: text_model.embeddings.*
  std::vector<CLIPTextEncoderLayer> layers;                         // ckpt: text_model.encoder.layers.i
  LayerNorm final_layer_norm{nullptr};                              // ckpt: text_model.final_layer_norm
  ModuleOptions options;
};
TORCH_MODULE(CLIPTextModel);

// Builds from dir/config.json and loads dir/model.safetensors (or pytorch_model.bin) strictly; the optional
// text_model.embeddings.position_ids buffer is ignored (positions are 0..T-1).
CLIPTextModel load_clip_text(const std::filesystem::path& dir, const ModuleOptions& opts);

}  // namespace gill::models
