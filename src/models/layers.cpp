#include "models/layers.h"

namespace gill::models {

torch::MemoryFormat conv_memory_format(const ModuleOptions& opt) {
  return opt.device.is_cpu() && compute_dtype(opt) == torch::kBFloat16 ? torch::MemoryFormat::ChannelsLast
                                                                        : torch::MemoryFormat::Contiguous;
}

torch::Dtype compute_dtype(const ModuleOptions& opt) {
  if (!opt.device.is_cpu()) return opt.dtype;
  if (opt.dtype == torch::kBFloat16) return opt.compute.bf16 ? torch::kBFloat16 : torch::kFloat32;
  if (opt.dtype == torch::kFloat16) return torch::kFloat32;
  return opt.dtype;
}

LinearImpl::LinearImpl(int64_t in, int64_t out, bool has_bias, const ModuleOptions& opt)
    : in_features(in), out_features(out) {
  weight = register_parameter("weight", torch::empty({out, in}, opt.tensor()), false);
  if (has_bias) bias = register_parameter("bias", torch::empty({out}, opt.tensor()), false);
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) { return torch::nn::functional::linear(x, weight, bias); }

LayerNormImpl::LayerNormImpl(int64_t d, double e, bool affine, const ModuleOptions& opt) : dim(d), eps(e) {
  if (affine) {
    weight = register_parameter("weight", torch::empty({d}, opt.tensor()), false);
    bias = register_parameter("bias", torch::empty({d}, opt.tensor()), false);
  }
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) { return torch::layer_norm(x, {dim}, weight, bias, eps); }

EmbeddingImpl::EmbeddingImpl(int64_t n_rows, int64_t d, const ModuleOptions& opt) {
  weight = register_parameter("weight", torch::empty({n_rows, d}, opt.tensor()), false);
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) { return torch::embedding(weight, ids); }

Conv2dImpl::Conv2dImpl(int64_t in_ch, int64_t out_ch, int64_t k, int64_t s, int64_t p, bool has_bias,
                       const ModuleOptions& opt)
    : stride(s), padding(p) {
  weight = register_parameter("weight", torch::empty({out_ch, in_ch, k, k}, opt.tensor()), false);
  if (has_bias) bias = register_parameter("bias", torch::empty({out_ch}, opt.tensor()), false);
}

torch::Tensor Conv2dImpl::forward(const torch::Tensor& x) {
  return torch::conv2d(x, weight, bias, {stride, stride}, {padding, padding});
}

GroupNormImpl::GroupNormImpl(int64_t g, int64_t channels, double e, const ModuleOptions& opt) : groups(g), eps(e) {
  weight = register_parameter("weight", torch::empty({channels}, opt.tensor()), false);
  bias = register_parameter("bias", torch::empty({channels}, opt.tensor()), false);
}

torch::Tensor GroupNormImpl::forward(const torch::Tensor& x) { return torch::group_norm(x, groups, weight, bias, eps); }

void init_random(torch::nn::Module& module, uint64_t seed, double std) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& p : module.named_parameters(true)) {
    torch::Tensor t = p.value();
    if (!t.is_floating_point()) continue;
    const std::string& name = p.key();
    auto tmp = torch::empty(t.sizes(), torch::kFloat32);
    const bool is_norm_weight = t.dim() == 1 && name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0;
    if (is_norm_weight) {
      tmp.normal_(1.0, 0.1, gen);
    } else {
      tmp.normal_(0.0, std, gen);
    }
    t.set_data(tmp.to(t.device(), t.scalar_type()));
  }
}

}  // namespace gill::models
