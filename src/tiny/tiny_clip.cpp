// Tiny CLIP vision tower for the tiny-model kit (see tiny_clip.h).
#include "tiny/tiny_clip.h"

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "models/clip_vision.h"
#include "util/error.h"

namespace gill::tiny {

std::filesystem::path write_tiny_clip(const std::filesystem::path& root, uint64_t seed) {
  using nlohmann::json;
  const auto dir = root / "openai" / "clip-vit-large-patch14";
  std::filesystem::create_directories(dir);

  json vision = {{"hidden_size", 48},   {"intermediate_size", 96}, {"num_attention_heads", 4},
                 {"num_hidden_layers", 2}, {"patch_size", 8},       {"image_size", 32},
                 {"num_channels", 3},   {"projection_dim", 24},    {"hidden_act", "quick_gelu"},
                 {"layer_norm_eps", 1e-5}, {"model_type", "clip_vision_model"}};
  json config = {{"architectures", {"CLIPModel"}},
                 {"model_type", "clip"},
                 {"projection_dim", 24},
                 {"logit_scale_init_value", 2.6592},
                 {"vision_config", vision},
                 {"torch_dtype", "float32"},
                 {"transformers_version", "4.30.2"}};
  json preprocessor = {{"crop_size", 32},
                       {"do_center_crop", true},
                       {"do_normalize", true},
                       {"do_resize", true},
                       {"feature_extractor_type", "CLIPFeatureExtractor"},
                       {"image_mean", {0.48145466, 0.4578275, 0.40821073}},
                       {"image_std", {0.26862954, 0.26130258, 0.27577711}},
                       {"resample", 3},
                       {"size", 32}};
  for (const auto& [name, j] : {std::pair<const char*, const json*>{"config.json", &config},
                                 {"preprocessor_config.json", &preprocessor}}) {
    io::AtomicFile f(dir / name);
    f.write(j->dump(2) + "\n");
    f.commit();
  }

  const auto cfg = models::CLIPVisionConfig::from_json(config);
  models::CLIPVisionModel model(cfg, models::ModuleOptions{});
  models::init_random(*model, seed);
  io::NamedTensors tensors;
  for (const auto& p : model->named_parameters(true)) tensors.emplace_back(p.key(), p.value());
  for (const auto& b : model->named_buffers(true)) tensors.emplace_back(b.key(), b.value());
  auto gen = at::detail::createCPUGenerator(seed + 1);
  tensors.emplace_back("visual_projection.weight",
                       torch::empty({cfg.projection_dim, cfg.hidden_size}).normal_(0.0, 0.02, gen));
  tensors.emplace_back("logit_scale", torch::tensor(2.6592f));
  io::write_safetensors(dir / "model.safetensors", tensors);
  return dir;
}

}  // namespace gill::tiny
