// CLIPAttention, shared by the vision tower (clip_vision.h) and the text encoder (clip_text.h): q/k/v/out
// projections under the checkpoint names, q scaled after its bias as its own op, softmax(q k^T + mask) v per head.
// Ref: transformers v4.30.2 models/clip/modeling_clip.py CLIPAttention.
#pragma once
#include <torch/torch.h>

#include <cstdint>

#include "models/layers.h"

namespace gill::models {

class CLIPAttentionImpl : public torch::nn::Module {
 public:
  CLIPAttentionImpl(int64_t hidden_size, int64_t num_attention_heads, const ModuleOptions& opt);
  // [B, T, D] -> [B, T, D]. `mask`: additive, broadcast to [B, H, T, T] (the text tower's causal mask), or
  // undefined (the vision tower). With gemm_fp32 every GEMM runs in fp32 on upcast operands and the result is
  // rounded once to x's dtype (clip_vision.h); otherwise weights are converted to x's dtype (ops::linear).
  torch::Tensor forward(const torch::Tensor& x, bool gemm_fp32, const torch::Tensor& mask = {});
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
  int64_t n_heads, head_dim;
  double scale;  // head_dim ** -0.5
};
TORCH_MODULE(CLIPAttention);

}  // namespace gill::models
