// Ref: diffusers v0.17.1 models/resnet.py, attention.py, attention_processor.py, transformer_2d.py,
// unet_2d_blocks.py. See the header.
#include "models/unet_2d_blocks.h"

#include <fstream>

#include "util/error.h"

namespace gill::models {

using detail::str_cat;

using namespace ops;

// ---------------------------------------------------------------------------------------------------------------
ResnetBlock2DImpl::ResnetBlock2DImpl(int64_t in, int64_t out, int64_t temb, int64_t groups, double eps,
                                     double scale, const ModuleOptions& opt)
    : output_scale_factor(scale) {
  norm1 = register_module("norm1", GroupNorm(groups, in, eps, opt));
  conv1 = register_module("conv1", Conv2d(in, out, 3, 1, 1, true, opt));
  if (temb > 0) time_emb_proj = register_module("time_emb_proj", Linear(temb, out, true, opt));
  norm2 = register_module("norm2", GroupNorm(groups, out, eps, opt));
  conv2 = register_module("conv2", Conv2d(out, out, 3, 1, 1, true, opt));
  if (in != out) conv_shortcut = register_module("conv_shortcut", Conv2d(in, out, 1, 1, 0, true, opt));
}

torch::Tensor ResnetBlock2DImpl::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  auto h = conv(conv1, group_norm_silu(norm1, x));
  if (time_emb_proj && temb.defined()) {
    auto t = linear(time_emb_proj, torch::silu(temb));  // [B, Co]
    h.add_(t.unsqueeze(-1).unsqueeze(-1));
  }
  h = conv(conv2, group_norm_silu(norm2, h));
  auto shortcut = conv_shortcut ? conv(conv_shortcut, x) : x;
  h = shortcut + h;
  if (output_scale_factor != 1.0) h.div_(output_scale_factor);
  return h;
}

// ---------------------------------------------------------------------------------------------------------------
Downsample2DImpl::Downsample2DImpl(int64_t channels, int64_t pad, const ModuleOptions& opt) : padding(pad) {
  conv = register_module("conv", Conv2d(channels, channels, 3, 2, pad, true, opt));
}

torch::Tensor Downsample2DImpl::forward(const torch::Tensor& x) {
  if (padding == 0) return ops::conv(conv, torch::constant_pad_nd(x, {0, 1, 0, 1}, 0));
  return ops::conv(conv, x);
}

Upsample2DImpl::Upsample2DImpl(int64_t channels, const ModuleOptions& opt) {
  conv = register_module("conv", Conv2d(channels, channels, 3, 1, 1, true, opt));
}

torch::Tensor Upsample2DImpl::forward(const torch::Tensor& x, const std::vector<int64_t>& size) {
  torch::Tensor h;
  if (size.empty()) {
    h = torch::upsample_nearest2d(x, std::vector<int64_t>{x.size(2) * 2, x.size(3) * 2});
  } else {
    h = torch::upsample_nearest2d(x, size);
  }
  return ops::conv(conv, h);
}

// ---------------------------------------------------------------------------------------------------------------
AttentionImpl::AttentionImpl(int64_t query_dim, int64_t cross_dim, int64_t h, int64_t dh, const ModuleOptions& opt)
    : heads(h), dim_head(dh) {
  const int64_t inner = h * dh, kv_in = cross_dim > 0 ? cross_dim : query_dim;
  to_q = register_module("to_q", Linear(query_dim, inner, false, opt));
  to_k = register_module("to_k", Linear(kv_in, inner, false, opt));
  to_v = register_module("to_v", Linear(kv_in, inner, false, opt));
  auto to_out = register_module("to_out", torch::nn::ModuleList());
  out = Linear(inner, query_dim, true, opt);
  to_out->push_back(out);  // to_out.1 is Dropout(0): no parameters
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  const auto& c = context.defined() ? context : x;
  auto q = linear(to_q, x), k = linear(to_k, c), v = linear(to_v, c);
  auto o = attention(q, k, v, heads, 1.0 / std::sqrt(static_cast<double>(dim_head)), /*upcast_softmax=*/false);
  return linear(out, o);
}

namespace {
// GEGLU holder so the projection registers as `net.0.proj`.
class GEGLUImpl : public torch::nn::Module {
 public:
  GEGLUImpl(int64_t dim_in, int64_t dim_out, const ModuleOptions& opt) {
    proj = register_module("proj", Linear(dim_in, dim_out * 2, true, opt));
  }
  Linear proj{nullptr};
};
TORCH_MODULE(GEGLU);
}  // namespace

