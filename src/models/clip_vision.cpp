// CLIP vision tower. Ref: transformers v4.30.2 models/clip/modeling_clip.py, configuration_clip.py.
#include "models/clip_vision.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/tensor_source.h"
#include "kernels/linear_bf16.h"
#include "util/error.h"
#include "util/json.h"

namespace gill::models {
namespace {

using detail::str_cat;
using nlohmann::json;

// GEMM helpers. With gemm_fp32 the operands are upcast and the fp32 result rounded once to the input dtype: what
// a CUDA bf16 GEMM does (fp32 accumulation, one rounding), at fp32 speed on CPUs without native bf16 (there
// libtorch's bf16 matmul is ~35x slower than fp32).
// bf16 weights go through kernels::linear_bf16_weight, which widens a cache-sized block of rows at a time instead
// of the whole weight on every call (same fp32 products; measured in docs/performance.md, CLIP session 9).
torch::Tensor linear(const torch::Tensor& x, const LinearImpl& l, bool gemm_fp32) {
  if (!gemm_fp32) return torch::nn::functional::linear(x, l.weight, l.bias);
  const auto dt = x.scalar_type();
  const auto b = l.bias.defined() ? l.bias.to(torch::kFloat32) : torch::Tensor();
  if (l.weight.scalar_type() == torch::kBFloat16)
    return kernels::linear_bf16_weight(x.to(torch::kFloat32), l.weight, b).to(dt);
  return torch::nn::functional::linear(x.to(torch::kFloat32), l.weight.to(torch::kFloat32), b).to(dt);
}

json read_json_file(const std::filesystem::path& path, const char* what) {
  return util::read_json_file(path, str_cat(path.string(), ": cannot open the ", what));
}

void apply_vision_keys(const json& j, CLIPVisionConfig& c, const std::string& where) {
  const std::pair<const char*, int64_t*> ints[] = {{"hidden_size", &c.hidden_size},
                                                   {"intermediate_size", &c.intermediate_size},
                                                   {"num_attention_heads", &c.num_attention_heads},
                                                   {"num_hidden_layers", &c.num_hidden_layers},
                                                   {"patch_size", &c.patch_size},
                                                   {"image_size", &c.image_size},
                                                   {"num_channels", &c.num_channels},
                                                   {"projection_dim", &c.projection_dim}};
  for (const auto& [key, dst] : ints) util::read_field(j, key, *dst, where);
  util::read_field(j, "hidden_act", c.hidden_act, where);
  util::read_field(j, "layer_norm_eps", c.layer_norm_eps, where);
}

}  // namespace

// ---- config ----------------------------------------------------------------------------------------------------

CLIPVisionConfig CLIPVisionConfig::from_json(const json& j, const std::string& where) {
  GILL_CHECK(j.is_object(), ErrorCode::kFormat, where, ": expected a JSON object");
  CLIPVisionConfig c;
  if (j.contains("vision_config_dict") && j["vision_config_dict"].is_object()) {
    // CLIPConfig (4.30): CLIPVisionConfig(**vision_config_dict).to_dict() overwrites every key of vision_config,
    // so the result is the defaults updated by vision_config_dict alone.
    apply_vision_keys(j["vision_config_dict"], c, where + " vision_config_dict");
  } else if (j.contains("vision_config")) {
    GILL_CHECK(j["vision_config"].is_object(), ErrorCode::kFormat, where, ": \"vision_config\" must be an object");
    apply_vision_keys(j["vision_config"], c, where + " vision_config");
  } else {
    if (j.contains("model_type") && j["model_type"].is_string()) {
      const auto mt = j["model_type"].get<std::string>();
      GILL_CHECK(mt == "clip_vision_model" || mt == "clip", ErrorCode::kFormat, where, ": model_type \"", mt,
                 "\" is not a CLIP vision config (expected \"clip\" or \"clip_vision_model\")");
    }
    apply_vision_keys(j, c, where);
  }
  GILL_CHECK(c.hidden_size > 0 && c.num_attention_heads > 0 && c.hidden_size % c.num_attention_heads == 0,
             ErrorCode::kFormat, where, ": hidden_size ", c.hidden_size, " is not a multiple of num_attention_heads ",
             c.num_attention_heads);
  GILL_CHECK(c.patch_size > 0 && c.image_size >= c.patch_size && c.image_size % c.patch_size == 0,
             ErrorCode::kFormat, where, ": image_size ", c.image_size, " is not a multiple of patch_size ",
             c.patch_size);
  GILL_CHECK(c.intermediate_size > 0 && c.num_hidden_layers >= 0 && c.num_channels > 0, ErrorCode::kFormat, where,
             ": intermediate_size, num_hidden_layers and num_channels must be positive");
  GILL_CHECK(c.hidden_act == "quick_gelu" || c.hidden_act == "gelu", ErrorCode::kUnsupported, where,
             ": hidden_act \"", c.hidden_act, "\" is not supported (quick_gelu, gelu)");
  return c;
}

CLIPVisionConfig CLIPVisionConfig::from_file(const std::filesystem::path& path) {
  const auto file = std::filesystem::is_directory(path) ? path / "config.json" : path;
  return from_json(read_json_file(file, "CLIP config"), file.string());
}

// ---- modules ---------------------------------------------------------------------------------------------------

CLIPVisionEmbeddingsImpl::CLIPVisionEmbeddingsImpl(const CLIPVisionConfig& cfg, const ModuleOptions& opt) {
  class_embedding = register_parameter("class_embedding", torch::empty({cfg.hidden_size}, opt.tensor()), false);
  patch_embedding = register_module(
      "patch_embedding", Conv2d(cfg.num_channels, cfg.hidden_size, cfg.patch_size, cfg.patch_size, 0, false, opt));
  position_embedding = register_module("position_embedding", Embedding(cfg.num_positions(), cfg.hidden_size, opt));
  position_ids = register_buffer(
      "position_ids", torch::arange(cfg.num_positions(), torch::dtype(torch::kInt64).device(opt.device)).unsqueeze(0));
}

torch::Tensor CLIPVisionEmbeddingsImpl::forward(const torch::Tensor& pixel_values, bool gemm_fp32) {
  const auto& w = patch_embedding->weight;
  const int64_t stride = patch_embedding->stride;
  torch::Tensor patches;
  if (gemm_fp32) {
    patches = torch::conv2d(pixel_values.to(torch::kFloat32), w.to(torch::kFloat32), {}, {stride, stride})
                  .to(w.scalar_type());
  } else {
    patches = ops::conv2d(pixel_values, w, {}, stride, 0);
  }                                                        // [B, D, g, g]
  patches = patches.flatten(2).transpose(1, 2);            // [B, P, D]
  const int64_t B = patches.size(0);
  auto cls = class_embedding.expand({B, 1, class_embedding.size(0)});
  auto emb = torch::cat({cls, patches}, 1);                // [B, 1 + P, D]
  return emb + position_embedding->forward(position_ids);  // + [1, 1 + P, D]
}

CLIPMLPImpl::CLIPMLPImpl(const CLIPVisionConfig& cfg, const ModuleOptions& opt)
    : quick_gelu(cfg.hidden_act == "quick_gelu") {
  fc1 = register_module("fc1", Linear(cfg.hidden_size, cfg.intermediate_size, true, opt));
  fc2 = register_module("fc2", Linear(cfg.intermediate_size, cfg.hidden_size, true, opt));
}

torch::Tensor CLIPMLPImpl::forward(const torch::Tensor& x, bool gemm_fp32) {
  auto h = linear(x, *fc1, gemm_fp32);  // [B, T, I]
  // QuickGELUActivation: x * sigmoid(1.702 * x), three ops each rounded to the tensor dtype.
  h = quick_gelu ? h * torch::sigmoid(h * 1.702) : torch::gelu(h);
  return linear(h, *fc2, gemm_fp32);  // [B, T, D]
}

CLIPEncoderLayerImpl::CLIPEncoderLayerImpl(const CLIPVisionConfig& cfg, const ModuleOptions& opt) {
  self_attn = register_module("self_attn", CLIPAttention(cfg.hidden_size, cfg.num_attention_heads, opt));
  layer_norm1 = register_module("layer_norm1", LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, true, opt));
  mlp = register_module("mlp", CLIPMLP(cfg, opt));
  layer_norm2 = register_module("layer_norm2", LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, true, opt));
}

