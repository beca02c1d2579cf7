// Finding and loading GILL's own files (checkpoints/gill_opt/): model_args.json, pretrained_ckpt.pth.tar (the
// heads + the 8 [IMG] embedding rows), decision_model.pth.tar and the retrieval index; and resolving a weights
// root (DESIGN.md "Weights on disk") into component folders.
// Ref: kohjingyu/gill @4600b71 gill/models.py load_gill.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <string>

#include "models/decision_head.h"
#include "models/gill_heads.h"
#include "pipeline/retrieval.h"

namespace gill::pipeline {

// -m ROOT and the per-component overrides (empty = not given).
struct WeightPaths {
  std::filesystem::path root, lm, clip, sd, gill, index;
};

// Every component folder, resolved: gill = --gill or ROOT/checkpoints/gill_opt; lm / clip = the override or
// ROOT/<model_args opt_version / visual_encoder>; sd = the override or ROOT/runwayml/stable-diffusion-v1-5 or
// ROOT/stable-diffusion-v1-5/stable-diffusion-v1-5 (empty when `need_sd` is false and none exists);
// index = --index or empty (then the GILL folder is searched). kNotFound names what is missing and the option
// that supplies it. The one resolver of a weights root, and the one reader of model_args.json (`args`): callers
// resolve once and pass the result down. `need_lm` false (gill index): the LLM folder is neither needed nor checked.
struct ResolvedPaths {
  std::filesystem::path lm, clip, sd, gill, index;
  models::GILLArgs args;
};
ResolvedPaths resolve_weight_paths(const WeightPaths& in, bool need_sd = true, bool need_lm = true);

// The GILL checkpoint file in a folder: pretrained_ckpt.pth.tar, else pretrained_ckpt.safetensors.
std::filesystem::path gill_checkpoint_file(const std::filesystem::path& gill_dir);
// The decision model in a folder (decision_model.pth.tar / .safetensors), or empty when there is none.
std::filesystem::path decision_model_file(const std::filesystem::path& gill_dir);

struct GILLWeights {
  models::GILLArgs args;
  models::GILLDims dims;
  models::GILLHeads heads{nullptr};
  models::DecisionHead decision{nullptr};  // null when the folder has no decision model
  torch::Tensor img_rows;                  // [num_tokens, D] trained [IMG0..7] input embeddings
  RetrievalIndex index;                    // empty when none was found
  torch::Tensor retrieval_matrix;          // [N, R] normalised x exp(logit_scale); undefined when no index
  // The dtype the heads, the decision head and the retrieval scores compute in (models::compute_dtype of the
  // storage dtype and the engine's compute policy): inputs are converted to it, bf16-stored weights widen to it.
  torch::Dtype compute_dtype = torch::kFloat32;
};

// Loads everything from the GILL folder (and `index_path` when given) in `dtype`, with the folder's
// model_args.json as resolve_weight_paths read it (`args`). Strict: every expected key present with the shape
// model_args.json implies, no unexplained extra key.
GILLWeights load_gill_weights(const std::filesystem::path& gill_dir, const models::GILLArgs& args,
                              const std::filesystem::path& index_path, torch::Dtype dtype,
                              const torch::Device& device = torch::kCPU,
                              const util::ComputePolicy& compute = util::ComputePolicy{});

}  // namespace gill::pipeline
