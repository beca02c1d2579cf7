// UNet2DConditionModel (Stable Diffusion 1.x), under the diffusers key names of unet/config.json.
// Ref: diffusers v0.17.1 models/unet_2d_condition.py, models/embeddings.py (get_timestep_embedding, Timesteps,
// TimestepEmbedding).
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "models/layers.h"
#include "models/unet_2d_blocks.h"

namespace gill::models {

struct UNet2DConditionConfig {
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  int64_t sample_size = 64;
  std::vector<int64_t> block_out_channels{320, 640, 1280, 1280};
  std::vector<std::string> down_block_types{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                            "DownBlock2D"};
  std::vector<std::string> up_block_types{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                          "CrossAttnUpBlock2D"};
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";
  int64_t layers_per_block = 2;
  // For SD 1.x this is the number of heads per block (diffusers passes it as attn_num_head_channels).
  std::vector<int64_t> attention_head_dim{8, 8, 8, 8};
  int64_t cross_attention_dim = 768;
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  int64_t downsample_padding = 1;
  double mid_block_scale_factor = 1;
  bool use_linear_projection = false;
  bool center_input_sample = false;
  std::string act_fn = "silu";
  int64_t conv_in_kernel = 3;
  int64_t conv_out_kernel = 3;

  // Reads unet/config.json. Keys SD 1.x does not use must be absent or at their inactive value (null / false /
  // "default" / "positional" / "silu"), otherwise kUnsupported naming the key.
  static UNet2DConditionConfig from_json(const nlohmann::json& j, const std::string& where = "unet config");
  static UNet2DConditionConfig from_file(const std::filesystem::path& path);
};

class UNet2DConditionModelImpl : public torch::nn::Module {
 public:
  UNet2DConditionModelImpl(const UNet2DConditionConfig& cfg, const ModuleOptions& opt);
  // sample [B, in, h, w]; timestep [B] or 0-dim (any numeric dtype; used as float32); encoder_hidden_states
  // [B, 77, cross_attention_dim]. Returns the noise prediction [B, out, h, w] in compute_dtype() (the storage
  // dtype, except fp32 for bf16/fp16 weights on the CPU); inputs are converted to it.
  torch::Tensor forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                        const torch::Tensor& encoder_hidden_states);
  // [B, block_out_channels[0]] sinusoidal embedding ([cos | sin] with flip_sin_to_cos), float32.
  torch::Tensor time_proj(const torch::Tensor& timesteps) const;
  torch::Dtype compute_dtype() const;

  UNet2DConditionConfig config;
  Conv2d conv_in{nullptr}, conv_out{nullptr};
  Linear time_linear_1{nullptr}, time_linear_2{nullptr};  // ckpt: time_embedding.linear_1 / linear_2
  std::vector<UNetDownBlock> down_blocks;
  UNetMidBlock2DCrossAttn mid_block{nullptr};
  std::vector<UNetUpBlock> up_blocks;
  GroupNorm conv_norm_out{nullptr};
  ModuleOptions options;
};
TORCH_MODULE(UNet2DConditionModel);

// Builds from dir/config.json and loads dir/diffusion_pytorch_model.safetensors (or .bin) strictly, converting
// the weights to opts.dtype. Errors carry "loading UNet from DIR: ".
UNet2DConditionModel load_unet(const std::filesystem::path& dir, const ModuleOptions& opts);

}  // namespace gill::models
