// Tiny-model kit: a complete Stable Diffusion folder in the published runwayml/stable-diffusion-v1-5 layout with
// seeded random weights, small enough for tests and demos.
#pragma once
#include <cstdint>
#include <filesystem>

namespace gill::tiny {

// Writes ROOT/runwayml/stable-diffusion-v1-5/: scheduler/scheduler_config.json (the SD 1.5 PNDM file verbatim),
// tokenizer/ (a 600-entry CLIP BPE trained on gill's sample text), model_index.json, and unet/, vae/,
// text_encoder/ (write_tiny_sd_models). Returns the folder. Same seed, same bytes.
std::filesystem::path write_tiny_sd(const std::filesystem::path& root, uint64_t seed);

}  // namespace gill::tiny
