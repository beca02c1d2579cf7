// Stable Diffusion v1.x text-to-image as diffusers 0.17.1's StableDiffusionPipeline computes it: prompt (or
// prompt embeddings: the GILL path) -> CLIP text encoder -> classifier-free guided UNet loop with a selectable
// scheduler -> VAE decode -> uint8 RGB. No safety checker (its weights are not part of gill's inputs).
// Ref: diffusers v0.17.1 pipelines/stable_diffusion/pipeline_stable_diffusion.py (__call__, _encode_prompt,
// prepare_latents, decode_latents), image_processor.py (postprocess).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <gill/image.h>

#include "io/tensor_dump.h"
#include "models/clip_text.h"
#include "models/unet_2d.h"
#include "models/vae.h"
#include "schedulers/scheduler.h"

namespace gill::tokenizer {
class Tokenizer;
}

namespace gill::pipeline {

struct SDOptions {
  torch::Dtype dtype = torch::kFloat32;  // storage dtype of the text encoder, UNet and VAE weights
  torch::Device device = torch::kCPU;
  util::ComputePolicy compute;  // how bf16 storage computes (util/compute_policy.h)
  io::Residency residency = io::Residency::kMap;  // where the weights live (io/mapped_file.h)
};

struct SDParams {
  std::string prompt;
  // [1, 77, cross_attention_dim]: conditioning used instead of encoding `prompt` (GILL's mapper output).
  torch::Tensor prompt_embeds;
  std::string negative_prompt;           // "" = diffusers' negative_prompt=None (encoded once and cached)
  torch::Tensor negative_prompt_embeds;  // optional [1, 77, D], instead of encoding negative_prompt
  double guidance_scale = 7.5;           // classifier-free guidance when > 1
  int64_t n_steps = 50;                  // PNDM makes n_steps + 1 UNet calls
  int64_t width = 0, height = 0;         // multiples of 8; 0 = unet sample_size * vae scale factor
  uint64_t seed = 0;                     // CPU torch.Generator().manual_seed(seed)
  // [1, latent_channels, height/8, width/8]: the noise to start from instead of drawing it from the seed (the
  // `latents=` argument of diffusers; it is multiplied by the scheduler's init_noise_sigma).
  torch::Tensor init_latents;
  std::string scheduler = "pndm";        // pndm | ddim | euler | dpm++2m
};

// Called after each UNet call: (calls done, total calls).
using ProgressCallback = std::function<void(int64_t done, int64_t total)>;

class StableDiffusion {
 public:
  // Loads DIR/{text_encoder,tokenizer,unet,vae,scheduler}. Errors carry "loading Stable Diffusion from DIR: ".
  static StableDiffusion load(const std::filesystem::path& dir, const SDOptions& options = {});
  // Loads without the text encoder and tokenizer: only prompt_embeds / negative_prompt_embeds can be used.
  static StableDiffusion load_without_text_encoder(const std::filesystem::path& dir, const SDOptions& options = {});
  // A pipeline over a UNet and a VAE already in memory, without text encoder and tokenizer (prompt_embeds and,
  // for guidance, negative_prompt_embeds must be given): `gill bench turn` builds SD at the real shapes with
  // random weights this way. kInvalidArgument when a module is missing.
  static StableDiffusion from_modules(models::UNet2DConditionModel unet, models::AutoencoderKL vae,
                                      const schedulers::SchedulerConfig& scheduler, const SDOptions& options = {});

  // last_hidden_state of the CLIP text encoder for the prompt padded/truncated to 77 tokens: [1, 77, D] float32.
  torch::Tensor encode_prompt(const std::string& prompt);
  // Runs the whole pipeline. `dump` (may be null) receives the sd.* tensors (docs/tensor-dumps.md).
  Image generate(const SDParams& params, const ProgressCallback& progress = nullptr, io::TensorDump* dump = nullptr);

  // Pieces of generate, for tests and the GILL pipeline.
  // Latents after the denoising loop, float32 [1, C, h, w].
  torch::Tensor denoise(const SDParams& params, const ProgressCallback& progress = nullptr,
                        io::TensorDump* dump = nullptr);
  // vae.decode(latents / scaling_factor), then (x/2 + 0.5).clamp(0, 1): float32 [1, 3, H, W].
  torch::Tensor decode_latents(const torch::Tensor& latents, io::TensorDump* dump = nullptr);
  // x in [0,1] [1,3,H,W] -> round-half-even(x * 255) as uint8 RGB.
  static Image to_image(const torch::Tensor& image01);

  int64_t default_width() const;
  int64_t default_height() const;
  int64_t vae_scale_factor() const;
  const schedulers::SchedulerConfig& scheduler_config() const { return scheduler_config_; }
  models::UNet2DConditionModel& unet() { return unet_; }
  models::AutoencoderKL& vae() { return vae_; }

  StableDiffusion(StableDiffusion&&) noexcept;
  StableDiffusion& operator=(StableDiffusion&&) noexcept;
  ~StableDiffusion();

 private:
  StableDiffusion() = default;
  static StableDiffusion load_impl(const std::filesystem::path& dir, const SDOptions& options, bool text);
  torch::Tensor uncond_embeddings(const std::string& negative_prompt, int64_t length);

  SDOptions options_;
  std::filesystem::path dir_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  models::CLIPTextModel text_encoder_{nullptr};
  models::UNet2DConditionModel unet_{nullptr};
  models::AutoencoderKL vae_{nullptr};
  schedulers::SchedulerConfig scheduler_config_;
  std::map<std::pair<std::string, int64_t>, torch::Tensor> uncond_cache_;
};

}  // namespace gill::pipeline
