// Ref: kohjingyu/gill @4600b71 gill/models.py load_gill (tokenizer extension, resize_token_embeddings, the
// [IMG] rows copied into the last rows of the table), GILLModel.get_visual_embs.
#include "pipeline/gill_model.h"

#include <chrono>

#include "util/error.h"

namespace gill::pipeline {

using detail::str_cat;

DecoderLM::Out OPTDecoderLM::feed(const torch::Tensor& embeds) {
  auto out = lm_->forward(embeds, &cache_, false);
  return {out.logits[0], out.last_hidden[0]};  // [n, V], [n, D]
}

torch::Tensor OPTDecoderLM::embed(const std::vector<int64_t>& ids) {
  return lm_->embed_tokens(torch::tensor(ids, torch::kInt64).unsqueeze(0));  // [1, n, D]
}

std::unique_ptr<GILLModel> GILLModel::load(const GILLModelOptions& options) {
  torch::NoGradGuard no_grad;
  auto t0 = std::chrono::steady_clock::now();
  auto m = std::make_unique<GILLModel>();
  m->paths = options.resolved ? *options.resolved : resolve_weight_paths(options.paths, options.load_sd);
  const auto& args = m->paths.args;
  m->weights = load_gill_weights(m->paths.gill, args, m->paths.index, options.dtype);
  const auto& dims = m->weights.dims;

  // Tokenizer: OPT's, plus <|image|> and [IMG0..7]; their ids must be model_args.json's.
  m->tok = detail::with_context(str_cat("loading the tokenizer from ", m->paths.lm.string()),
                                [&] { return tokenizer::load_tokenizer(m->paths.lm, "auto"); });
  auto img_ids = tokenizer::add_gill_tokens(*m->tok);
  GILL_CHECK(img_ids == args.retrieval_token_idx, ErrorCode::kShapeMismatch,
             (m->paths.gill / "model_args.json").string(), ": retrieval_token_idx does not match the tokenizer's ",
             "[IMG0..7] ids (", img_ids.front(), "..", img_ids.back(), ")");
  m->token_ids.img = img_ids;
  auto nl = m->tok->encode("\n", false);
  GILL_CHECK(!nl.empty(), ErrorCode::kFormat, m->paths.lm.string(), ": the tokenizer cannot encode a newline");
  m->token_ids.newline = nl[0];

  // OPT, its table extended to len(tokenizer), the trained [IMG] rows written into rows [-8:].
  m->lm = models::load_opt(m->paths.lm, models::ModuleOptions{options.dtype, torch::kCPU, options.compute});
  GILL_CHECK(m->lm->config().word_embed_proj_dim == dims.lm_hidden, ErrorCode::kShapeMismatch,
             m->paths.lm.string(), ": the LLM's embedding width ", m->lm->config().word_embed_proj_dim,
             " differs from the GILL checkpoint's ", dims.lm_hidden);
  m->lm->resize_token_embeddings(static_cast<int64_t>(m->tok->size()));
  auto table = m->lm->embedding_weight();
  for (size_t k = 0; k < img_ids.size(); ++k)
    table[img_ids[k]].copy_(m->weights.img_rows[static_cast<int64_t>(k)].to(table.scalar_type()));

  m->clip = models::load_clip_vision(m->paths.clip, models::ModuleOptions{options.dtype, torch::kCPU, options.compute});
  GILL_CHECK(m->clip->config().hidden_size == dims.clip_hidden, ErrorCode::kShapeMismatch, m->paths.clip.string(),
             ": CLIP's width ", m->clip->config().hidden_size, " differs from the GILL checkpoint's ",
             dims.clip_hidden);
  m->clip_preprocess = models::CLIPImageProcessorConfig::from_file(m->paths.clip / "preprocessor_config.json");
  if (options.load_sd && !m->paths.sd.empty()) {
    m->sd = std::make_unique<StableDiffusion>(StableDiffusion::load(m->paths.sd, SDOptions{options.dtype, torch::kCPU, options.compute}));
    const int64_t cross = m->sd->unet()->config.cross_attention_dim;
    GILL_CHECK(cross == dims.gen_emb_dim, ErrorCode::kShapeMismatch, m->paths.sd.string(),
               ": the UNet's cross_attention_dim ", cross, " differs from the GILL mapper's output width ",
               dims.gen_emb_dim, " (", (m->paths.gill / "model_args.json").string(), ")");
  }
  m->load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

torch::Tensor GILLModel::clip_pooled(const gill::Image& img, io::TensorDump* dump) {
  return models::clip_embed_images(clip, clip_preprocess, {img}, dump);  // [1, C]
}

Backbones GILLModel::backbones(OPTDecoderLM& lm_adaptor, io::TensorDump* dump, const SDParams* sd_params,
                                const pipeline::ProgressCallback& sd_progress) {
  Backbones b;
  b.lm = &lm_adaptor;
  b.token_ids = token_ids;
  b.tokenize = [this](const std::string& text, bool add_bos) { return tok->encode(text, add_bos); };
  b.detokenize = [this](const std::vector<int64_t>& ids) { return tok->decode(ids, true); };
  b.clip_pooled = [this, dump](const gill::Image& img) { return clip_pooled(img, dump); };
  if (sd && sd_params) {
    b.generate_image = [this, params = *sd_params, sd_progress, dump](const torch::Tensor& prompt_embeds,
                                                                      uint64_t seed) {
      SDParams p = params;
      p.prompt_embeds = prompt_embeds;
      p.seed = seed;
      return sd->generate(p, sd_progress, dump);
    };
  }
  return b;
}

}  // namespace gill::pipeline
