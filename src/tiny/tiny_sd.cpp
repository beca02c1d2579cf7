// Tiny SD components (see tiny_sd.h). Configs are written with the keys diffusers 0.17.1 / transformers 4.30.2
// save, and read back through the same from_json as real checkpoints.
#include "tiny/tiny_sd.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "models/clip_text.h"
#include "models/unet_2d.h"
#include "models/vae.h"
#include "tiny/make_tiny.h"
#include "util/error.h"

namespace gill::tiny {

namespace {


void write_weights(torch::nn::Module& m, const std::filesystem::path& path) {
  io::NamedTensors ts;
  for (auto& p : m.named_parameters(true)) ts.emplace_back(p.key(), p.value());
  std::sort(ts.begin(), ts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  io::write_safetensors(path, ts, {{"format", "pt"}});
}

nlohmann::json unet_config() {
  return {{"_class_name", "UNet2DConditionModel"},
          {"_diffusers_version", "0.17.1"},
          {"act_fn", "silu"},
          {"attention_head_dim", 2},
          {"block_out_channels", {16, 32}},
          {"center_input_sample", false},
          {"class_embed_type", nullptr},
          {"cross_attention_dim", 32},
          {"down_block_types", {"CrossAttnDownBlock2D", "DownBlock2D"}},
          {"downsample_padding", 1},
          {"dual_cross_attention", false},
          {"flip_sin_to_cos", true},
          {"freq_shift", 0},
          {"in_channels", 4},
          {"layers_per_block", 2},
          {"mid_block_scale_factor", 1},
          {"mid_block_type", "UNetMidBlock2DCrossAttn"},
          {"norm_eps", 1e-05},
          {"norm_num_groups", 8},
          {"only_cross_attention", false},
          {"out_channels", 4},
          {"resnet_time_scale_shift", "default"},
          {"sample_size", 8},
          {"time_embedding_type", "positional"},
          {"up_block_types", {"UpBlock2D", "CrossAttnUpBlock2D"}},
          {"upcast_attention", false},
          {"use_linear_projection", false}};
}

nlohmann::json vae_config() {
  return {{"_class_name", "AutoencoderKL"},
          {"_diffusers_version", "0.17.1"},
          {"act_fn", "silu"},
          {"block_out_channels", {8, 16, 16, 16}},
          {"down_block_types", std::vector<std::string>(4, "DownEncoderBlock2D")},
          {"in_channels", 3},
          {"latent_channels", 4},
          {"layers_per_block", 2},
          {"norm_num_groups", 4},
          {"out_channels", 3},
          {"sample_size", 64},
          {"scaling_factor", 0.18215},
          {"up_block_types", std::vector<std::string>(4, "UpDecoderBlock2D")}};
}

nlohmann::json text_config(int64_t vocab) {
  return {{"architectures", {"CLIPTextModel"}},
          {"attention_dropout", 0.0},
          {"bos_token_id", 0},
          {"eos_token_id", 2},
          {"hidden_act", "quick_gelu"},
          {"hidden_size", 32},
          {"initializer_factor", 1.0},
          {"initializer_range", 0.02},
          {"intermediate_size", 64},
          {"layer_norm_eps", 1e-05},
          {"max_position_embeddings", 77},
          {"model_type", "clip_text_model"},
          {"num_attention_heads", 4},
          {"num_hidden_layers", 2},
          {"pad_token_id", 1},
          {"projection_dim", 24},
          {"torch_dtype", "float32"},
          {"transformers_version", "4.30.2"},
          {"vocab_size", vocab}};
}

}  // namespace

void write_tiny_sd_models(const std::filesystem::path& root, uint64_t seed, const TinySDOptions& opt) {
  detail::with_context(detail::str_cat("writing tiny SD models to ", root.string()), [&] {
    namespace fs = std::filesystem;
    for (const char* sub : {"unet", "vae", "text_encoder"}) fs::create_directories(root / sub);
    {
      const auto j = unet_config();
      write_json(root / "unet" / "config.json", j, 2);
      models::UNet2DConditionModel m(models::UNet2DConditionConfig::from_json(j), models::ModuleOptions{});
      models::init_random(*m, seed + 1);
      write_weights(*m, root / "unet" / "diffusion_pytorch_model.safetensors");
    }
    {
      const auto j = vae_config();
      write_json(root / "vae" / "config.json", j, 2);
      models::AutoencoderKL m(models::AutoencoderKLConfig::from_json(j), models::ModuleOptions{});
      models::init_random(*m, seed + 2);
      write_weights(*m, root / "vae" / "diffusion_pytorch_model.safetensors");
    }
    {
      const auto j = text_config(opt.text_vocab_size);
      write_json(root / "text_encoder" / "config.json", j, 2);
      models::CLIPTextModel m(models::CLIPTextConfig::from_json(j), models::ModuleOptions{});
      models::init_random(*m, seed + 3);
      write_weights(*m, root / "text_encoder" / "model.safetensors");
    }
    return 0;
  });
}

}  // namespace gill::tiny
