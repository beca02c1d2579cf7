#include "peers.h"

#include <cmath>
#include <fstream>

#include "util/error.h"

namespace gill::cli::bench {

torch::Tensor plain_clip_forward(const std::map<std::string, torch::Tensor>& w, const models::CLIPVisionConfig& c,
                                 const torch::Tensor& pixels) {
  const auto P = [&](const std::string& k) -> const torch::Tensor& { return w.at("vision_model." + k); };
  const int64_t D = c.hidden_size, H = c.num_attention_heads, hd = c.head_dim();
  const auto px = pixels.to(P("embeddings.patch_embedding.weight").scalar_type());
  const int64_t B = px.size(0);
  auto x = torch::conv2d(px, P("embeddings.patch_embedding.weight"), {}, c.patch_size).flatten(2).transpose(1, 2);
  x = torch::cat({P("embeddings.class_embedding").expand({B, 1, D}), x}, 1) + P("embeddings.position_embedding.weight");
  auto ln = [&](const torch::Tensor& t, const std::string& k) {
    return torch::layer_norm(t, {D}, P(k + ".weight"), P(k + ".bias"), c.layer_norm_eps);
  };
  auto lin = [&](const torch::Tensor& t, const std::string& k) {
    return torch::linear(t, P(k + ".weight"), P(k + ".bias"));
  };
  x = ln(x, "pre_layrnorm");
  const double scale = 1.0 / std::sqrt(double(hd));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string L = "encoder.layers." + std::to_string(i) + ".";
    auto h = ln(x, L + "layer_norm1");
    const int64_t T = h.size(1);
    auto heads = [&](const torch::Tensor& t) { return t.view({B, T, H, hd}).transpose(1, 2); };
    auto q = heads(lin(h, L + "self_attn.q_proj") * scale), k = heads(lin(h, L + "self_attn.k_proj")),
         v = heads(lin(h, L + "self_attn.v_proj"));
    auto a = torch::softmax(torch::matmul(q, k.transpose(-1, -2)), -1);
    auto o = torch::matmul(a, v).transpose(1, 2).reshape({B, T, D});
    x = x + lin(o, L + "self_attn.out_proj");
    h = lin(ln(x, L + "layer_norm2"), L + "mlp.fc1");
    h = h * torch::sigmoid(1.702 * h);  // quick_gelu
    x = x + lin(h, L + "mlp.fc2");
  }
  return x;
}

std::map<std::string, torch::Tensor> parameter_copies(torch::nn::Module& m, torch::Dtype dtype) {
  std::map<std::string, torch::Tensor> w;
  for (const auto& kv : m.named_parameters()) w[kv.key()] = kv.value().to(dtype, /*non_blocking=*/false, /*copy=*/true);
  return w;
}

DiffusersPeer read_diffusers_peer(const std::vector<std::string>& result_files) {
  DiffusersPeer p;
  p.unet_call_s = p.vae_decode_s = INFINITY;
  for (const auto& path : result_files) {
    std::ifstream f(path);
    GILL_CHECK(f.good(), ErrorCode::kNotFound, "diffusers peer results: cannot open ", path);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(f);
    } catch (const std::exception& e) {
      detail::fail(ErrorCode::kFormat, detail::str_cat("diffusers peer results ", path, ": not JSON (", e.what(), ")"));
    }
    nlohmann::json used;
    for (const char* dt : {"fp32", "bf16"}) {
      for (const char* stage : {"unet", "vae_decode"}) {
        const std::string key = std::string(stage) + "_" + dt;
        if (!j.contains(key)) continue;
        GILL_CHECK(j[key].is_object() && j[key].contains("min_s") && j[key]["min_s"].is_number(), ErrorCode::kFormat,
                   "diffusers peer results ", path, ": ", key, ".min_s is missing or not a number");
        const double s = j[key]["min_s"].get<double>();
        GILL_CHECK(s > 0, ErrorCode::kFormat, "diffusers peer results ", path, ": ", key, ".min_s = ", s);
        used[key] = s;
        double& best = std::string(stage) == "unet" ? p.unet_call_s : p.vae_decode_s;
        std::string& best_dt = std::string(stage) == "unet" ? p.unet_dtype : p.vae_dtype;
        if (s < best) best = s, best_dt = dt;
      }
    }
    GILL_CHECK(!used.empty(), ErrorCode::kFormat, "diffusers peer results ", path,
               ": none of unet_fp32, unet_bf16, vae_decode_fp32, vae_decode_bf16 is there");
    p.sources.push_back({{"file", path},
                         {"min_s", used},
                         {"diffusers_version", j.value("diffusers_version", "")},
                         {"machine", j.value("machine", nlohmann::json())}});
  }
  GILL_CHECK(std::isfinite(p.unet_call_s), ErrorCode::kInvalidArgument,
             "diffusers peer results: no UNet time (unet_fp32 or unet_bf16) in the given files");
  GILL_CHECK(std::isfinite(p.vae_decode_s), ErrorCode::kInvalidArgument,
             "diffusers peer results: no VAE time (vae_decode_fp32 or vae_decode_bf16) in the given files");
  return p;
}

}  // namespace gill::cli::bench
