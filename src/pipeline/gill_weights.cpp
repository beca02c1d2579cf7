// Ref: kohjingyu/gill @4600b71 gill/models.py load_gill (args, ckpt, [IMG] rows, decision model, cc3m files).
#include "pipeline/gill_weights.h"

#include "io/loader.h"
#include "io/tensor_source.h"
#include "util/error.h"

namespace gill::pipeline {

namespace fs = std::filesystem;
using detail::str_cat;

namespace {

fs::path first_existing(std::initializer_list<fs::path> candidates) {
  for (const auto& c : candidates)
    if (fs::exists(c)) return c;
  return {};
}

}  // namespace

fs::path gill_checkpoint_file(const fs::path& gill_dir) {
  GILL_CHECK(fs::is_directory(gill_dir), ErrorCode::kNotFound, gill_dir.string(), ": GILL folder not found");
  auto f = first_existing({gill_dir / "pretrained_ckpt.pth.tar", gill_dir / "pretrained_ckpt.safetensors"});
  GILL_CHECK(!f.empty(), ErrorCode::kNotFound, (gill_dir / "pretrained_ckpt.pth.tar").string(),
             ": GILL checkpoint not found");
  return f;
}

fs::path decision_model_file(const fs::path& gill_dir) {
  return first_existing({gill_dir / "decision_model.pth.tar", gill_dir / "decision_model.safetensors"});
}

ResolvedPaths resolve_weight_paths(const WeightPaths& in, bool need_sd, bool need_lm) {
  ResolvedPaths r;
  GILL_CHECK(!in.root.empty() || !in.gill.empty(), ErrorCode::kInvalidArgument,
             "no weights: give -m WEIGHTS_ROOT or --gill DIR (with ", need_lm ? "--lm, " : "", "--clip",
             need_sd ? ", --sd" : "", ")");
  r.gill = !in.gill.empty() ? in.gill : in.root / "checkpoints" / "gill_opt";
  GILL_CHECK(fs::is_directory(r.gill), ErrorCode::kNotFound, r.gill.string(),
             ": GILL folder not found (pass --gill DIR)");
  r.args = models::GILLArgs::from_file(r.gill / "model_args.json");
  auto component = [&](const fs::path& given, const std::string& id, const char* what, const char* option) {
    if (!given.empty()) {
      GILL_CHECK(fs::is_directory(given), ErrorCode::kNotFound, given.string(), ": ", what, " folder not found");
      return given;
    }
    GILL_CHECK(!in.root.empty(), ErrorCode::kInvalidArgument, "no ", what, " folder: give -m WEIGHTS_ROOT or ",
               option, " DIR");
    const fs::path p = in.root / id;
    GILL_CHECK(fs::is_directory(p), ErrorCode::kNotFound, p.string(), ": ", what, " folder not found (model_args.json ",
               "names '", id, "'; pass ", option, " DIR)");
    return p;
  };
  if (need_lm) r.lm = component(in.lm, r.args.opt_version, "LLM", "--lm");
  r.clip = component(in.clip, r.args.visual_encoder, "CLIP", "--clip");
  if (!in.sd.empty()) {
    GILL_CHECK(fs::is_directory(in.sd), ErrorCode::kNotFound, in.sd.string(), ": Stable Diffusion folder not found");
    r.sd = in.sd;
  } else if (!in.root.empty()) {
    r.sd = first_existing({in.root / "runwayml" / "stable-diffusion-v1-5",
                           in.root / "stable-diffusion-v1-5" / "stable-diffusion-v1-5"});
  }
  GILL_CHECK(!need_sd || !r.sd.empty(), ErrorCode::kNotFound,
             (in.root / "runwayml" / "stable-diffusion-v1-5").string(),
             ": Stable Diffusion folder not found (pass --sd DIR)");
  r.index = in.index;
  return r;
}

GILLWeights load_gill_weights(const fs::path& gill_dir, const models::GILLArgs& args, const fs::path& index_path,
                              torch::Dtype dtype, const torch::Device& device, const util::ComputePolicy& compute) {
  torch::NoGradGuard no_grad;
  GILLWeights w;
  w.args = args;
  const auto ckpt = gill_checkpoint_file(gill_dir);
  detail::with_context(str_cat("loading GILL heads from ", ckpt.string()), [&] {
    auto src = io::open_tensors(ckpt);
    const auto prefix = models::find_gill_prefix(*src);
    w.dims = models::GILLDims::from_checkpoint(*src, prefix, w.args);
    const models::ModuleOptions opt{dtype, device, compute};
    w.compute_dtype = models::compute_dtype(opt);
    w.heads = models::GILLHeads(w.dims, opt);
    io::load_module(*w.heads, *src, models::gill_heads_load_spec(), dtype, device);
    w.heads->eval();
    w.img_rows = src->get(prefix + "input_embeddings.weight", dtype, device).clone();  // [8, D]
    return 0;
  });
  const auto dec = decision_model_file(gill_dir);
  if (!dec.empty()) {
    detail::with_context(str_cat("loading the decision model from ", dec.string()), [&] {
      auto src = io::open_tensors(dec);
      w.decision = models::DecisionHead(w.dims.lm_hidden, models::ModuleOptions{dtype, device, compute});
      io::load_module(*w.decision, *src, models::decision_load_spec(), dtype, device);
      w.decision->eval();
      return 0;
    });
  }
  w.index = index_path.empty() ? find_index(gill_dir) : read_index(index_path);
  if (!w.index.empty()) {
    GILL_CHECK(w.index.embeddings.size(1) == w.dims.ret_emb_dim, ErrorCode::kShapeMismatch, w.index.source,
               ": retrieval embeddings are ", w.index.embeddings.size(1), " wide but the GILL checkpoint's ",
               "retrieval space is ", w.dims.ret_emb_dim);
    w.retrieval_matrix = retrieval_matrix(w.index.embeddings.to(device), w.heads->logit_scale, w.compute_dtype);
  }
  return w;
}

}  // namespace gill::pipeline
