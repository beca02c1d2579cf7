// Ref: kohjingyu/gill @4600b71 gill/models.py (GILLModel.__init__), gill/layers.py (TextFcLayer).
#include "models/gill_heads.h"

#include "util/error.h"

namespace gill::models {

using detail::str_cat;

TextFcLinearImpl::TextFcLinearImpl(int64_t in_dim, int64_t out_dim, const ModuleOptions& opt) {
  model = register_module("model", Linear(in_dim, out_dim, true, opt));
}

torch::Tensor TextFcLinearImpl::forward(const torch::Tensor& hidden) {
  return model(hidden).narrow(1, 0, 1);  // [B, 1, out]: num_output_tokens = 1
}

GILLHeadsImpl::GILLHeadsImpl(const GILLDims& d, const ModuleOptions& opt) : dims(d) {
  logit_scale = register_parameter("logit_scale", torch::empty({}, opt.tensor()), false);
  visual_embeddings =
      register_module("visual_embeddings", Linear(d.clip_hidden, d.n_visual_tokens * d.lm_hidden, true, opt));
  visual_fc = register_module("visual_fc", Linear(d.clip_hidden, d.ret_emb_dim, true, opt));
  ret_fc = TextFcLinear(d.lm_hidden, d.ret_emb_dim, opt);
  mapper = GILLMapper(d, opt);
  ret_text_hidden_fcs = register_module("ret_text_hidden_fcs", torch::nn::ModuleList(ret_fc));
  gen_text_hidden_fcs = register_module("gen_text_hidden_fcs", torch::nn::ModuleList(mapper));
}

torch::Tensor GILLHeadsImpl::visual_embs(const torch::Tensor& pooled) {
  return visual_embeddings(pooled).view({pooled.size(0), dims.n_visual_tokens, dims.lm_hidden});  // [B, 4, D]
}

torch::Tensor GILLHeadsImpl::visual_retrieval(const torch::Tensor& pooled) {
  return visual_fc(pooled);
}

// ---------------------------------------------------------------------------------------------- load tables

namespace {
const std::vector<std::string> kGillPrefixes = {"model.", "module.model.", "state_dict.model.",
                                                "state_dict.module.model."};
}

io::LoadSpec gill_heads_load_spec() {
  io::LoadSpec spec;
  spec.prefixes = kGillPrefixes;
  // The 8 trained [IMG] rows: read separately and written into the LM's embedding table (gill-spec §6.2).
  spec.allowed_extra = {"(state_dict\\.)?(module\\.)?model\\.input_embeddings\\.weight"};
  return spec;
}

std::string find_gill_prefix(const io::TensorSource& src) {
  for (const auto& p : kGillPrefixes)
    if (src.contains(p + "logit_scale")) return p;
  detail::fail(ErrorCode::kNotFound, str_cat(src.description(), ": not a GILL checkpoint (no 'model.logit_scale'",
                                             " under any of the prefixes model., module.model., state_dict.model.)"));
}

}  // namespace gill::models
