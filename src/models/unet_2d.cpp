// Ref: diffusers v0.17.1 models/unet_2d_condition.py (UNet2DConditionModel.__init__/forward),
// models/embeddings.py (get_timestep_embedding, TimestepEmbedding).
#include "models/unet_2d.h"

#include <cmath>

#include "io/loader.h"
#include "io/tensor_source.h"
#include "util/error.h"
#include "util/json.h"

namespace gill::models {

using detail::str_cat;
using namespace ops;

namespace {

// Keys whose non-default values select code paths SD 1.x does not use.
void check_inactive(const nlohmann::json& j, const std::string& where) {
  auto bad = [&](const char* key, const std::string& why) {
    detail::fail(ErrorCode::kUnsupported,
                 str_cat(where, ": ", key, " = ", j.at(key).dump(), " is not supported (", why, ")"));
  };
  for (const char* key : {"class_embed_type", "addition_embed_type", "encoder_hid_dim", "time_cond_proj_dim",
                          "num_class_embeds", "time_embedding_act_fn", "timestep_post_act", "time_embedding_dim"}) {
    if (j.contains(key) && !j.at(key).is_null()) bad(key, "SD 1.x leaves it null");
  }
  for (const char* key : {"only_cross_attention", "dual_cross_attention", "class_embeddings_concat"}) {
    if (j.contains(key) && j.at(key).is_boolean() && j.at(key).get<bool>()) bad(key, "SD 1.x uses false");
  }
  if (j.contains("only_cross_attention") && j.at("only_cross_attention").is_array()) {
    for (const auto& v : j.at("only_cross_attention"))
      if (util::read_value<bool>(v, "only_cross_attention", where)) bad("only_cross_attention", "SD 1.x uses false");
  }
  auto want_str = [&](const char* key, const char* value) {
    std::string got = value;
    if (util::read_field(j, key, got, where) && got != value) bad(key, str_cat("only \"", value, "\" is implemented"));
  };
  want_str("resnet_time_scale_shift", "default");
  want_str("time_embedding_type", "positional");
  want_str("act_fn", "silu");
  want_str("attention_type", "default");
  if (j.contains("transformer_layers_per_block") && !j.at("transformer_layers_per_block").is_null() &&
      !(j.at("transformer_layers_per_block").is_number() && j.at("transformer_layers_per_block").get<double>() == 1.0))
    bad("transformer_layers_per_block", "only 1 is implemented");
  double scale = 1.0;
  if (util::read_field(j, "resnet_out_scale_factor", scale, where) && scale != 1.0)
    bad("resnet_out_scale_factor", "only 1.0 is implemented");
}

}  // namespace

UNet2DConditionConfig UNet2DConditionConfig::from_json(const nlohmann::json& j, const std::string& where) {
  UNet2DConditionConfig c;
  try {
    check_inactive(j, where);
    util::json_get_if(j, "in_channels", c.in_channels);
    util::json_get_if(j, "out_channels", c.out_channels);
    util::json_get_if(j, "sample_size", c.sample_size);
    util::json_get_if(j, "block_out_channels", c.block_out_channels);
    util::json_get_if(j, "down_block_types", c.down_block_types);
    util::json_get_if(j, "up_block_types", c.up_block_types);
    util::json_get_if(j, "mid_block_type", c.mid_block_type);
    util::json_get_if(j, "layers_per_block", c.layers_per_block);
    util::json_get_if(j, "cross_attention_dim", c.cross_attention_dim);
    util::json_get_if(j, "norm_num_groups", c.norm_num_groups);
    util::json_get_if(j, "norm_eps", c.norm_eps);
    util::json_get_if(j, "flip_sin_to_cos", c.flip_sin_to_cos);
    util::json_get_if(j, "freq_shift", c.freq_shift);
    util::json_get_if(j, "downsample_padding", c.downsample_padding);
    util::json_get_if(j, "mid_block_scale_factor", c.mid_block_scale_factor);
    util::json_get_if(j, "use_linear_projection", c.use_linear_projection);
    util::json_get_if(j, "center_input_sample", c.center_input_sample);
    util::json_get_if(j, "act_fn", c.act_fn);
    util::json_get_if(j, "conv_in_kernel", c.conv_in_kernel);
    util::json_get_if(j, "conv_out_kernel", c.conv_out_kernel);
    // attention_head_dim: an int or one per block. A non-null num_attention_heads (newer configs) wins.
    const char* heads_key = (j.contains("num_attention_heads") && !j.at("num_attention_heads").is_null())
                                ? "num_attention_heads"
                                : "attention_head_dim";
    if (j.contains(heads_key) && !j.at(heads_key).is_null()) {
      const auto& h = j.at(heads_key);
      if (h.is_array()) {
        c.attention_head_dim = util::json_get<std::vector<int64_t>>(h);
      } else {
        c.attention_head_dim.assign(c.block_out_channels.size(), util::json_get<int64_t>(h));
      }
    } else {
      c.attention_head_dim.assign(c.block_out_channels.size(), 8);
    }
  } catch (const nlohmann::json::exception& e) {
    detail::fail(ErrorCode::kFormat, str_cat(where, ": ", e.what()));
  }
  const size_t n = c.block_out_channels.size();
  GILL_CHECK(n > 0 && c.down_block_types.size() == n && c.up_block_types.size() == n &&
                 c.attention_head_dim.size() == n,
             ErrorCode::kFormat, where, ": block_out_channels, down_block_types, up_block_types and ",
             "attention_head_dim must have the same length (", n, ", ", c.down_block_types.size(), ", ",
             c.up_block_types.size(), ", ", c.attention_head_dim.size(), ")");
  for (const auto& t : c.down_block_types)
    GILL_CHECK(t == "CrossAttnDownBlock2D" || t == "DownBlock2D", ErrorCode::kUnsupported, where,
               ": down block type '", t, "' is not supported (CrossAttnDownBlock2D, DownBlock2D)");
  for (const auto& t : c.up_block_types)
    GILL_CHECK(t == "CrossAttnUpBlock2D" || t == "UpBlock2D", ErrorCode::kUnsupported, where, ": up block type '", t,
               "' is not supported (CrossAttnUpBlock2D, UpBlock2D)");
  GILL_CHECK(c.mid_block_type == "UNetMidBlock2DCrossAttn", ErrorCode::kUnsupported, where, ": mid_block_type '",
             c.mid_block_type, "' is not supported (UNetMidBlock2DCrossAttn)");
  GILL_CHECK(c.conv_in_kernel % 2 == 1 && c.conv_out_kernel % 2 == 1, ErrorCode::kUnsupported, where,
             ": conv_in_kernel/conv_out_kernel must be odd");
  return c;
}

UNet2DConditionConfig UNet2DConditionConfig::from_file(const std::filesystem::path& path) {
  return from_json(read_config(path), path.string());
}

UNet2DConditionModelImpl::UNet2DConditionModelImpl(const UNet2DConditionConfig& cfg, const ModuleOptions& opt)
    : config(cfg), options(opt) {
  const auto& ch = cfg.block_out_channels;
  const int64_t n = static_cast<int64_t>(ch.size());
  const int64_t temb_dim = ch[0] * 4;
  conv_in = register_module(
      "conv_in", Conv2d(cfg.in_channels, ch[0], cfg.conv_in_kernel, 1, (cfg.conv_in_kernel - 1) / 2, true, opt));
  auto te = register_module("time_embedding", std::make_shared<torch::nn::Module>());
  time_linear_1 = te->register_module("linear_1", Linear(ch[0], temb_dim, true, opt));
  time_linear_2 = te->register_module("linear_2", Linear(temb_dim, temb_dim, true, opt));

  UNetBlockArgs a;
  a.temb_channels = temb_dim;
  a.groups = cfg.norm_num_groups;
  a.eps = cfg.norm_eps;
  a.cross_attention_dim = cfg.cross_attention_dim;
  a.use_linear_projection = cfg.use_linear_projection;
  a.downsample_padding = cfg.downsample_padding;

  auto downs = register_module("down_blocks", torch::nn::ModuleList());
  int64_t out_ch = ch[0];
  for (int64_t i = 0; i < n; ++i) {
    const int64_t in_ch = out_ch;
    out_ch = ch[i];
    const bool is_final = i == n - 1;
    down_blocks.emplace_back(cfg.down_block_types[i] == "CrossAttnDownBlock2D", cfg.layers_per_block, in_ch, out_ch,
                             cfg.attention_head_dim[i], !is_final, a, opt);
    downs->push_back(down_blocks.back());
  }
  mid_block = register_module("mid_block", UNetMidBlock2DCrossAttn(ch[n - 1], cfg.attention_head_dim[n - 1],
                                                                   cfg.mid_block_scale_factor, a, opt));
  auto ups = register_module("up_blocks", torch::nn::ModuleList());
  out_ch = ch[n - 1];
  for (int64_t i = 0; i < n; ++i) {
    const bool is_final = i == n - 1;
    const int64_t prev_out = out_ch;
    out_ch = ch[n - 1 - i];
    const int64_t in_ch = ch[n - 1 - std::min(i + 1, n - 1)];
    up_blocks.emplace_back(cfg.up_block_types[i] == "CrossAttnUpBlock2D", cfg.layers_per_block + 1, in_ch, out_ch,
                           prev_out, cfg.attention_head_dim[n - 1 - i], !is_final, a, opt);
    ups->push_back(up_blocks.back());
  }
  conv_norm_out = register_module("conv_norm_out", GroupNorm(cfg.norm_num_groups, ch[0], cfg.norm_eps, opt));
  conv_out = register_module("conv_out", Conv2d(ch[0], cfg.out_channels, cfg.conv_out_kernel, 1,
                                                (cfg.conv_out_kernel - 1) / 2, true, opt));
}

torch::Dtype UNet2DConditionModelImpl::compute_dtype() const {
  return models::compute_dtype(options);
}

torch::Tensor UNet2DConditionModelImpl::time_proj(const torch::Tensor& timesteps) const {
  // Ref: get_timestep_embedding. exponent = -ln(10000) * arange(half) / (half - shift), all float32.
  const int64_t dim = config.block_out_channels[0], half = dim / 2;
  auto exponent = torch::arange(half, torch::TensorOptions().dtype(torch::kFloat32).device(timesteps.device())) *
                  (-std::log(10000.0));
  exponent = exponent / (static_cast<double>(half) - config.freq_shift);
  auto freqs = torch::exp(exponent);
  auto arg = timesteps.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);  // [B, half]
  auto emb = config.flip_sin_to_cos ? torch::cat({torch::cos(arg), torch::sin(arg)}, -1)
                                    : torch::cat({torch::sin(arg), torch::cos(arg)}, -1);
  if (dim % 2 == 1) emb = torch::constant_pad_nd(emb, {0, 1, 0, 0}, 0);
  return emb;  // [B, dim]
}

