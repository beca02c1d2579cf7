// A loaded GILL: the decoder LLM from the registry (models/causal_lm.h; OPT for the released GILL), its embedding
// table extended to the tokenizer and the trained [IMG] rows written in, CLIP vision + its preprocessor, the GILL
// heads / decision / retrieval index, the LLM's tokenizer with GILL's tokens, and (optionally) Stable Diffusion.
// Binds them to the pipeline's Backbones.
// Ref: kohjingyu/gill @4600b71 gill/models.py load_gill, GILL.__init__.
#pragma once
#include <torch/torch.h>

#include <memory>

#include "models/causal_lm.h"
#include "models/clip_image_processor.h"
#include "models/clip_vision.h"
#include "pipeline/gill_generate.h"
#include "pipeline/gill_weights.h"
#include "pipeline/sd_pipeline.h"
#include "tokenizer/tokenizer.h"

namespace gill::pipeline {

struct GILLModelOptions {
  WeightPaths paths;
  std::optional<ResolvedPaths> resolved;  // when set (the Engine resolved `paths` already): used as is
  torch::Dtype dtype = torch::kFloat32;  // storage dtype of the LLM, CLIP and the GILL heads
  util::ComputePolicy compute;           // how bf16 storage computes (every model follows it)
  io::Residency residency = io::Residency::kMap;  // where the LLM, CLIP and SD weights live (io/mapped_file.h)
  bool load_sd = true;  // Stable Diffusion from paths.sd (or the root); false: [IMG] blocks only retrieve
};

// "auto" storage on the CPU: fp32 (exact to the reference) unless the LLM's fp32 weights would take more than half
// of `ram_bytes`, then bf16 (compute follows the compute policy; docs/performance.md). `lm_fp32_bytes` is
// models::fp32_parameter_bytes of the LLM folder: a fact of its tensor index, whatever the decoder.
torch::Dtype auto_storage_dtype(int64_t lm_fp32_bytes, double ram_bytes);
// The same for an LLM folder on this machine (its physical memory); fp32 when the folder's tensors cannot be
// listed (the loader then reports the problem with its own message).
torch::Dtype auto_storage_dtype(const std::filesystem::path& lm_dir);
// A storage dtype option as given (EngineOptions::dtype, LmOptions::dtype): "auto" becomes the name
// (io::torch_dtype_name) of auto_storage_dtype(lm_dir); any other value is returned as is, for its parser to
// check. The one place "auto" is decided.
std::string resolve_storage_dtype(const std::string& dtype, const std::filesystem::path& lm_dir);

class GILLModel {
 public:
  static std::unique_ptr<GILLModel> load(const GILLModelOptions& options);

  ResolvedPaths paths;
  GILLWeights weights;
  std::shared_ptr<models::CausalLM> lm;
  models::CLIPVisionModel clip{nullptr};
  models::CLIPImageProcessorConfig clip_preprocess;
  std::unique_ptr<tokenizer::Tokenizer> tok;
  GillTokenIds token_ids;
  std::unique_ptr<StableDiffusion> sd;  // null when not loaded
  double load_s = 0;

  // CLIP pooled output [1, C] of one image (dumps clip.* when dump is set).
  torch::Tensor clip_pooled(const gill::Image& img, io::TensorDump* dump = nullptr);
  // Backbones bound to this model and `lm_adaptor` (whose KV cache the turn extends). With Stable Diffusion
  // loaded and `sd_params` given, generate_image runs it on the mapper output with those settings (steps,
  // guidance, scheduler, size; prompt_embeds and seed come per block).
  Backbones backbones(DecoderLM& lm_adaptor, io::TensorDump* dump, const SDParams* sd_params = nullptr,
                      const pipeline::ProgressCallback& sd_progress = nullptr);
};

}  // namespace gill::pipeline
