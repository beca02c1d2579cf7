// Ref: transformers v4.30.2 models/clip/modeling_clip.py (CLIPTextTransformer and its parts).
#include "models/clip_text.h"

#include <cmath>
#include <limits>

#include "io/loader.h"
#include "io/tensor_source.h"
#include "util/error.h"
#include "util/json.h"

namespace gill::models {

using detail::str_cat;
using ops::layer_norm;
using ops::linear;


CLIPTextConfig CLIPTextConfig::from_json(const nlohmann::json& j_in, const std::string& where) {
  CLIPTextConfig c;
  // A full CLIPModel config nests the text tower under text_config.
  const nlohmann::json& j = j_in.contains("text_config") && j_in.at("text_config").is_object()
                                ? j_in.at("text_config")
                                : j_in;
  try {
    util::json_get_if(j, "vocab_size", c.vocab_size);
    util::json_get_if(j, "hidden_size", c.hidden_size);
    util::json_get_if(j, "intermediate_size", c.intermediate_size);
    util::json_get_if(j, "num_hidden_layers", c.num_hidden_layers);
    util::json_get_if(j, "num_attention_heads", c.num_attention_heads);
    util::json_get_if(j, "max_position_embeddings", c.max_position_embeddings);
    util::json_get_if(j, "hidden_act", c.hidden_act);
    util::json_get_if(j, "layer_norm_eps", c.layer_norm_eps);
  } catch (const nlohmann::json::exception& e) {
    detail::fail(ErrorCode::kFormat, str_cat(where, ": ", e.what()));
  }
  GILL_CHECK(c.hidden_act == "quick_gelu" || c.hidden_act == "gelu", ErrorCode::kUnsupported, where,
             ": hidden_act '", c.hidden_act, "' is not supported (quick_gelu, gelu)");
  GILL_CHECK(c.num_attention_heads > 0 && c.hidden_size % c.num_attention_heads == 0, ErrorCode::kFormat, where,
             ": hidden_size ", c.hidden_size, " is not divisible by num_attention_heads ", c.num_attention_heads);
  return c;
}

CLIPTextConfig CLIPTextConfig::from_file(const std::filesystem::path& path) {
  return from_json(ops::read_config(path), path.string());
}

CLIPTextEncoderLayerImpl::CLIPTextEncoderLayerImpl(const CLIPTextConfig& cfg, const ModuleOptions& opt)
    : quick_gelu(cfg.hidden_act == "quick_gelu") {
  const int64_t D = cfg.hidden_size;
  self_attn = register_module("self_attn", CLIPAttention(D, cfg.num_attention_heads, opt));
  layer_norm1 = register_module("layer_norm1", LayerNorm(D, cfg.layer_norm_eps, true, opt));
  auto mlp = register_module("mlp", std::make_shared<torch::nn::Module>());
  fc1 = mlp->register_module("fc1", Linear(D, cfg.intermediate_size, true, opt));
  fc2 = mlp->register_module("fc2", Linear(cfg.intermediate_size, D, true, opt));
  layer_norm2 = register_module("layer_norm2", LayerNorm(D, cfg.layer_norm_eps, true, opt));
}

torch::Tensor CLIPTextEncoderLayerImpl::forward(const torch::Tensor& h_in, const torch::Tensor& mask) {
  auto h = h_in + self_attn->forward(layer_norm(layer_norm1, h_in), /*gemm_fp32=*/false, mask);
  auto m = linear(fc1, layer_norm(layer_norm2, h));
  m = quick_gelu ? m * torch::sigmoid(1.702 * m) : torch::gelu(m);
  return h + linear(fc2, m);
}

CLIPTextModelImpl::CLIPTextModelImpl(const CLIPTextConfig& cfg, const ModuleOptions& opt)
    : config(cfg), options(opt) {
  auto text_model = register_module("text_model", std::make_shared<torch::nn::Module>());
  auto emb = text_model->register_module("embeddings", std::make_shared<torch::nn::Module>());
  token_embedding = emb->register_module("token_embedding", Embedding(cfg.vocab_size, cfg.hidden_size, opt));
  position_embedding =
      emb->register_module("position_embedding", Embedding(cfg.max_position_embeddings, cfg.hidden_size, opt));
  auto enc = text_model->register_module("encoder", std::make_shared<torch::nn::Module>());
  auto list = enc->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    layers.emplace_back(cfg, opt);
    list->push_back(layers.back());
  }
  final_layer_norm =
      text_model->register_module("final_layer_norm", LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, true, opt));
}

torch::Dtype CLIPTextModelImpl::compute_dtype() const {
  return models::compute_dtype(options);
}

torch::Tensor CLIPTextModelImpl::forward(const torch::Tensor& ids_in) {
  GILL_CHECK(ids_in.dim() == 2 && ids_in.size(1) >= 1 && ids_in.size(1) <= config.max_position_embeddings,
             ErrorCode::kShapeMismatch, "CLIP text encoder: ids must be [B, T] with 1 <= T <= ",
             config.max_position_embeddings, ", got ", detail::shape_str(ids_in.sizes().vec()));
  auto ids = ids_in.to(options.device, torch::kLong);
  const int64_t T = ids.size(1);
  const auto mn = ids.min().item<int64_t>(), mx = ids.max().item<int64_t>();
  GILL_CHECK(mn >= 0 && mx < config.vocab_size, ErrorCode::kInvalidArgument, "CLIP text encoder: token id ",
             mn < 0 ? mn : mx, " is outside the vocabulary [0, ", config.vocab_size, ")");
  const auto dt = compute_dtype();
  auto h = torch::embedding(token_embedding->weight, ids).to(dt) +
           position_embedding->weight.narrow(0, 0, T).to(dt).unsqueeze(0);  // [B, T, D]
  // Causal additive mask: finfo(dtype).min above the diagonal.
  const double mask_min = dt == torch::kFloat32   ? std::numeric_limits<float>::lowest()
                          : dt == torch::kFloat16 ? -65504.0
                          : dt == torch::kBFloat16 ? -3.3895313892515355e38
                                                   : std::numeric_limits<double>::lowest();
  auto mask = torch::full({T, T}, mask_min, torch::TensorOptions().dtype(dt).device(options.device)).triu_(1);
  for (auto& layer : layers) h = layer(h, mask);
  return layer_norm(final_layer_norm, h);
}

CLIPTextModel load_clip_text(const std::filesystem::path& dir, const ModuleOptions& opts) {
  return detail::with_context(str_cat("loading CLIP text encoder from ", dir.string()), [&] {
    auto cfg = CLIPTextConfig::from_file(dir / "config.json");
    CLIPTextModel model(cfg, opts);
    auto weights = ops::find_weights(dir, {"model.safetensors", "pytorch_model.bin"});
    auto source = io::open_tensors(weights, opts.residency);
    io::LoadSpec spec;
    spec.allowed_extra = {"text_model\\.embeddings\\.position_ids"};
    io::load_module(*model, *source, spec, opts.dtype, opts.device);
    model->eval();
    return model;
  });
}

}  // namespace gill::models
