// GILLMapper (TextFcLayer in `gill_mapper` mode): the generation head from the [IMG] hidden states to the 77 x 768
// Stable Diffusion conditioning, with the torch.nn.Transformer pieces it is built from.
// Ref: kohjingyu/gill @4600b71 gill/layers.py (TextFcLayer);
//      torch 1.13.1 torch/nn/modules/transformer.py, torch/nn/functional.py (multi_head_attention_forward).
#pragma once
#include <torch/torch.h>

#include <cstdint>

#include "models/gill_args.h"
#include "models/layers.h"

namespace gill::models {

// torch.nn.MultiheadAttention (batch_first, biases, no masks). ckpt: in_proj_weight [3E, E], in_proj_bias [3E],
// out_proj.{weight,bias}.
class MultiheadAttentionImpl : public torch::nn::Module {
 public:
  MultiheadAttentionImpl(int64_t dim, int64_t n_heads, const ModuleOptions& opt);
  // q_in [B, Tq, E], kv_in [B, Tk, E] -> [B, Tq, E]
  torch::Tensor forward(const torch::Tensor& q_in, const torch::Tensor& kv_in);
  torch::Tensor in_proj_weight, in_proj_bias;
  Linear out_proj{nullptr};
  int64_t dim, n_heads;
};
TORCH_MODULE(MultiheadAttention);

// nn.TransformerEncoderLayer(norm_first=True, activation=relu, dropout=0).
class TransformerEncoderLayerImpl : public torch::nn::Module {
 public:
  TransformerEncoderLayerImpl(const GILLDims& d, const ModuleOptions& opt);
  torch::Tensor forward(torch::Tensor h);
  MultiheadAttention self_attn{nullptr};
  Linear linear1{nullptr}, linear2{nullptr};
  LayerNorm norm1{nullptr}, norm2{nullptr};
};
TORCH_MODULE(TransformerEncoderLayer);

// nn.TransformerDecoderLayer(norm_first=True, activation=relu, dropout=0); no masks (the reference passes none,
// so the 77 queries attend to each other without a causal mask).
class TransformerDecoderLayerImpl : public torch::nn::Module {
 public:
  TransformerDecoderLayerImpl(const GILLDims& d, const ModuleOptions& opt);
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& memory);
  MultiheadAttention self_attn{nullptr}, multihead_attn{nullptr};
  Linear linear1{nullptr}, linear2{nullptr};
  LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
};
TORCH_MODULE(TransformerDecoderLayer);

// nn.TransformerEncoder / nn.TransformerDecoder: the layer stack plus the final `norm` that nn.Transformer always
// builds and applies (also with norm_first).
class TransformerEncoderImpl : public torch::nn::Module {
 public:
  TransformerEncoderImpl(const GILLDims& d, const ModuleOptions& opt);
  torch::Tensor forward(torch::Tensor h);
  torch::nn::ModuleList layers{nullptr};  // of TransformerEncoderLayer
  LayerNorm norm{nullptr};
};
TORCH_MODULE(TransformerEncoder);

class TransformerDecoderImpl : public torch::nn::Module {
 public:
  TransformerDecoderImpl(const GILLDims& d, const ModuleOptions& opt);
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& memory);
  torch::nn::ModuleList layers{nullptr};  // of TransformerDecoderLayer
  LayerNorm norm{nullptr};
};
TORCH_MODULE(TransformerDecoder);

// nn.Transformer(src, tgt) with no masks: decoder(tgt, encoder(src)).
class TransformerImpl : public torch::nn::Module {
 public:
  TransformerImpl(const GILLDims& d, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& src, const torch::Tensor& tgt);  // -> [B, Tq, E]
  TransformerEncoder encoder{nullptr};
  TransformerDecoder decoder{nullptr};
};
TORCH_MODULE(Transformer);

// TextFcLayer, mode gill_mapper: x = fc(hidden + img_input_embs); y = tfm(x, query_embs); out = model(y).
class GILLMapperImpl : public torch::nn::Module {
 public:
  GILLMapperImpl(const GILLDims& d, const ModuleOptions& opt);
  // hidden [B, 8, D] (final hidden states at the [IMG] positions), img_embs [B, 8, D] (their input embeddings)
  // -> [B, n_queries, gen_emb_dim]
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& img_embs);
  Linear fc{nullptr};
  Transformer tfm{nullptr};
  Linear model{nullptr};     // ckpt: model (the output Linear)
  torch::Tensor query_embs;  // [1, n_queries, mapper_dim]
};
TORCH_MODULE(GILLMapper);

}  // namespace gill::models
