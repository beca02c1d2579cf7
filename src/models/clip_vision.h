// CLIP vision tower (HF CLIPVisionModel): patch embedding + CLS + positions, pre-LN, pre-norm encoder layers with
// quick_gelu MLPs, post-LN on the CLS token. GILL uses the pooled output (gill-spec 5.1).
// Ref: transformers v4.30.2 models/clip/modeling_clip.py (CLIPVisionEmbeddings, CLIPAttention, CLIPMLP,
// CLIPEncoderLayer, CLIPEncoder, CLIPVisionTransformer, CLIPVisionModel), configuration_clip.py.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include <gill/image.h>
#include "io/loader.h"
#include "io/tensor_dump.h"
#include "models/clip_attention.h"
#include "models/clip_image_processor.h"
#include "models/layers.h"

namespace gill::models {

// Fields as config.json names them; defaults are CLIPVisionConfig's (the base patch-32 model), as transformers
// fills keys a config leaves out.
struct CLIPVisionConfig {
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_attention_heads = 12;
  int64_t num_hidden_layers = 12;
  int64_t patch_size = 32;
  int64_t image_size = 224;
  int64_t num_channels = 3;
  int64_t projection_dim = 512;  // unused by the tower (visual_projection is not part of it)
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;

  // Accepts a full CLIPModel config (`vision_config` inside; an old-style `vision_config_dict` wins over it, as
  // in transformers 4.30's CLIPConfig) or a vision-only CLIPVisionModel config. `where` names it in errors.
  static CLIPVisionConfig from_json(const nlohmann::json& j, const std::string& where = "config.json");
  // `path` is a config.json file or a folder holding one.
  static CLIPVisionConfig from_file(const std::filesystem::path& path);

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
  int64_t num_positions() const { return num_patches() + 1; }
};

struct CLIPVisionOutput {
  torch::Tensor last_hidden;                 // [B, 1 + n_patches, D]
  torch::Tensor pooled;                      // [B, D]: post_layernorm(last_hidden[:, 0])
  std::vector<torch::Tensor> hidden_states;  // when asked: n_layers + 1 tensors (pre_layrnorm output first)
};

class CLIPVisionEmbeddingsImpl : public torch::nn::Module {
 public:
  CLIPVisionEmbeddingsImpl(const CLIPVisionConfig& cfg, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& pixel_values, bool gemm_fp32);  // [B, C, S, S] -> [B, 1 + P, D]
  torch::Tensor class_embedding;  // [D]
  Conv2d patch_embedding{nullptr};
  Embedding position_embedding{nullptr};
  torch::Tensor position_ids;  // [1, 1 + P] int64 buffer
};
TORCH_MODULE(CLIPVisionEmbeddings);

class CLIPMLPImpl : public torch::nn::Module {
 public:
  CLIPMLPImpl(const CLIPVisionConfig& cfg, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x, bool gemm_fp32);
  Linear fc1{nullptr}, fc2{nullptr};
  bool quick_gelu;
};
TORCH_MODULE(CLIPMLP);

class CLIPEncoderLayerImpl : public torch::nn::Module {
 public:
  CLIPEncoderLayerImpl(const CLIPVisionConfig& cfg, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x, bool gemm_fp32);
  CLIPAttention self_attn{nullptr};
  LayerNorm layer_norm1{nullptr};
  CLIPMLP mlp{nullptr};
  LayerNorm layer_norm2{nullptr};
};
TORCH_MODULE(CLIPEncoderLayer);

// `vision_model` in the checkpoint (CLIPVisionTransformer); its encoder is a plain `encoder.layers.N` list.
class CLIPVisionTransformerImpl : public torch::nn::Module {
 public:
  CLIPVisionTransformerImpl(const CLIPVisionConfig& cfg, const ModuleOptions& opt);
  CLIPVisionOutput forward(const torch::Tensor& pixel_values, bool output_hidden_states, bool gemm_fp32);
  CLIPVisionEmbeddings embeddings{nullptr};
  LayerNorm pre_layrnorm{nullptr};  // ckpt: pre_layrnorm (sic)
  std::vector<CLIPEncoderLayer> layers;  // ckpt: encoder.layers.N
  LayerNorm post_layernorm{nullptr};
};
TORCH_MODULE(CLIPVisionTransformer);

class CLIPVisionModelImpl : public torch::nn::Module {
 public:
  CLIPVisionModelImpl(const CLIPVisionConfig& cfg, const ModuleOptions& opt);
  // pixel_values [B, C, S, S] (any float dtype; cast to the model dtype first, as GILL does).
  CLIPVisionOutput forward(const torch::Tensor& pixel_values, bool output_hidden_states = false);

  const CLIPVisionConfig& config() const { return cfg_; }
  torch::Dtype dtype() const { return opt_.dtype; }
  // True when GEMMs and convolutions run in fp32 on reduced-precision weights (bf16/fp16 on the CPU): inputs
  // and weights are upcast per op and the result rounded back to the model dtype, so every tensor between ops
  // is in the model dtype as in the reference's bf16 run.
  bool gemm_fp32() const { return gemm_fp32_; }
  void set_gemm_fp32(bool on) { gemm_fp32_ = on; }

  CLIPVisionTransformer vision_model{nullptr};

 private:
  CLIPVisionConfig cfg_;
  ModuleOptions opt_;
  bool gemm_fp32_ = false;
};
TORCH_MODULE(CLIPVisionModel);

// The LoadSpec for a CLIP checkpoint: the vision tower's keys under their own names; a full CLIPModel's text
// tower, projections and logit_scale are expected extras; position_ids buffers are optional.
io::LoadSpec clip_vision_load_spec();

// Builds the model from DIR/config.json and loads DIR's weights (model.safetensors, pytorch_model.bin, ...).
CLIPVisionModel load_clip_vision(const std::filesystem::path& dir, const ModuleOptions& opt);

// The CLIP stage of GILL: preprocess each image, run the tower, return the pooled outputs [N, D] in the model
// dtype. Dumps `clip.pixel_values` [N, 3, S, S] (float32) and `clip.pooled` [N, D] when `dump` is set.
torch::Tensor clip_embed_images(CLIPVisionModel& model, const CLIPImageProcessorConfig& preprocess,
                                const std::vector<gill::Image>& images, io::TensorDump* dump = nullptr);

}  // namespace gill::models
