// Building blocks of the Stable Diffusion UNet and VAE, registered under the diffusers key names.
// Ref: diffusers v0.17.1 models/resnet.py (ResnetBlock2D, Downsample2D, Upsample2D), models/attention.py
// (BasicTransformerBlock, FeedForward, GEGLU), models/attention_processor.py (Attention + AttnProcessor),
// models/transformer_2d.py (Transformer2DModel), models/unet_2d_blocks.py (CrossAttnDownBlock2D, DownBlock2D,
// UNetMidBlock2DCrossAttn, UpBlock2D, CrossAttnUpBlock2D).
//
// Compute dtype: every block computes in the dtype of its input activations (models::compute_dtype). Weights stored
// in another dtype (bf16 storage under the fp32 compute policy) are converted to the activation dtype right before
// their GEMM or convolution (see as_compute), so bf16 halves the resident weights while the arithmetic stays fp32;
// under the bf16 policy weights and activations are both bf16 and nothing is converted.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "models/layers.h"

namespace gill::models {

// ResnetBlock2D (time_embedding_norm "default", no up/down). temb_channels 0 = no time_emb_proj (VAE).
class ResnetBlock2DImpl : public torch::nn::Module {
 public:
  ResnetBlock2DImpl(int64_t in_channels, int64_t out_channels, int64_t temb_channels, int64_t groups, double eps,
                    double output_scale_factor, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb /* [B, temb] or undefined */);
  GroupNorm norm1{nullptr}, norm2{nullptr};
  Conv2d conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
  Linear time_emb_proj{nullptr};
  double output_scale_factor;
};
TORCH_MODULE(ResnetBlock2D);

// Downsample2D with use_conv: 3x3 stride-2 conv. padding 0 means diffusers' asymmetric (0,1,0,1) pad first.
class Downsample2DImpl : public torch::nn::Module {
 public:
  Downsample2DImpl(int64_t channels, int64_t padding, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x);
  Conv2d conv{nullptr};
  int64_t padding;
};
TORCH_MODULE(Downsample2D);

// Upsample2D with use_conv: nearest x2 (or to `size`) then a 3x3 conv.
class Upsample2DImpl : public torch::nn::Module {
 public:
  Upsample2DImpl(int64_t channels, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x, const std::vector<int64_t>& size = {});
  Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample2D);

// Attention (diffusers Attention, processor AttnProcessor): to_q/to_k/to_v without bias, to_out.0 with bias.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t query_dim, int64_t cross_attention_dim /* 0 = self */, int64_t heads, int64_t dim_head,
                const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x /* [B,N,C] */, const torch::Tensor& context /* undefined = x */);
  Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr}, out{nullptr};  // out: ckpt `to_out.0`
  int64_t heads, dim_head;
};
TORCH_MODULE(Attention);

// FeedForward with GEGLU: net.0.proj (C -> 2*4C; first half value, second half gate, exact GELU), net.2.
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t dim, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x);
  Linear proj{nullptr}, out{nullptr};  // ckpt: net.0.proj, net.2
};
TORCH_MODULE(FeedForward);

class BasicTransformerBlockImpl : public torch::nn::Module {
 public:
  BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t dim_head, int64_t cross_attention_dim,
                            const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context);
  LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  Attention attn1{nullptr}, attn2{nullptr};
  FeedForward ff{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

// Transformer2DModel, continuous input, one BasicTransformerBlock; proj_in/out are 1x1 convs, or Linears when
// use_linear_projection. GroupNorm eps is 1e-6 (hard-coded upstream).
class Transformer2DModelImpl : public torch::nn::Module {
 public:
  Transformer2DModelImpl(int64_t heads, int64_t dim_head, int64_t in_channels, int64_t cross_attention_dim,
                         int64_t groups, bool use_linear_projection, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x /* [B,C,H,W] */, const torch::Tensor& context);
  GroupNorm norm{nullptr};
  Conv2d proj_in_conv{nullptr}, proj_out_conv{nullptr};  // ckpt: proj_in / proj_out (conv)
  Linear proj_in_lin{nullptr}, proj_out_lin{nullptr};    // ckpt: proj_in / proj_out (linear)
  BasicTransformerBlock block{nullptr};                  // ckpt: transformer_blocks.0
  bool use_linear_projection;
};
TORCH_MODULE(Transformer2DModel);

// Settings shared by every block of one UNet.
struct UNetBlockArgs {
  int64_t temb_channels = 0;
  int64_t groups = 32;
  double eps = 1e-5;
  int64_t cross_attention_dim = 768;
  bool use_linear_projection = false;
  int64_t downsample_padding = 1;
};

// CrossAttnDownBlock2D (with_attention) and DownBlock2D: resnets[i] (+ attentions[i]), optional downsampler.
// Every resnet/attention output and the downsampler output are pushed onto `skips`.
class UNetDownBlockImpl : public torch::nn::Module {
 public:
  UNetDownBlockImpl(bool with_attention, int64_t n_layers, int64_t in_channels, int64_t out_channels,
                    int64_t heads, bool add_downsample, const UNetBlockArgs& a, const ModuleOptions& opt);
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& temb, const torch::Tensor& context,
                        std::vector<torch::Tensor>& skips);
  std::vector<ResnetBlock2D> resnets;
  std::vector<Transformer2DModel> attentions;
  Downsample2D downsampler{nullptr};
};
TORCH_MODULE(UNetDownBlock);

// UpBlock2D and CrossAttnUpBlock2D: each resnet takes cat([h, skips.pop()]); optional upsampler (to the
// spatial size of the next skip when forward_upsample_size, as diffusers does for sizes not divisible by 2^k).
class UNetUpBlockImpl : public torch::nn::Module {
 public:
  UNetUpBlockImpl(bool with_attention, int64_t n_layers, int64_t in_channels, int64_t out_channels,
                  int64_t prev_output_channels, int64_t heads, bool add_upsample, const UNetBlockArgs& a,
                  const ModuleOptions& opt);
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& temb, const torch::Tensor& context,
                        std::vector<torch::Tensor>& skips, bool forward_upsample_size);
  std::vector<ResnetBlock2D> resnets;
  std::vector<Transformer2DModel> attentions;
  Upsample2D upsampler{nullptr};
};
TORCH_MODULE(UNetUpBlock);

// UNetMidBlock2DCrossAttn: resnets.0, then (attentions.i, resnets.i+1) per layer (one for SD).
class UNetMidBlock2DCrossAttnImpl : public torch::nn::Module {
 public:
  UNetMidBlock2DCrossAttnImpl(int64_t channels, int64_t heads, double output_scale_factor, const UNetBlockArgs& a,
                              const ModuleOptions& opt);
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& temb, const torch::Tensor& context);
  std::vector<ResnetBlock2D> resnets;
  std::vector<Transformer2DModel> attentions;
};
TORCH_MODULE(UNetMidBlock2DCrossAttn);

}  // namespace gill::models
