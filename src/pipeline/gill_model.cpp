// Ref: kohjingyu/gill @4600b71 gill/models.py load_gill (tokenizer extension, resize_token_embeddings, the
// [IMG] rows copied into the last rows of the table), GILLModel.get_visual_embs.
#include "pipeline/gill_model.h"

#include <unistd.h>

#include <chrono>

#include "io/tensor_source.h"
#include "util/error.h"

namespace gill::pipeline {

using detail::str_cat;

namespace {
models::ModuleOptions module_options(const GILLModelOptions& o) {
  models::ModuleOptions mo{o.dtype, torch::kCPU, o.compute};
  mo.residency = o.residency;
  return mo;
}
}  // namespace

torch::Dtype auto_storage_dtype(int64_t lm_fp32_bytes, double ram_bytes) {
  return static_cast<double>(lm_fp32_bytes) > 0.5 * ram_bytes ? torch::kBFloat16 : torch::kFloat32;
}

torch::Dtype auto_storage_dtype(const std::filesystem::path& lm_dir) {
  int64_t bytes = 0;
  try {
    bytes = models::fp32_parameter_bytes(lm_dir);
  } catch (const std::exception&) {
    return torch::kFloat32;
  }
  const double ram = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGE_SIZE));
  return auto_storage_dtype(bytes, ram);
}

std::string resolve_storage_dtype(const std::string& dtype, const std::filesystem::path& lm_dir) {
  return dtype == "auto" ? io::torch_dtype_name(auto_storage_dtype(lm_dir)) : dtype;
}

std::unique_ptr<GILLModel> GILLModel::load(const GILLModelOptions& options) {
  torch::NoGradGuard no_grad;
  auto t0 = std::chrono::steady_clock::now();
  auto m = std::make_unique<GILLModel>();
  m->paths = options.resolved ? *options.resolved : resolve_weight_paths(options.paths, options.load_sd);
  const auto& args = m->paths.args;
  m->weights = load_gill_weights(m->paths.gill, args, m->paths.index, options.dtype, torch::kCPU, options.compute);
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

  // The LLM, its table extended to len(tokenizer), the trained [IMG] rows written into rows [-8:].
  m->lm = models::load_causal_lm(m->paths.lm, module_options(options));
  GILL_CHECK(m->lm->embed_dim() == dims.lm_hidden, ErrorCode::kShapeMismatch, m->paths.lm.string(),
             ": the LLM's embedding width ", m->lm->embed_dim(), " differs from the GILL checkpoint's ",
             dims.lm_hidden);
  m->lm->resize_token_embeddings(static_cast<int64_t>(m->tok->size()));
  m->lm->set_token_embeddings(img_ids, m->weights.img_rows);

  m->clip = models::load_clip_vision(m->paths.clip, module_options(options));
  GILL_CHECK(m->clip->config().hidden_size == dims.clip_hidden, ErrorCode::kShapeMismatch, m->paths.clip.string(),
             ": CLIP's width ", m->clip->config().hidden_size, " differs from the GILL checkpoint's ",
             dims.clip_hidden);
  m->clip_preprocess = models::CLIPImageProcessorConfig::from_file(m->paths.clip / "preprocessor_config.json");
  if (options.load_sd && !m->paths.sd.empty()) {
    m->sd = std::make_unique<StableDiffusion>(
        StableDiffusion::load(m->paths.sd, SDOptions{options.dtype, torch::kCPU, options.compute, options.residency}));
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

Backbones GILLModel::backbones(DecoderLM& lm_adaptor, io::TensorDump* dump, const SDParams* sd_params,
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
