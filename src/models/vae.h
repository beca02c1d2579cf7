// AutoencoderKL (Stable Diffusion VAE), under the diffusers key names of vae/config.json.
// Ref: diffusers v0.17.1 models/autoencoder_kl.py, models/vae.py (Encoder, Decoder, DiagonalGaussianDistribution),
// models/unet_2d_blocks.py (DownEncoderBlock2D, UpDecoderBlock2D, UNetMidBlock2D), attention_processor.py.
// The published SD v1.5 file uses the legacy attention names (query/key/value/proj_attn): load_vae maps them in
// its LoadSpec alias table.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "models/layers.h"
#include "models/unet_2d_blocks.h"

namespace gill::models {

struct AutoencoderKLConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 4;
  std::vector<int64_t> block_out_channels{128, 256, 512, 512};
  std::vector<std::string> down_block_types{4, "DownEncoderBlock2D"};
  std::vector<std::string> up_block_types{4, "UpDecoderBlock2D"};
  int64_t layers_per_block = 2;
  int64_t norm_num_groups = 32;
  std::string act_fn = "silu";
  int64_t sample_size = 512;
  double scaling_factor = 0.18215;

  static AutoencoderKLConfig from_json(const nlohmann::json& j, const std::string& where = "vae config");
  static AutoencoderKLConfig from_file(const std::filesystem::path& path);
};

// The VAE mid-block attention: single head (dim_head = channels), GroupNorm, q/k/v/out with bias, residual,
// softmax in fp32.
class VAEAttentionImpl : public torch::nn::Module {
 public:
  VAEAttentionImpl(int64_t channels, int64_t groups, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x /* [B,C,H,W] */);
  GroupNorm group_norm{nullptr};
  Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr}, out{nullptr};  // out: ckpt `to_out.0` (legacy proj_attn)
};
TORCH_MODULE(VAEAttention);

// UNetMidBlock2D (no time embedding): resnets.0, attentions.0, resnets.1.
class UNetMidBlock2DImpl : public torch::nn::Module {
 public:
  UNetMidBlock2DImpl(int64_t channels, int64_t groups, const ModuleOptions& opt);
  torch::Tensor forward(torch::Tensor h);
  std::vector<ResnetBlock2D> resnets;
  VAEAttention attention{nullptr};  // ckpt: attentions.0
};
TORCH_MODULE(UNetMidBlock2D);

// DownEncoderBlock2D / UpDecoderBlock2D: resnets, optional downsamplers.0 (asymmetric pad) / upsamplers.0.
class VAEBlockImpl : public torch::nn::Module {
 public:
  VAEBlockImpl(bool up, int64_t n_layers, int64_t in_channels, int64_t out_channels, bool add_sampler,
               int64_t groups, const ModuleOptions& opt);
  torch::Tensor forward(torch::Tensor h);
  std::vector<ResnetBlock2D> resnets;
  Downsample2D downsampler{nullptr};
  Upsample2D upsampler{nullptr};
};
TORCH_MODULE(VAEBlock);

class VAEEncoderImpl : public torch::nn::Module {
 public:
  VAEEncoderImpl(const AutoencoderKLConfig& cfg, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x);
  Conv2d conv_in{nullptr}, conv_out{nullptr};
  std::vector<VAEBlock> down_blocks;
  UNetMidBlock2D mid_block{nullptr};
  GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VAEEncoder);

class VAEDecoderImpl : public torch::nn::Module {
 public:
  VAEDecoderImpl(const AutoencoderKLConfig& cfg, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& z);
  Conv2d conv_in{nullptr}, conv_out{nullptr};
  std::vector<VAEBlock> up_blocks;
  UNetMidBlock2D mid_block{nullptr};
  GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VAEDecoder);

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  AutoencoderKLImpl(const AutoencoderKLConfig& cfg, const ModuleOptions& opt);
  // Raw decode: z [B, latent, h, w] (already divided by scaling_factor) -> image [B, out, 8h, 8w] in about [-1,1].
  torch::Tensor decode(const torch::Tensor& z);
  // x [B, in, H, W] in [-1,1] -> (mean, logvar) of the latent distribution, logvar clamped to [-30, 20].
  std::pair<torch::Tensor, torch::Tensor> encode(const torch::Tensor& x);
  torch::Dtype compute_dtype() const;

  AutoencoderKLConfig config;
  VAEEncoder encoder{nullptr};
  VAEDecoder decoder{nullptr};
  Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};
  ModuleOptions options;
};
TORCH_MODULE(AutoencoderKL);

// Builds from dir/config.json and loads dir/diffusion_pytorch_model.safetensors (or .bin) strictly; accepts the
// new (to_q/to_k/to_v/to_out.0) and legacy (query/key/value/proj_attn) attention names.
AutoencoderKL load_vae(const std::filesystem::path& dir, const ModuleOptions& opts);

}  // namespace gill::models
