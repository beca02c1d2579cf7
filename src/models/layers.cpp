#include "models/layers.h"

#include <algorithm>
#include <fstream>

#include "util/cpu.h"
#include "util/error.h"
#include "util/json.h"

namespace gill::models {

using detail::str_cat;

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

// In x's dtype: bf16-stored weights widen to fp32 activations (the fp32 compute policy); same dtype: no copy.
torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  return torch::nn::functional::linear(x, ops::as_compute(weight, x), ops::as_compute(bias, x));
}

LayerNormImpl::LayerNormImpl(int64_t d, double e, bool affine, const ModuleOptions& opt) : dim(d), eps(e) {
  if (affine) {
    weight = register_parameter("weight", torch::empty({d}, opt.tensor()), false);
    bias = register_parameter("bias", torch::empty({d}, opt.tensor()), false);
  }
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) { return ops::layer_norm(x, dim, weight, bias, eps); }

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

torch::Tensor Conv2dImpl::forward(const torch::Tensor& x) { return ops::conv2d(x, weight, bias, stride, padding); }

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

namespace ops {

nlohmann::json read_config(const std::filesystem::path& path) {
  return util::read_json_file(path, str_cat("config file not found: ", path.string()));
}

std::filesystem::path find_weights(const std::filesystem::path& dir, const std::vector<std::string>& names) {
  std::string tried;
  for (const auto& n : names) {
    if (std::filesystem::exists(dir / n)) return dir / n;
    tried += (tried.empty() ? "" : ", ") + n;
  }
  detail::fail(ErrorCode::kNotFound, str_cat("no weights in ", dir.string(), " (looked for ", tried, ")"));
}

bool bf16_gemm_in_fp32(const torch::Tensor& x) {
  return x.scalar_type() == torch::kBFloat16 && x.is_cpu() && !util::cpu_features().avx512_core();
}

torch::Tensor matmul(const torch::Tensor& a, const torch::Tensor& b) {
  if (!bf16_gemm_in_fp32(a)) return torch::matmul(a, b);
  return torch::matmul(a.to(torch::kFloat32), b.to(torch::kFloat32)).to(a.scalar_type());
}

torch::Tensor conv2d(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, int64_t stride,
                     int64_t padding) {
  if (!bf16_gemm_in_fp32(x)) return torch::conv2d(x, w, b, {stride, stride}, {padding, padding});
  const auto b32 = b.defined() ? b.to(torch::kFloat32) : b;
  return torch::conv2d(x.to(torch::kFloat32), w.to(torch::kFloat32), b32, {stride, stride}, {padding, padding})
      .to(x.scalar_type())
      .contiguous(x.suggest_memory_format());
}

torch::Tensor linear(const Linear& m, const torch::Tensor& x) {
  return torch::nn::functional::linear(x, as_compute(m->weight, x), as_compute(m->bias, x));
}

torch::Tensor conv(const Conv2d& m, const torch::Tensor& x) {
  return conv2d(x, as_compute(m->weight, x), as_compute(m->bias, x), m->stride, m->padding);
}

torch::Tensor group_norm(const GroupNorm& m, const torch::Tensor& x) {
  // libtorch 1.13's channels-last GroupNorm kernel is wrong for bf16 beyond small sizes (max error 21 at
  // [1,512,128,128] against fp32; tests/module_vae.cpp Bf16ComputeWithinDocumentedBound caught it): channels-last
  // inputs are normalised in NCHW and handed back channels-last.
  if (x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(torch::MemoryFormat::ChannelsLast))
    return torch::group_norm(x.contiguous(), m->groups, as_compute(m->weight, x), as_compute(m->bias, x), m->eps)
        .contiguous(torch::MemoryFormat::ChannelsLast);
  return torch::group_norm(x, m->groups, as_compute(m->weight, x), as_compute(m->bias, x), m->eps);
}

torch::Tensor group_norm_silu(const GroupNorm& m, const torch::Tensor& x) {
  auto h = group_norm(m, x);
  return torch::silu_(h);
}

torch::Tensor layer_norm(const torch::Tensor& x, int64_t dim, const torch::Tensor& weight, const torch::Tensor& bias,
                         double eps) {
  const auto t = x.scalar_type();
  if (x.device().is_cpu() && (t == torch::kBFloat16 || t == torch::kHalf)) {
    // libtorch 1.13's reduced-precision CPU LayerNorm runs 8-11x slower than its fp32 kernel, conversions included
    // (AMD Zen 5: [257, 1024] 0.9 against 0.12 ms, [2, 4096, 320] 13.9 against 1.2 ms; docs/performance.md session
    // 11): normalise an fp32 copy and round once to the input dtype.
    const auto f = torch::kFloat32;
    return torch::layer_norm(x.to(f), {dim}, weight.defined() ? weight.to(f) : weight,
                             bias.defined() ? bias.to(f) : bias, eps)
        .to(t);
  }
  return torch::layer_norm(x, {dim}, as_compute(weight, x), as_compute(bias, x), eps);
}

torch::Tensor layer_norm(const LayerNorm& m, const torch::Tensor& x) {
  return layer_norm(x, m->dim, m->weight, m->bias, m->eps);
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t heads,
                        double scale, bool upcast_softmax) {
  const int64_t B = q.size(0), N = q.size(1), M = k.size(1), C = q.size(2);
  const int64_t d = C / heads;
  // head_to_batch_dim: [B,N,H*d] -> [B*H, N, d] (channel c = head*d + i)
  auto to_batch = [&](const torch::Tensor& t) {
    return t.reshape({B, t.size(1), heads, d}).permute({0, 2, 1, 3}).reshape({B * heads, t.size(1), d});
  };
  auto qb = to_batch(q), kt = to_batch(k).transpose(1, 2), vb = to_batch(v);  // kt: [B*H, d, M]
  const int64_t BH = B * heads;
  const bool fp32_gemm = bf16_gemm_in_fp32(q);
  constexpr int64_t kScoreBudget = int64_t(16) << 20;  // elements of one score chunk (64 MB in fp32)
  const int64_t rows = std::max<int64_t>(1, std::min<int64_t>(N, kScoreBudget / std::max<int64_t>(1, BH * M)));
  auto out = torch::empty({BH, N, d}, q.options());
  torch::Tensor scores, probs;
  for (int64_t r0 = 0; r0 < N; r0 += rows) {
    const int64_t n = std::min(rows, N - r0);
    auto qc = qb.narrow(1, r0, n);
    if (!scores.defined() || scores.size(1) != n) scores = torch::empty({BH, n, M}, q.options());
    if (fp32_gemm) {
      scores.copy_(torch::bmm(qc.to(torch::kFloat32), kt.to(torch::kFloat32)).mul_(scale));
    } else {
      torch::baddbmm_out(scores, scores, qc, kt, /*beta=*/0.0, /*alpha=*/scale);  // [BH, n, M]
    }
    if (upcast_softmax && scores.scalar_type() != torch::kFloat32) {
      probs = torch::softmax(scores.to(torch::kFloat32), -1).to(scores.scalar_type());
    } else {
      probs = torch::softmax(scores, -1);
    }
    if (fp32_gemm) {
      out.narrow(1, r0, n).copy_(torch::bmm(probs.to(torch::kFloat32), vb.to(torch::kFloat32)));
    } else if (n == N) {
      torch::bmm_out(out, probs, vb);
    } else {
      out.narrow(1, r0, n).copy_(torch::bmm(probs, vb));
    }
  }
  // batch_to_head_dim: [B*H, N, d] -> [B, N, H*d]
  return out.reshape({B, heads, N, d}).permute({0, 2, 1, 3}).reshape({B, N, C});
}

}  // namespace ops

}  // namespace gill::models
