// Ref: kohjingyu/gill @4600b71 gill/layers.py (TextFcLayer); torch 1.13.1 nn.Transformer,
// nn.MultiheadAttention (F.multi_head_attention_forward, _scaled_dot_product_attention).
#include "models/gill_mapper.h"

#include <cmath>

#include "util/error.h"

namespace gill::models {

using detail::str_cat;

MultiheadAttentionImpl::MultiheadAttentionImpl(int64_t dim_, int64_t n_heads_, const ModuleOptions& opt)
    : dim(dim_), n_heads(n_heads_) {
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * dim, dim}, opt.tensor()), false);
  in_proj_bias = register_parameter("in_proj_bias", torch::empty({3 * dim}, opt.tensor()), false);
  out_proj = register_module("out_proj", Linear(dim, dim, true, opt));
}

torch::Tensor MultiheadAttentionImpl::forward(const torch::Tensor& q_in, const torch::Tensor& kv_in) {
  const int64_t B = q_in.size(0), Tq = q_in.size(1), Tk = kv_in.size(1), hd = dim / n_heads;
  auto w = ops::as_compute(in_proj_weight, q_in).chunk(3, 0);
  auto b = ops::as_compute(in_proj_bias, q_in).chunk(3, 0);
  auto q = torch::nn::functional::linear(q_in, w[0], b[0]);   // [B, Tq, E]
  auto k = torch::nn::functional::linear(kv_in, w[1], b[1]);  // [B, Tk, E]
  auto v = torch::nn::functional::linear(kv_in, w[2], b[2]);
  q = q.view({B, Tq, n_heads, hd}).transpose(1, 2);  // [B, H, Tq, hd]
  k = k.view({B, Tk, n_heads, hd}).transpose(1, 2);
  v = v.view({B, Tk, n_heads, hd}).transpose(1, 2);
  // torch 1.13 _scaled_dot_product_attention: q / sqrt(head_dim), then q k^T, softmax, @ v.
  q = q / std::sqrt(static_cast<double>(hd));
  auto attn = torch::softmax(ops::matmul(q, k.transpose(-2, -1)), -1);  // [B, H, Tq, Tk]
  auto o = ops::matmul(attn, v).transpose(1, 2).reshape({B, Tq, dim});  // [B, Tq, E]
  return out_proj(o);
}

TransformerEncoderLayerImpl::TransformerEncoderLayerImpl(const GILLDims& d, const ModuleOptions& opt) {
  self_attn = register_module("self_attn", MultiheadAttention(d.mapper_dim, d.mapper_heads, opt));
  linear1 = register_module("linear1", Linear(d.mapper_dim, d.mapper_ffn, true, opt));
  linear2 = register_module("linear2", Linear(d.mapper_ffn, d.mapper_dim, true, opt));
  norm1 = register_module("norm1", LayerNorm(d.mapper_dim, 1e-5, true, opt));
  norm2 = register_module("norm2", LayerNorm(d.mapper_dim, 1e-5, true, opt));
}

torch::Tensor TransformerEncoderLayerImpl::forward(torch::Tensor h) {
  auto x = norm1(h);
  h = h + self_attn(x, x);
  h = h + linear2(torch::relu(linear1(norm2(h))));
  return h;
}

TransformerDecoderLayerImpl::TransformerDecoderLayerImpl(const GILLDims& d, const ModuleOptions& opt) {
  self_attn = register_module("self_attn", MultiheadAttention(d.mapper_dim, d.mapper_heads, opt));
  multihead_attn = register_module("multihead_attn", MultiheadAttention(d.mapper_dim, d.mapper_heads, opt));
  linear1 = register_module("linear1", Linear(d.mapper_dim, d.mapper_ffn, true, opt));
  linear2 = register_module("linear2", Linear(d.mapper_ffn, d.mapper_dim, true, opt));
  norm1 = register_module("norm1", LayerNorm(d.mapper_dim, 1e-5, true, opt));
  norm2 = register_module("norm2", LayerNorm(d.mapper_dim, 1e-5, true, opt));
  norm3 = register_module("norm3", LayerNorm(d.mapper_dim, 1e-5, true, opt));
}

torch::Tensor TransformerDecoderLayerImpl::forward(torch::Tensor h, const torch::Tensor& memory) {
  auto x = norm1(h);
  h = h + self_attn(x, x);
  h = h + multihead_attn(norm2(h), memory);  // keys/values: memory as-is (already encoder.norm-ed)
  h = h + linear2(torch::relu(linear1(norm3(h))));
  return h;
}

TransformerEncoderImpl::TransformerEncoderImpl(const GILLDims& d, const ModuleOptions& opt) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < d.n_encoder_layers; ++i) layers->push_back(TransformerEncoderLayer(d, opt));
  norm = register_module("norm", LayerNorm(d.mapper_dim, 1e-5, true, opt));
}

torch::Tensor TransformerEncoderImpl::forward(torch::Tensor h) {
  for (const auto& layer : *layers) h = layer->as<TransformerEncoderLayer>()->forward(h);
  return norm(h);
}

TransformerDecoderImpl::TransformerDecoderImpl(const GILLDims& d, const ModuleOptions& opt) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < d.n_decoder_layers; ++i) layers->push_back(TransformerDecoderLayer(d, opt));
  norm = register_module("norm", LayerNorm(d.mapper_dim, 1e-5, true, opt));
}

torch::Tensor TransformerDecoderImpl::forward(torch::Tensor h, const torch::Tensor& memory) {
  for (const auto& layer : *layers) h = layer->as<TransformerDecoderLayer>()->forward(h, memory);
  return norm(h);
}

TransformerImpl::TransformerImpl(const GILLDims& d, const ModuleOptions& opt) {
  encoder = register_module("encoder", TransformerEncoder(d, opt));
  decoder = register_module("decoder", TransformerDecoder(d, opt));
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& src, const torch::Tensor& tgt) {
  return decoder(tgt, encoder(src));
}

GILLMapperImpl::GILLMapperImpl(const GILLDims& d, const ModuleOptions& opt) {
  fc = register_module("fc", Linear(d.lm_hidden, d.mapper_dim, true, opt));
  tfm = register_module("tfm", Transformer(d, opt));
  model = register_module("model", Linear(d.mapper_dim, d.gen_emb_dim, true, opt));
  query_embs = register_parameter("query_embs", torch::empty({1, d.n_queries, d.mapper_dim}, opt.tensor()), false);
}

torch::Tensor GILLMapperImpl::forward(const torch::Tensor& hidden, const torch::Tensor& img_embs) {
  auto x = fc(hidden + img_embs);                   // [B, 8, M]
  auto q = ops::as_compute(query_embs, x).expand({x.size(0), -1, -1});  // [B, Q, M]
  return model(tfm(x, q));                          // [B, Q, gen_emb_dim]
}

}  // namespace gill::models
