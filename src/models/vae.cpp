// Ref: diffusers v0.17.1 models/autoencoder_kl.py, models/vae.py, models/unet_2d_blocks.py (DownEncoderBlock2D,
// UpDecoderBlock2D, UNetMidBlock2D), models/attention_processor.py (Attention with residual_connection and
// group_norm, AttnProcessor).
#include "models/vae.h"

#include <cmath>

#include "io/loader.h"
#include "io/tensor_source.h"
#include "util/error.h"
#include "util/json.h"

namespace gill::models {

using detail::str_cat;
using namespace ops;

namespace {
constexpr double kVaeEps = 1e-6;  // every VAE GroupNorm (resnets, attention, conv_norm_out)
}  // namespace

AutoencoderKLConfig AutoencoderKLConfig::from_json(const nlohmann::json& j, const std::string& where) {
  AutoencoderKLConfig c;
  try {
    util::json_get_if(j, "in_channels", c.in_channels);
    util::json_get_if(j, "out_channels", c.out_channels);
    util::json_get_if(j, "latent_channels", c.latent_channels);
    util::json_get_if(j, "block_out_channels", c.block_out_channels);
    util::json_get_if(j, "down_block_types", c.down_block_types);
    util::json_get_if(j, "up_block_types", c.up_block_types);
    util::json_get_if(j, "layers_per_block", c.layers_per_block);
    util::json_get_if(j, "norm_num_groups", c.norm_num_groups);
    util::json_get_if(j, "act_fn", c.act_fn);
    util::json_get_if(j, "sample_size", c.sample_size);
    util::json_get_if(j, "scaling_factor", c.scaling_factor);
  } catch (const nlohmann::json::exception& e) {
    detail::fail(ErrorCode::kFormat, str_cat(where, ": ", e.what()));
  }
  const size_t n = c.block_out_channels.size();
  GILL_CHECK(n > 0 && c.down_block_types.size() == n && c.up_block_types.size() == n, ErrorCode::kFormat, where,
             ": block_out_channels, down_block_types and up_block_types must have the same length (", n, ", ",
             c.down_block_types.size(), ", ", c.up_block_types.size(), ")");
  for (const auto& t : c.down_block_types)
    GILL_CHECK(t == "DownEncoderBlock2D", ErrorCode::kUnsupported, where, ": down block type '", t,
               "' is not supported (DownEncoderBlock2D)");
  for (const auto& t : c.up_block_types)
    GILL_CHECK(t == "UpDecoderBlock2D", ErrorCode::kUnsupported, where, ": up block type '", t,
               "' is not supported (UpDecoderBlock2D)");
  GILL_CHECK(c.act_fn == "silu", ErrorCode::kUnsupported, where, ": act_fn '", c.act_fn,
             "' is not supported (silu)");
  return c;
}

AutoencoderKLConfig AutoencoderKLConfig::from_file(const std::filesystem::path& path) {
  return from_json(read_config(path), path.string());
}

// ---------------------------------------------------------------------------------------------------------------
VAEAttentionImpl::VAEAttentionImpl(int64_t c, int64_t groups, const ModuleOptions& opt) {
  group_norm = register_module("group_norm", GroupNorm(groups, c, kVaeEps, opt));
  to_q = register_module("to_q", Linear(c, c, true, opt));
  to_k = register_module("to_k", Linear(c, c, true, opt));
  to_v = register_module("to_v", Linear(c, c, true, opt));
  auto to_out = register_module("to_out", torch::nn::ModuleList());
  out = Linear(c, c, true, opt);
  to_out->push_back(out);
}

torch::Tensor VAEAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto t = ops::group_norm(group_norm, x).reshape({B, C, H * W}).transpose(1, 2);  // [B, HW, C]
  auto q = linear(to_q, t), k = linear(to_k, t), v = linear(to_v, t);
  auto o = attention(q, k, v, 1, 1.0 / std::sqrt(static_cast<double>(C)), /*upcast_softmax=*/true);
  o = linear(out, o);  // [B, HW, C]
  // residual_connection, rescale 1. The sum keeps x's layout: [B, HW, C] viewed as [B, C, H, W] is channels-last,
  // and `o + x` would carry that into every later layer (on the fp32 NCHW path: each GroupNorm converting, every
  // convolution 2x slower; VAE decode 40 s against 25 s on an AVX2 EPYC).
  return o.transpose(1, 2).reshape({B, C, H, W}).contiguous(x.suggest_memory_format()).add_(x);
}

