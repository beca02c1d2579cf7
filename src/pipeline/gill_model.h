// A loaded GILL: OPT (embedding table extended to the tokenizer and the trained [IMG] rows written in), CLIP
// vision + its preprocessor, the GILL heads / decision / retrieval index, the OPT tokenizer with GILL's tokens,
// and (optionally) Stable Diffusion. Binds them to the pipeline's Backbones.
// Ref: kohjingyu/gill @4600b71 gill/models.py load_gill, GILL.__init__.
#pragma once
#include <torch/torch.h>

#include <memory>

#include "models/clip_image_processor.h"
#include "models/clip_vision.h"
#include "models/opt.h"
#include "pipeline/gill_generate.h"
#include "pipeline/gill_weights.h"
#include "pipeline/sd_pipeline.h"
#include "tokenizer/tokenizer.h"

namespace gill::pipeline {

struct GILLModelOptions {
  WeightPaths paths;
  std::optional<ResolvedPaths> resolved;  // when set (the Engine resolved `paths` already): used as is
  torch::Dtype dtype = torch::kFloat32;  // storage dtype of OPT, CLIP and the GILL heads
  util::ComputePolicy compute;           // how bf16 storage computes (every model follows it)
  bool load_sd = true;     // Stable Diffusion from paths.sd (or the root); false: [IMG] blocks only retrieve
};

// The OPT model behind the DecoderLM interface, with its own KV cache.
class OPTDecoderLM : public DecoderLM {
 public:
  explicit OPTDecoderLM(models::OPTForCausalLM lm) : lm_(std::move(lm)) {}
  Out feed(const torch::Tensor& embeds) override;
  torch::Tensor embed(const std::vector<int64_t>& ids) override;
  int64_t n_past() const override { return cache_.length(); }
  int64_t max_positions() const override { return lm_->config().max_position_embeddings; }
  void reset() { cache_.clear(); }
  models::KVCache& cache() { return cache_; }

 private:
  models::OPTForCausalLM lm_;
  models::KVCache cache_;
};

class GILLModel {
 public:
  static std::unique_ptr<GILLModel> load(const GILLModelOptions& options);

  ResolvedPaths paths;
  GILLWeights weights;
  models::OPTForCausalLM lm{nullptr};
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
  Backbones backbones(OPTDecoderLM& lm_adaptor, io::TensorDump* dump, const SDParams* sd_params = nullptr,
                      const pipeline::ProgressCallback& sd_progress = nullptr);
};

}  // namespace gill::pipeline