torch::Tensor CLIPEncoderLayerImpl::forward(const torch::Tensor& x, bool gemm_fp32) {
  auto h = x + self_attn->forward(layer_norm1->forward(x), gemm_fp32);
  return h + mlp->forward(layer_norm2->forward(h), gemm_fp32);
}

CLIPVisionTransformerImpl::CLIPVisionTransformerImpl(const CLIPVisionConfig& cfg, const ModuleOptions& opt) {
  embeddings = register_module("embeddings", CLIPVisionEmbeddings(cfg, opt));
  pre_layrnorm = register_module("pre_layrnorm", LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, true, opt));
  auto encoder = register_module("encoder", std::make_shared<torch::nn::Module>("CLIPEncoder"));
  auto list = encoder->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    layers.push_back(CLIPEncoderLayer(cfg, opt));
    list->push_back(layers.back());
  }
  post_layernorm = register_module("post_layernorm", LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, true, opt));
}

CLIPVisionOutput CLIPVisionTransformerImpl::forward(const torch::Tensor& pixel_values, bool output_hidden_states,
                                                    bool gemm_fp32) {
  CLIPVisionOutput out;
  auto h = pre_layrnorm->forward(embeddings->forward(pixel_values, gemm_fp32));  // [B, T, D]
  for (auto& layer : layers) {
    if (output_hidden_states) out.hidden_states.push_back(h);
    h = layer->forward(h, gemm_fp32);
  }
  if (output_hidden_states) out.hidden_states.push_back(h);
  out.last_hidden = h;
  out.pooled = post_layernorm->forward(h.select(1, 0));  // [B, D]
  return out;
}

