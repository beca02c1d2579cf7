// Building a retrieval index from local images, the way the reference's scripts/extract_img_embs.py does:
// CLIP pooled output -> GILL's visual retrieval map (visual_fc), stored un-normalised (normalised and scaled by
// exp(logit_scale) at load time, gill-spec §6.4). Written in gill's index format (retrieval.h).
// Ref: kohjingyu/gill @4600b71 scripts/extract_img_embs.py, gill/models.py GILLModel.get_visual_embs.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "pipeline/gill_weights.h"
#include "pipeline/retrieval.h"

namespace gill::pipeline {

struct IndexBuildOptions {
  WeightPaths paths;                     // -m ROOT / --clip / --gill (the LLM and SD are not loaded)
  torch::Dtype dtype = torch::kFloat32;
  util::ComputePolicy compute;  // how bf16 storage computes
  std::function<void(int64_t done, int64_t total)> progress;
};

// Embeds `images` (decoded up front, so a bad file fails before any work) and writes OUT_DIR/index.safetensors.
// Paths are stored relative to OUT_DIR (so a moved tree keeps working), absolute when no relative path exists. Returns the index.
RetrievalIndex build_index(const IndexBuildOptions& options, const std::vector<std::filesystem::path>& images,
                           const std::filesystem::path& out_dir);

}  // namespace gill::pipeline
