// The single-stage entry points of include/gill/tools.h over the pipeline and models. Every entry point goes
// through detail::api_boundary (callers see gill::Error only), sets threads through detail::begin_call and opens
// its own InferenceMode guard.
#include <gill/tools.h>

#include <filesystem>
#include <initializer_list>

#include "api/boundary.h"
#include "api/runtime.h"
#include "io/inspect.h"
#include "io/tensor_dump.h"
#include "io/tensor_source.h"
#include "models/clip_vision.h"
#include "pipeline/gill_index.h"
#include "pipeline/gill_model.h"
#include "pipeline/lm_generate.h"
#include "pipeline/sd_pipeline.h"
#include "tiny/tiny.h"
#include "util/error.h"

namespace gill {

namespace fs = std::filesystem;
using detail::str_cat;

namespace {

// A storage dtype from one of `allowed` ("fp32", "bf16", "fp16"); kInvalidArgument naming the field otherwise.
torch::Dtype storage_dtype(const char* field, const std::string& value, std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (value == a) return io::parse_torch_dtype(value);
    list += str_cat(list.empty() ? "" : ", ", a);
  }
  detail::fail(ErrorCode::kInvalidArgument, str_cat(field, " = \"", value, "\": must be one of ", list));
}

}  // namespace

LmResult generate_text(const LmOptions& o) {
  return detail::api_boundary("gill::generate_text", [&]() -> LmResult {
    const int threads = detail::begin_call(o.device, "LmOptions.device", o.threads);
    c10::InferenceMode guard;
    pipeline::LmRunOptions ro;
    ro.lm_dir = o.lm_dir;
    ro.prompt = o.prompt;
    ro.prompt_ids = o.prompt_ids;
    ro.max_new_tokens = o.max_new_tokens;
    ro.sampling.temperature = o.temperature;
    ro.sampling.top_p = o.top_p;
    ro.sampling.top_k = o.top_k;
    ro.sampling.seed = o.seed;
    ro.dtype = pipeline::resolve_storage_dtype(o.dtype, o.lm_dir);  // parse_lm_dtype names an unknown value
    ro.compute = detail::decide_compute(o.compute, "LmOptions.compute");
    ro.residency = o.mmap ? io::Residency::kMap : io::Residency::kMemory;
    ro.stop_on_eos = o.stop_on_eos;
    ro.stop_on_newline = o.stop_on_newline;
    ro.stop_strings = o.stop_strings;
    ro.use_cache = o.use_cache;
    ro.dump_hidden = o.dump_hidden;
    io::TensorDump dump;
    io::TensorDump* dump_ptr = o.dump_tensors.empty() ? nullptr : &dump;
    std::function<bool(const std::string&)> on_text;
    if (o.on_token) on_text = [&](const std::string& piece) { return o.on_token(piece); };
    const auto r = pipeline::run_lm(ro, on_text, dump_ptr);
    if (dump_ptr) dump.write(o.dump_tensors);
    LmResult out;
    out.prompt_ids = r.prompt_ids;
    out.new_ids = r.new_ids;
    out.text = r.text;
    out.stop_reason = r.stop_reason;
    out.load_s = r.load_s;
    out.prefill_s = r.prefill_s;
    out.decode_s = r.decode_s;
    out.threads = threads;
    out.compute = detail::compute_info(o.device, ro.dtype, o.compute, ro.compute, o.mmap);
    return out;
  });
}