CLIPVisionModelImpl::CLIPVisionModelImpl(const CLIPVisionConfig& cfg, const ModuleOptions& opt)
    : cfg_(cfg), opt_(opt), gemm_fp32_(opt.dtype != torch::kFloat32 && opt.device.is_cpu() && !(opt.dtype == torch::kBFloat16 && opt.compute.bf16)) {
  vision_model = register_module("vision_model", CLIPVisionTransformer(cfg, opt));
}

CLIPVisionOutput CLIPVisionModelImpl::forward(const torch::Tensor& pixel_values, bool output_hidden_states) {
  GILL_CHECK(pixel_values.dim() == 4 && pixel_values.size(1) == cfg_.num_channels &&
                 pixel_values.size(2) == cfg_.image_size && pixel_values.size(3) == cfg_.image_size,
             ErrorCode::kShapeMismatch, "CLIP vision: pixel_values ", detail::shape_str(pixel_values.sizes().vec()),
             " do not match [B, ", cfg_.num_channels, ", ", cfg_.image_size, ", ", cfg_.image_size, "]");
  torch::InferenceMode guard;
  const auto x = pixel_values.to(opt_.device, opt_.dtype);  // GILL casts pixel_values to the model dtype
  return vision_model->forward(x, output_hidden_states, gemm_fp32_);
}

// ---- loading ---------------------------------------------------------------------------------------------------

io::LoadSpec clip_vision_load_spec() {
  io::LoadSpec spec;
  spec.prefixes = {""};
  spec.optional = {"vision_model\\.embeddings\\.position_ids"};
  // A full CLIPModel checkpoint: everything outside the vision tower is expected and left unused.
  spec.allowed_extra = {"text_model\\..*", "visual_projection\\.weight", "text_projection\\.weight",
                        "logit_scale"};
  return spec;
}

CLIPVisionModel load_clip_vision(const std::filesystem::path& dir, const ModuleOptions& opt) {
  return detail::with_context(str_cat("loading CLIP vision from ", dir.string()), [&] {
    const auto cfg = CLIPVisionConfig::from_file(dir);
    CLIPVisionModel model(cfg, opt);
    const auto source = io::open_tensors(dir, opt.residency);
    io::load_module(*model, *source, clip_vision_load_spec(), opt.dtype, opt.device);
    model->eval();
    return model;
  });
}

torch::Tensor clip_embed_images(CLIPVisionModel& model, const CLIPImageProcessorConfig& preprocess,
                                const std::vector<gill::Image>& images, io::TensorDump* dump) {
  const auto pixel_values = clip_preprocess_batch(images, preprocess);  // [N, 3, S, S] float32
  io::dump_tensor(dump, "clip.pixel_values", pixel_values);
  auto pooled = model->forward(pixel_values).pooled;  // [N, D]
  io::dump_tensor(dump, "clip.pooled", pooled);
  return pooled;
}

}  // namespace gill::models