FeedForwardImpl::FeedForwardImpl(int64_t dim, const ModuleOptions& opt) {
  const int64_t inner = dim * 4;
  auto net = register_module("net", torch::nn::ModuleList());
  GEGLU geglu(dim, inner, opt);
  proj = geglu->proj;
  net->push_back(geglu);
  net->push_back(torch::nn::Dropout(0.0));  // net.1
  out = Linear(inner, dim, true, opt);
  net->push_back(out);  // net.2
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  auto hg = linear(proj, x);  // [B, N, 8C]
  auto parts = hg.chunk(2, -1);
  auto h = parts[0] * torch::gelu(parts[1]);  // value * GELU(gate), exact erf GELU
  return linear(out, h);
}

BasicTransformerBlockImpl::BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t dim_head,
                                                     int64_t cross_dim, const ModuleOptions& opt) {
  norm1 = register_module("norm1", LayerNorm(dim, 1e-5, true, opt));
  attn1 = register_module("attn1", Attention(dim, 0, heads, dim_head, opt));
  norm2 = register_module("norm2", LayerNorm(dim, 1e-5, true, opt));
  attn2 = register_module("attn2", Attention(dim, cross_dim, heads, dim_head, opt));
  norm3 = register_module("norm3", LayerNorm(dim, 1e-5, true, opt));
  ff = register_module("ff", FeedForward(dim, opt));
}

torch::Tensor BasicTransformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  auto h = attn1(layer_norm(norm1, x), torch::Tensor()) + x;
  h = attn2(layer_norm(norm2, h), context) + h;
  return ff(layer_norm(norm3, h)) + h;
}

Transformer2DModelImpl::Transformer2DModelImpl(int64_t heads, int64_t dim_head, int64_t in_channels,
                                               int64_t cross_dim, int64_t groups, bool linear_proj,
                                               const ModuleOptions& opt)
    : use_linear_projection(linear_proj) {
  const int64_t inner = heads * dim_head;
  norm = register_module("norm", GroupNorm(groups, in_channels, 1e-6, opt));
  if (linear_proj) {
    proj_in_lin = register_module("proj_in", Linear(in_channels, inner, true, opt));
  } else {
    proj_in_conv = register_module("proj_in", Conv2d(in_channels, inner, 1, 1, 0, true, opt));
  }
  auto blocks = register_module("transformer_blocks", torch::nn::ModuleList());
  block = BasicTransformerBlock(inner, heads, dim_head, cross_dim, opt);
  blocks->push_back(block);
  if (linear_proj) {
    proj_out_lin = register_module("proj_out", Linear(inner, in_channels, true, opt));
  } else {
    proj_out_conv = register_module("proj_out", Conv2d(inner, in_channels, 1, 1, 0, true, opt));
  }
}

torch::Tensor Transformer2DModelImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  const int64_t B = x.size(0), H = x.size(2), W = x.size(3);
  auto h = group_norm(norm, x);
  if (!use_linear_projection) h = conv(proj_in_conv, h);
  const int64_t inner = h.size(1);
  h = h.permute({0, 2, 3, 1}).reshape({B, H * W, inner});  // [B, HW, C], token n = y*W + x
  if (use_linear_projection) h = linear(proj_in_lin, h);
  h = block(h, context);
  if (use_linear_projection) h = linear(proj_out_lin, h);
  // [B, C, H, W] in the input's layout (channels-last under the bf16 policy: the permute is then free)
  h = h.reshape({B, H, W, h.size(2)}).permute({0, 3, 1, 2}).contiguous(x.suggest_memory_format());
  if (!use_linear_projection) h = conv(proj_out_conv, h);
  return h + x;
}

// ---------------------------------------------------------------------------------------------------------------
namespace {
Transformer2DModel make_transformer(int64_t channels, int64_t heads, const UNetBlockArgs& a,
                                    const ModuleOptions& opt) {
  GILL_CHECK(heads > 0 && channels % heads == 0, ErrorCode::kInvalidArgument, "attention_head_dim ", heads,
             " does not divide the block width ", channels);
  return Transformer2DModel(heads, channels / heads, channels, a.cross_attention_dim, a.groups,
                            a.use_linear_projection, opt);
}
}  // namespace