UNetMidBlock2DImpl::UNetMidBlock2DImpl(int64_t c, int64_t groups, const ModuleOptions& opt) {
  auto res = register_module("resnets", torch::nn::ModuleList());
  auto attn = register_module("attentions", torch::nn::ModuleList());
  resnets.emplace_back(c, c, 0, groups, kVaeEps, 1.0, opt);
  res->push_back(resnets.back());
  attention = VAEAttention(c, groups, opt);
  attn->push_back(attention);
  resnets.emplace_back(c, c, 0, groups, kVaeEps, 1.0, opt);
  res->push_back(resnets.back());
}

torch::Tensor UNetMidBlock2DImpl::forward(torch::Tensor h) {
  h = resnets[0](h, torch::Tensor());
  h = attention(h);
  return resnets[1](h, torch::Tensor());
}

VAEBlockImpl::VAEBlockImpl(bool up, int64_t n_layers, int64_t in, int64_t out, bool add_sampler, int64_t groups,
                           const ModuleOptions& opt) {
  auto res = register_module("resnets", torch::nn::ModuleList());
  for (int64_t i = 0; i < n_layers; ++i) {
    resnets.emplace_back(i == 0 ? in : out, out, 0, groups, kVaeEps, 1.0, opt);
    res->push_back(resnets.back());
  }
  if (!add_sampler) return;
  if (up) {
    auto us = register_module("upsamplers", torch::nn::ModuleList());
    upsampler = Upsample2D(out, opt);
    us->push_back(upsampler);
  } else {
    auto ds = register_module("downsamplers", torch::nn::ModuleList());
    downsampler = Downsample2D(out, /*padding=*/0, opt);  // asymmetric (0,1,0,1) pad, conv padding 0
    ds->push_back(downsampler);
  }
}

torch::Tensor VAEBlockImpl::forward(torch::Tensor h) {
  for (auto& r : resnets) h = r(h, torch::Tensor());
  if (downsampler) h = downsampler(h);
  if (upsampler) h = upsampler(h);
  return h;
}

VAEEncoderImpl::VAEEncoderImpl(const AutoencoderKLConfig& cfg, const ModuleOptions& opt) {
  const auto& ch = cfg.block_out_channels;
  const int64_t n = static_cast<int64_t>(ch.size());
  conv_in = register_module("conv_in", Conv2d(cfg.in_channels, ch[0], 3, 1, 1, true, opt));
  auto downs = register_module("down_blocks", torch::nn::ModuleList());
  int64_t out_ch = ch[0];
  for (int64_t i = 0; i < n; ++i) {
    const int64_t in_ch = out_ch;
    out_ch = ch[i];
    down_blocks.emplace_back(false, cfg.layers_per_block, in_ch, out_ch, i != n - 1, cfg.norm_num_groups, opt);
    downs->push_back(down_blocks.back());
  }
  mid_block = register_module("mid_block", UNetMidBlock2D(ch[n - 1], cfg.norm_num_groups, opt));
  conv_norm_out = register_module("conv_norm_out", GroupNorm(cfg.norm_num_groups, ch[n - 1], kVaeEps, opt));
  conv_out = register_module("conv_out", Conv2d(ch[n - 1], 2 * cfg.latent_channels, 3, 1, 1, true, opt));
}

torch::Tensor VAEEncoderImpl::forward(const torch::Tensor& x) {
  auto h = conv(conv_in, x);
  for (auto& b : down_blocks) h = b(h);
  h = mid_block(h);
  return conv(conv_out, group_norm_silu(conv_norm_out, h));
}

