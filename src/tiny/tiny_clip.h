// Tiny-model kit: a seeded random CLIP vision tower in the published openai/clip-vit-large-patch14 layout.
#pragma once
#include <cstdint>
#include <filesystem>

namespace gill::tiny {

// Writes ROOT/openai/clip-vit-large-patch14/{config.json, preprocessor_config.json, model.safetensors}: a full
// CLIPModel-style config (vision_config inside; hidden 48, 2 layers, 4 heads, patch 8, image 32, projection 24),
// the published preprocessor config with size/crop 32, and seeded weights for the vision tower
// (`vision_model.*`) plus `visual_projection.weight` and `logit_scale` (no text tower: GILL does not use it).
// Returns the model folder. Same seed, same bytes.
std::filesystem::path write_tiny_clip(const std::filesystem::path& root, uint64_t seed);

}  // namespace gill::tiny
