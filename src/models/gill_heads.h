// The trained GILL heads of pretrained_ckpt.pth.tar: the visual maps (CLIP pooled -> LM input embeddings, ->
// retrieval space), the retrieval head (TextFcLayer in `linear` mode), the generation head (GILLMapper,
// gill_mapper.h) and logit_scale, registered under the checkpoint names (without its `model.` prefix).
// Ref: kohjingyu/gill @4600b71 gill/models.py (GILLModel.__init__, GILL.__init__), gill/layers.py (TextFcLayer).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "io/loader.h"
#include "io/tensor_source.h"
#include "models/gill_args.h"
#include "models/gill_mapper.h"
#include "models/layers.h"

namespace gill::models {

// TextFcLayer, mode linear: model(hidden)[:, :1]. The input embeddings are NOT added in this mode.
class TextFcLinearImpl : public torch::nn::Module {
 public:
  TextFcLinearImpl(int64_t in_dim, int64_t out_dim, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& hidden);  // [B, 8, D] -> [B, 1, out]
  Linear model{nullptr};
};
TORCH_MODULE(TextFcLinear);

// The trained GILL heads of pretrained_ckpt.pth.tar (keys under `model.`), except input_embeddings.weight (the
// 8 [IMG] rows), which the pipeline writes into the LM's embedding table.
class GILLHeadsImpl : public torch::nn::Module {
 public:
  GILLHeadsImpl(const GILLDims& d, const ModuleOptions& opt);
  // CLIP pooled [B, C] -> [B, n_visual_tokens, D]  (mode 'captioning')
  torch::Tensor visual_embs(const torch::Tensor& pooled);
  // CLIP pooled [B, C] -> [B, ret_emb_dim], NOT normalised (mode 'retrieval')
  torch::Tensor visual_retrieval(const torch::Tensor& pooled);

  GILLDims dims;
  torch::Tensor logit_scale;  // [] (log scale; exp() folds into the retrieval matrix)
  Linear visual_embeddings{nullptr}, visual_fc{nullptr};
  torch::nn::ModuleList ret_text_hidden_fcs{nullptr}, gen_text_hidden_fcs{nullptr};  // registration (ckpt: .0)
  TextFcLinear ret_fc{nullptr};                                                      // = ret_text_hidden_fcs[0]
  GILLMapper mapper{nullptr};                                                        // = gen_text_hidden_fcs[0]
};
TORCH_MODULE(GILLHeads);

// The load tables (gill-spec §6.2, §6.3). Prefixes cover the key layouts the readers produce (plain
// `model.`, DDP `module.model.`, and a pickle reader that keeps the top-level `state_dict.`).
io::LoadSpec gill_heads_load_spec();
// The key prefix under which `src` stores the GILL heads ("model.", "module.model.", ...); kNotFound otherwise.
std::string find_gill_prefix(const io::TensorSource& src);

}  // namespace gill::models
