// Ref: transformers v4.30.2 models/clip/modeling_clip.py CLIPAttention.forward.
#include "models/clip_attention.h"

#include <cmath>

namespace gill::models {

namespace {

// A GEMM of CLIPAttention: with gemm_fp32, fp32 on upcast operands and one rounding to the input dtype.
torch::Tensor clip_attention_linear(const torch::Tensor& x, const LinearImpl& l, bool gemm_fp32) {
  if (!gemm_fp32) return torch::nn::functional::linear(x, ops::as_compute(l.weight, x), ops::as_compute(l.bias, x));
  const auto dt = x.scalar_type();
  return torch::nn::functional::linear(x.to(torch::kFloat32), l.weight.to(torch::kFloat32),
                                       l.bias.defined() ? l.bias.to(torch::kFloat32) : torch::Tensor())
      .to(dt);
}

torch::Tensor clip_attention_matmul(const torch::Tensor& a, const torch::Tensor& b, bool gemm_fp32) {
  if (!gemm_fp32) return ops::matmul(a, b);
  return torch::matmul(a.to(torch::kFloat32), b.to(torch::kFloat32)).to(a.scalar_type());
}

}  // namespace

CLIPAttentionImpl::CLIPAttentionImpl(int64_t hidden_size, int64_t num_attention_heads, const ModuleOptions& opt)
    : n_heads(num_attention_heads),
      head_dim(hidden_size / num_attention_heads),
      scale(std::pow(double(hidden_size / num_attention_heads), -0.5)) {
  const int64_t D = hidden_size;
  k_proj = register_module("k_proj", Linear(D, D, true, opt));
  v_proj = register_module("v_proj", Linear(D, D, true, opt));
  q_proj = register_module("q_proj", Linear(D, D, true, opt));
  out_proj = register_module("out_proj", Linear(D, D, true, opt));
}

torch::Tensor CLIPAttentionImpl::forward(const torch::Tensor& x, bool gemm_fp32, const torch::Tensor& mask) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2);
  // q is scaled after its bias, as its own op (CLIPAttention.forward).
  auto q = clip_attention_linear(x, *q_proj, gemm_fp32) * scale;
  auto k = clip_attention_linear(x, *k_proj, gemm_fp32);
  auto v = clip_attention_linear(x, *v_proj, gemm_fp32);
  q = q.view({B, T, n_heads, head_dim}).transpose(1, 2);  // [B, H, T, hd]
  k = k.view({B, T, n_heads, head_dim}).transpose(1, 2);
  v = v.view({B, T, n_heads, head_dim}).transpose(1, 2);
  auto attn = clip_attention_matmul(q, k.transpose(-1, -2), gemm_fp32);  // [B, H, T, T]
  if (mask.defined()) attn = attn + mask;
  attn = torch::softmax(attn, -1);
  auto out = clip_attention_matmul(attn, v, gemm_fp32);  // [B, H, T, hd]
  out = out.transpose(1, 2).reshape({B, T, D});          // [B, T, D]
  return clip_attention_linear(out, *out_proj, gemm_fp32);
}

}  // namespace gill::models
