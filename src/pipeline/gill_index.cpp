// Ref: kohjingyu/gill @4600b71 scripts/extract_img_embs.py.
#include "pipeline/gill_index.h"

#include "io/image.h"
#include "models/clip_image_processor.h"
#include "models/clip_vision.h"
#include "util/error.h"

namespace gill::pipeline {

namespace fs = std::filesystem;
using detail::str_cat;

RetrievalIndex build_index(const IndexBuildOptions& options, const std::vector<fs::path>& images,
                           const fs::path& out_dir) {
  torch::NoGradGuard no_grad;
  GILL_CHECK(!images.empty(), ErrorCode::kInvalidArgument, "gill index: no images given");
  GILL_CHECK(!out_dir.empty(), ErrorCode::kInvalidArgument, "gill index: no output folder given");
  std::vector<gill::Image> decoded;
  decoded.reserve(images.size());
  for (const auto& p : images) decoded.push_back(io::load_image(p));

  // Only the GILL folder and CLIP are needed (not the LLM or Stable Diffusion).
  const ResolvedPaths paths = resolve_weight_paths(options.paths, /*need_sd=*/false, /*need_lm=*/false);
  GILLWeights w = load_gill_weights(paths.gill, paths.args, /*index_path=*/"", options.dtype, torch::kCPU, options.compute);
  auto clip = models::load_clip_vision(paths.clip, models::ModuleOptions{options.dtype, torch::kCPU, options.compute});
  GILL_CHECK(clip->config().hidden_size == w.dims.clip_hidden, ErrorCode::kShapeMismatch, paths.clip.string(),
             ": CLIP's width ", clip->config().hidden_size, " differs from the GILL checkpoint's ", w.dims.clip_hidden);
  const auto pre = models::CLIPImageProcessorConfig::from_file(paths.clip / "preprocessor_config.json");

  RetrievalIndex index;
  std::vector<torch::Tensor> rows;
  const fs::path base = fs::weakly_canonical(fs::absolute(out_dir));
  for (size_t k = 0; k < decoded.size(); ++k) {
    auto pooled = models::clip_embed_images(clip, pre, {decoded[k]});  // [1, C]
    auto emb = w.heads->visual_retrieval(pooled.to(w.compute_dtype)).reshape({-1});
    rows.push_back(emb.to(torch::kFloat32));
    const fs::path abs = fs::weakly_canonical(fs::absolute(images[k]));
    const fs::path rel = abs.lexically_relative(base);
    index.paths.push_back(rel.empty() ? abs.string() : rel.generic_string());
    if (options.progress) options.progress(static_cast<int64_t>(k) + 1, static_cast<int64_t>(decoded.size()));
  }
  index.embeddings = torch::stack(rows);  // [N, R]
  index.base_dir = out_dir;
  write_index(out_dir, index);
  index.source = (out_dir / kIndexFileName).string();
  return index;
}

}  // namespace gill::pipeline