Image text_to_image(const SdOptions& o) {
  return detail::api_boundary("gill::text_to_image", [&]() -> Image {
    detail::begin_call(o.device, "SdOptions.device", o.threads);
    c10::InferenceMode guard;
    pipeline::SDParams p;
    p.prompt = o.prompt;
    p.negative_prompt = o.negative_prompt;
    p.n_steps = o.steps;
    p.guidance_scale = o.guidance_scale;
    p.seed = o.seed;
    p.scheduler = o.scheduler;
    p.width = o.width;
    p.height = o.height;
    if (!o.init_latents.empty()) {
      auto src = io::open_tensors(o.init_latents);
      GILL_CHECK(src->contains("sd.latents.init"), ErrorCode::kNotFound, o.init_latents,
                 " has no tensor 'sd.latents.init'");
      p.init_latents = src->get("sd.latents.init", torch::kFloat32);
    }
    pipeline::SDOptions so;
    so.dtype = storage_dtype("SdOptions.dtype", o.dtype, {"fp32", "bf16", "fp16"});
    so.compute = detail::decide_compute(o.compute, "SdOptions.compute");
    so.residency = o.mmap ? io::Residency::kMap : io::Residency::kMemory;
    auto sd = pipeline::StableDiffusion::load(o.sd_dir, so);
    io::TensorDump dump;
    io::TensorDump* dump_ptr = o.dump_tensors.empty() ? nullptr : &dump;
    pipeline::ProgressCallback progress;
    if (o.on_progress) progress = [&](int64_t done, int64_t total) { o.on_progress("denoise", done, total); };
    Image image = sd.generate(p, progress, dump_ptr);
    if (dump_ptr) dump.write(o.dump_tensors);
    return image;
  });
}

ImageEmbeddings embed_images(const std::vector<Image>& images, const EmbedImageOptions& o) {
  return detail::api_boundary("gill::embed_images", [&]() -> ImageEmbeddings {
    detail::begin_call(o.device, "EmbedImageOptions.device", o.threads);
    c10::InferenceMode guard;
    models::ModuleOptions mo;
    mo.dtype = storage_dtype("EmbedImageOptions.dtype", o.dtype, {"fp32", "bf16", "fp16"});
    mo.compute = detail::decide_compute(o.compute, "EmbedImageOptions.compute");
    auto model = models::load_clip_vision(o.clip_dir, mo);
    const auto pp = models::CLIPImageProcessorConfig::from_file(fs::path(o.clip_dir) / "preprocessor_config.json");
    io::TensorDump dump;
    const auto pooled = models::clip_embed_images(model, pp, images, o.dump_tensors.empty() ? nullptr : &dump)
                            .to(torch::kFloat32)
                            .contiguous();  // [N, D]
    if (!o.dump_tensors.empty()) dump.write(o.dump_tensors);
    ImageEmbeddings out;
    out.dtype = io::torch_dtype_name(mo.dtype);
    out.hidden_size = pooled.size(1);
    for (int64_t i = 0; i < pooled.size(0); ++i) {
      const float* row = pooled[i].data_ptr<float>();
      out.pooled.emplace_back(row, row + out.hidden_size);
    }
    return out;
  });
}

IndexSummary build_index(const std::vector<std::string>& images, const std::string& out_dir, const IndexOptions& o) {
  return detail::api_boundary("gill::build_index", [&]() -> IndexSummary {
    detail::begin_call(o.device, "IndexOptions.device", o.threads);
    c10::InferenceMode guard;
    pipeline::IndexBuildOptions bo;
    bo.paths.root = o.weights_root;
    bo.paths.clip = o.clip_dir;
    bo.paths.gill = o.gill_dir;
    bo.dtype = pipeline::parse_lm_dtype(o.dtype);
    bo.compute = detail::decide_compute(o.compute, "IndexOptions.compute");
    if (o.on_progress) bo.progress = [&](int64_t done, int64_t total) { o.on_progress("embed", done, total); };
    const std::vector<fs::path> files(images.begin(), images.end());
    const auto index = pipeline::build_index(bo, files, out_dir);
    return IndexSummary{index.size(), index.source};
  });
}

void inspect(const std::string& path, std::ostream& out, bool json) {
  detail::api_boundary("gill::inspect", [&] {
    c10::InferenceMode guard;
    io::inspect(path, out, json);
  });
}

void make_tiny(const std::string& dir, uint64_t seed, int threads) {
  detail::api_boundary("gill::make_tiny", [&] {
    detail::begin_call("cpu", "make_tiny", threads);
    tiny::make_tiny(dir, seed);
  });
}

}  // namespace gill
