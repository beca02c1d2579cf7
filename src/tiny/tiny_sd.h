// Tiny Stable Diffusion components for the tiny-model kit: unet/, vae/ and text_encoder/ folders in the diffusers
// layout (config.json + diffusion_pytorch_model.safetensors / model.safetensors) with seeded random weights and
// the real key names. The scheduler/, tokenizer/ and model_index.json are written by the pipeline side.
#pragma once
#include <cstdint>
#include <filesystem>

namespace gill::tiny {

struct TinySDOptions {
  int64_t text_vocab_size = 600;  // must cover the tiny CLIP tokenizer's ids (the fixture's has 600 entries)
};

// Writes root_sd_dir/{unet,vae,text_encoder}/. Same seed, same bytes. Shapes as the shared fixture's
// stable-diffusion-tiny: UNet blocks (16, 32), 2 heads, cross-attention 32, 8 groups; VAE (8, 16, 16, 16),
// 4 groups, scaling 0.18215; CLIP text 32 wide, 2 layers, 4 heads, 77 positions.
void write_tiny_sd_models(const std::filesystem::path& root_sd_dir, uint64_t seed, const TinySDOptions& opt = {});

}  // namespace gill::tiny