torch::Tensor UNet2DConditionModelImpl::forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                                                const torch::Tensor& encoder_hidden_states) {
  GILL_CHECK(sample.dim() == 4 && sample.size(1) == config.in_channels, ErrorCode::kShapeMismatch,
             "UNet: sample must be [B, ", config.in_channels, ", h, w], got ",
             detail::shape_str(sample.sizes().vec()));
  GILL_CHECK(encoder_hidden_states.dim() == 3 && encoder_hidden_states.size(0) == sample.size(0) &&
                 encoder_hidden_states.size(2) == config.cross_attention_dim,
             ErrorCode::kShapeMismatch, "UNet: encoder_hidden_states must be [", sample.size(0), ", L, ",
             config.cross_attention_dim, "], got ", detail::shape_str(encoder_hidden_states.sizes().vec()));
  GILL_CHECK(timestep.dim() == 0 || (timestep.dim() == 1 && (timestep.size(0) == sample.size(0) ||
                                                             timestep.size(0) == 1)),
             ErrorCode::kShapeMismatch, "UNet: timestep must be a scalar or [", sample.size(0), "], got ",
             detail::shape_str(timestep.sizes().vec()));
  const auto dt = compute_dtype();
  const int64_t B = sample.size(0);
  auto x = sample.to(options.device, dt);
  auto ctx = encoder_hidden_states.to(options.device, dt);
  auto t = timestep.to(options.device).reshape({-1}).expand({B});

  // Sizes not divisible by 2^(number of upsamplers) need explicit upsample sizes.
  const int64_t factor = int64_t(1) << (config.block_out_channels.size() - 1);
  const bool forward_upsample_size = x.size(2) % factor != 0 || x.size(3) % factor != 0;

  if (config.center_input_sample) x = 2 * x - 1.0;
  auto temb = time_proj(t).to(dt);
  temb = linear(time_linear_2, torch::silu(linear(time_linear_1, temb)));  // [B, 4*C0]

  auto h = conv(conv_in, x);
  std::vector<torch::Tensor> skips{h};
  for (auto& blk : down_blocks) h = blk(h, temb, ctx, skips);
  h = mid_block(h, temb, ctx);
  for (auto& blk : up_blocks) h = blk(h, temb, ctx, skips, forward_upsample_size);
  return conv(conv_out, group_norm_silu(conv_norm_out, h));
}

UNet2DConditionModel load_unet(const std::filesystem::path& dir, const ModuleOptions& opts) {
  return detail::with_context(str_cat("loading UNet from ", dir.string()), [&] {
    auto cfg = UNet2DConditionConfig::from_file(dir / "config.json");
    UNet2DConditionModel model(cfg, opts);
    auto weights =
        find_weights(dir, {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"});
    auto source = io::open_tensors(weights, opts.residency);
    io::LoadSpec spec;
    io::load_module(*model, *source, spec, opts.dtype, opts.device);
    model->eval();
    return model;
  });
}

}  // namespace gill::models
