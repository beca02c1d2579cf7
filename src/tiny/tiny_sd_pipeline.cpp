// The SD folder of the tiny-model kit. The scheduler config is the published SD 1.5 file; model_index.json
// follows diffusers' StableDiffusionPipeline.save_pretrained with no safety checker.
#include "tiny/tiny_sd_pipeline.h"

#include "io/atomic_file.h"
#include "tiny/tiny_sd.h"
#include "tokenizer/bpe_train.h"

namespace gill::tiny {

namespace {

constexpr const char* kSchedulerConfig = R"({
  "_class_name": "PNDMScheduler",
  "_diffusers_version": "0.6.0",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "num_train_timesteps": 1000,
  "set_alpha_to_one": false,
  "skip_prk_steps": true,
  "steps_offset": 1,
  "trained_betas": null,
  "clip_sample": false
}
)";

constexpr const char* kModelIndex = R"({
  "_class_name": "StableDiffusionPipeline",
  "_diffusers_version": "0.17.1",
  "feature_extractor": [null, null],
  "requires_safety_checker": false,
  "safety_checker": [null, null],
  "scheduler": ["diffusers", "PNDMScheduler"],
  "text_encoder": ["transformers", "CLIPTextModel"],
  "tokenizer": ["transformers", "CLIPTokenizer"],
  "unet": ["diffusers", "UNet2DConditionModel"],
  "vae": ["diffusers", "AutoencoderKL"]
}
)";

constexpr int kVocabSize = 600;

}  // namespace

std::filesystem::path write_tiny_sd(const std::filesystem::path& root, uint64_t seed) {
  const auto dir = root / "runwayml" / "stable-diffusion-v1-5";
  std::filesystem::create_directories(dir / "scheduler");
  io::write_file_atomic(dir / "scheduler" / "scheduler_config.json", kSchedulerConfig);
  io::write_file_atomic(dir / "model_index.json", kModelIndex);
  tokenizer::write_tiny_clip_tokenizer(dir / "tokenizer", kVocabSize);
  TinySDOptions opt;
  opt.text_vocab_size = kVocabSize;
  write_tiny_sd_models(dir, seed, opt);
  return dir;
}

}  // namespace gill::tiny