VAEDecoderImpl::VAEDecoderImpl(const AutoencoderKLConfig& cfg, const ModuleOptions& opt) {
  const auto& ch = cfg.block_out_channels;
  const int64_t n = static_cast<int64_t>(ch.size());
  conv_in = register_module("conv_in", Conv2d(cfg.latent_channels, ch[n - 1], 3, 1, 1, true, opt));
  mid_block = register_module("mid_block", UNetMidBlock2D(ch[n - 1], cfg.norm_num_groups, opt));
  auto ups = register_module("up_blocks", torch::nn::ModuleList());
  int64_t out_ch = ch[n - 1];
  for (int64_t i = 0; i < n; ++i) {
    const int64_t prev = out_ch;
    out_ch = ch[n - 1 - i];
    up_blocks.emplace_back(true, cfg.layers_per_block + 1, prev, out_ch, i != n - 1, cfg.norm_num_groups, opt);
    ups->push_back(up_blocks.back());
  }
  conv_norm_out = register_module("conv_norm_out", GroupNorm(cfg.norm_num_groups, ch[0], kVaeEps, opt));
  conv_out = register_module("conv_out", Conv2d(ch[0], cfg.out_channels, 3, 1, 1, true, opt));
}

torch::Tensor VAEDecoderImpl::forward(const torch::Tensor& z) {
  auto h = conv(conv_in, z);
  h = mid_block(h);
  for (auto& b : up_blocks) h = b(h);
  return conv(conv_out, group_norm_silu(conv_norm_out, h));
}

// ---------------------------------------------------------------------------------------------------------------
AutoencoderKLImpl::AutoencoderKLImpl(const AutoencoderKLConfig& cfg, const ModuleOptions& opt)
    : config(cfg), options(opt) {
  encoder = register_module("encoder", VAEEncoder(cfg, opt));
  decoder = register_module("decoder", VAEDecoder(cfg, opt));
  const int64_t L = cfg.latent_channels;
  quant_conv = register_module("quant_conv", Conv2d(2 * L, 2 * L, 1, 1, 0, true, opt));
  post_quant_conv = register_module("post_quant_conv", Conv2d(L, L, 1, 1, 0, true, opt));
}

torch::Dtype AutoencoderKLImpl::compute_dtype() const {
  return models::compute_dtype(options);
}

torch::Tensor AutoencoderKLImpl::decode(const torch::Tensor& z) {
  GILL_CHECK(z.dim() == 4 && z.size(1) == config.latent_channels, ErrorCode::kShapeMismatch,
             "VAE decode: latents must be [B, ", config.latent_channels, ", h, w], got ",
             detail::shape_str(z.sizes().vec()));
  auto h = conv(post_quant_conv, z.to(options.device, compute_dtype()).contiguous(conv_memory_format(options)));
  return decoder(h).contiguous();
}

std::pair<torch::Tensor, torch::Tensor> AutoencoderKLImpl::encode(const torch::Tensor& x) {
  GILL_CHECK(x.dim() == 4 && x.size(1) == config.in_channels, ErrorCode::kShapeMismatch,
             "VAE encode: image must be [B, ", config.in_channels, ", H, W], got ",
             detail::shape_str(x.sizes().vec()));
  auto moments = conv(quant_conv, encoder(x.to(options.device, compute_dtype()).contiguous(conv_memory_format(options))))
                     .contiguous();
  auto parts = moments.chunk(2, 1);
  return {parts[0], torch::clamp(parts[1], -30.0, 20.0)};
}

AutoencoderKL load_vae(const std::filesystem::path& dir, const ModuleOptions& opts) {
  return detail::with_context(str_cat("loading VAE from ", dir.string()), [&] {
    auto cfg = AutoencoderKLConfig::from_file(dir / "config.json");
    AutoencoderKL model(cfg, opts);
    auto weights = find_weights(dir, {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"});
    auto source = io::open_tensors(weights, opts.residency);
    io::LoadSpec spec;
    // diffusers <= 0.16 attention names, as in the published runwayml/stable-diffusion-v1-5 VAE.
    spec.aliases = {{".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}};
    io::load_module(*model, *source, spec, opts.dtype, opts.device);
    model->eval();
    return model;
  });
}

}  // namespace gill::models