UNetDownBlockImpl::UNetDownBlockImpl(bool with_attention, int64_t n_layers, int64_t in, int64_t out, int64_t heads,
                                     bool add_downsample, const UNetBlockArgs& a, const ModuleOptions& opt) {
  auto res = register_module("resnets", torch::nn::ModuleList());
  torch::nn::ModuleList attn;
  if (with_attention) attn = register_module("attentions", torch::nn::ModuleList());
  for (int64_t i = 0; i < n_layers; ++i) {
    resnets.emplace_back(i == 0 ? in : out, out, a.temb_channels, a.groups, a.eps, 1.0, opt);
    res->push_back(resnets.back());
    if (with_attention) {
      attentions.push_back(make_transformer(out, heads, a, opt));
      attn->push_back(attentions.back());
    }
  }
  if (add_downsample) {
    auto ds = register_module("downsamplers", torch::nn::ModuleList());
    downsampler = Downsample2D(out, a.downsample_padding, opt);
    ds->push_back(downsampler);
  }
}

torch::Tensor UNetDownBlockImpl::forward(torch::Tensor h, const torch::Tensor& temb, const torch::Tensor& context,
                                         std::vector<torch::Tensor>& skips) {
  for (size_t i = 0; i < resnets.size(); ++i) {
    h = resnets[i](h, temb);
    if (!attentions.empty()) h = attentions[i](h, context);
    skips.push_back(h);
  }
  if (downsampler) {
    h = downsampler(h);
    skips.push_back(h);
  }
  return h;
}

UNetUpBlockImpl::UNetUpBlockImpl(bool with_attention, int64_t n_layers, int64_t in, int64_t out, int64_t prev_out,
                                 int64_t heads, bool add_upsample, const UNetBlockArgs& a, const ModuleOptions& opt) {
  auto res = register_module("resnets", torch::nn::ModuleList());
  torch::nn::ModuleList attn;
  if (with_attention) attn = register_module("attentions", torch::nn::ModuleList());
  for (int64_t i = 0; i < n_layers; ++i) {
    const int64_t skip_ch = (i == n_layers - 1) ? in : out;
    const int64_t res_in = (i == 0) ? prev_out : out;
    resnets.emplace_back(res_in + skip_ch, out, a.temb_channels, a.groups, a.eps, 1.0, opt);
    res->push_back(resnets.back());
    if (with_attention) {
      attentions.push_back(make_transformer(out, heads, a, opt));
      attn->push_back(attentions.back());
    }
  }
  if (add_upsample) {
    auto us = register_module("upsamplers", torch::nn::ModuleList());
    upsampler = Upsample2D(out, opt);
    us->push_back(upsampler);
  }
}

torch::Tensor UNetUpBlockImpl::forward(torch::Tensor h, const torch::Tensor& temb, const torch::Tensor& context,
                                       std::vector<torch::Tensor>& skips, bool forward_upsample_size) {
  for (size_t i = 0; i < resnets.size(); ++i) {
    GILL_CHECK(!skips.empty(), ErrorCode::kInternal, "UNet skip stack exhausted");
    auto skip = std::move(skips.back());
    skips.pop_back();
    h = resnets[i](torch::cat({h, skip}, 1), temb);  // hidden first, then the skip
    if (!attentions.empty()) h = attentions[i](h, context);
  }
  if (upsampler) {
    std::vector<int64_t> size;
    if (forward_upsample_size && !skips.empty()) size = {skips.back().size(2), skips.back().size(3)};
    h = upsampler(h, size);
  }
  return h;
}

UNetMidBlock2DCrossAttnImpl::UNetMidBlock2DCrossAttnImpl(int64_t ch, int64_t heads, double scale,
                                                         const UNetBlockArgs& a, const ModuleOptions& opt) {
  auto res = register_module("resnets", torch::nn::ModuleList());
  auto attn = register_module("attentions", torch::nn::ModuleList());
  resnets.emplace_back(ch, ch, a.temb_channels, a.groups, a.eps, scale, opt);
  res->push_back(resnets.back());
  attentions.push_back(make_transformer(ch, heads, a, opt));
  attn->push_back(attentions.back());
  resnets.emplace_back(ch, ch, a.temb_channels, a.groups, a.eps, scale, opt);
  res->push_back(resnets.back());
}

torch::Tensor UNetMidBlock2DCrossAttnImpl::forward(torch::Tensor h, const torch::Tensor& temb,
                                                   const torch::Tensor& context) {
  h = resnets[0](h, temb);
  for (size_t i = 0; i < attentions.size(); ++i) {
    h = attentions[i](h, context);
    h = resnets[i + 1](h, temb);
  }
  return h;
}

}  // namespace gill::models
