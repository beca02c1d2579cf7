// Shared building blocks. Unlike torch::nn's, these allocate their parameters with torch::empty in the run dtype
// and do NOT initialise them: every value comes from a checkpoint (io::load_module) or from the tiny-model kit's
// seeded initialiser (init_random). Building a 6.7B-parameter model therefore costs no time and no resident memory
// until the weights are loaded (mmap views replace the empty tensors).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/mapped_file.h"
#include "util/compute_policy.h"

namespace gill::models {

struct ModuleOptions {
  torch::Dtype dtype = torch::kFloat32;  // storage dtype of the parameters
  torch::Device device = torch::kCPU;
  // How bf16-stored weights compute on the CPU (util/compute_policy.h). The default is fp32 compute (results do
  // not depend on the CPU); engines pass the policy they decided.
  util::ComputePolicy compute = util::ComputePolicy{};
  // Where loaded weights live: mmap'd file pages (default) or anonymous memory (io/mapped_file.h).
  io::Residency residency = io::Residency::kMap;
  torch::TensorOptions tensor() const { return torch::TensorOptions().dtype(dtype).device(device); }
};

// The dtype a model's activations are computed in (the one place this is decided): the storage dtype on an
// accelerator and for fp32 storage; for reduced-precision storage on the CPU, bf16 when the policy computes in
// bf16 (bf16 storage only), else fp32.
torch::Dtype compute_dtype(const ModuleOptions& opt);
// The memory layout of convolution activations (the one place this is decided): channels-last (NHWC) under the
// bf16 policy on the CPU, where oneDNN's bf16 convolutions and libtorch's GroupNorm run natively in that layout
// (an NCHW bf16 conv pays a reorder of its input and output on every call: 1.5-2.4x slower at the VAE's shapes);
// contiguous NCHW otherwise (the fp32 path, unchanged). Shapes and results are the same; only strides differ.
// The VAE follows it (decode 512^2: 15.6 s NCHW -> 8.3 s channels-last, AMD EPYC with AVX512-BF16, 2 threads). The
// UNet stays NCHW: at its 64x64 latents channels-last measured slower (guided call 12.7 s -> 14.0 s, same run).
torch::MemoryFormat conv_memory_format(const ModuleOptions& opt);

// y = x W^T + b. weight [out, in], bias [out].
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;  // bias undefined when absent
  int64_t in_features, out_features;
};
TORCH_MODULE(Linear);

class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t dim, double eps, bool elementwise_affine, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;
  int64_t dim;
  double eps;
};
TORCH_MODULE(LayerNorm);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t n_rows, int64_t dim, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& ids);
  torch::Tensor weight;  // [n_rows, dim]
};
TORCH_MODULE(Embedding);

class Conv2dImpl : public torch::nn::Module {
 public:
  Conv2dImpl(int64_t in_ch, int64_t out_ch, int64_t kernel, int64_t stride, int64_t padding, bool bias,
             const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;
  int64_t stride, padding;
};
TORCH_MODULE(Conv2d);

class GroupNormImpl : public torch::nn::Module {
 public:
  GroupNormImpl(int64_t groups, int64_t channels, double eps, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;
  int64_t groups;
  double eps;
};
TORCH_MODULE(GroupNorm);

// Fills every floating parameter of `module` with seeded random values suitable for a tiny test model
// (normal(0, std) for matrices, ones/zeros-ish for norms, small values for biases) and integer buffers untouched.
void init_random(torch::nn::Module& module, uint64_t seed, double std = 0.02);

// ---- Helpers shared by the models (CLIP text, UNet, VAE): configs and weight files, and functional forms of the
// layers above that compute in the activation dtype (the weights converted right before their op).
namespace ops {
// Reads a config.json (kNotFound / kFormat with the path).
nlohmann::json read_config(const std::filesystem::path& path);
// The file holding a diffusers/transformers component's weights in `dir` (kNotFound listing what was tried).
std::filesystem::path find_weights(const std::filesystem::path& dir, const std::vector<std::string>& names);
// Whether a bf16 GEMM on `x` must run on fp32 copies of its operands (the one place this is decided). libtorch 1.13
// hands bf16 matmul/bmm/baddbmm/conv to oneDNN (bf16 inputs, fp32 accumulation, bf16 result) only on CPUs with
// AVX-512 (F/BW/VL/DQ); elsewhere its own fallback kernels accumulate in bf16 (measured on an AVX2-only AMD EPYC:
// matmul/bmm 8% max error at K = 1024 and 12% at K = 4096; a 3x3 conv over 8 channels 1.7%). There the GEMM is
// done in fp32 and rounded once to bf16: the same contract as oneDNN's, so the bf16 policy means the same numbers
// on every CPU. (Linear is not affected: libtorch's transposed-weight path accumulates in fp32.)
bool bf16_gemm_in_fp32(const torch::Tensor& x);
// torch::matmul / torch::conv2d with that rule.
torch::Tensor matmul(const torch::Tensor& a, const torch::Tensor& b);
torch::Tensor conv2d(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, int64_t stride,
                     int64_t padding);
// `w` converted to x's dtype when they differ (undefined stays undefined).
inline torch::Tensor as_compute(const torch::Tensor& w, const torch::Tensor& x) {
  return (!w.defined() || w.scalar_type() == x.scalar_type()) ? w : w.to(x.scalar_type());
}
torch::Tensor linear(const Linear& m, const torch::Tensor& x);
torch::Tensor conv(const Conv2d& m, const torch::Tensor& x);
torch::Tensor group_norm(const GroupNorm& m, const torch::Tensor& x);
// GroupNorm followed by SiLU, in place on the normalised tensor (one less full-size temporary).
torch::Tensor group_norm_silu(const GroupNorm& m, const torch::Tensor& x);
// LayerNorm over the last `dim` features. bf16/fp16 inputs on the CPU are normalised in fp32 and rounded once to
// their dtype (faster there than libtorch's reduced-precision kernel, and one rounding).
torch::Tensor layer_norm(const torch::Tensor& x, int64_t dim, const torch::Tensor& weight, const torch::Tensor& bias,
                         double eps);
torch::Tensor layer_norm(const LayerNorm& m, const torch::Tensor& x);

// Multi-head attention core as diffusers' AttnProcessor computes it: q [B,N,H*d], k/v [B,M,H*d] ->
// [B,N,H*d]; scores = baddbmm(q, k^T, beta 0, alpha scale), softmax over keys (in fp32 when upcast_softmax),
// probs @ v. Query rows are processed in chunks so the score matrix never exceeds ~64 MB (the 4096x4096
// self-attention at 64x64 latents would otherwise take 1 GiB per layer); each row's softmax is unchanged.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t heads,
                        double scale, bool upcast_softmax);
}  // namespace ops

}  // namespace gill::models
