// gill embed-image --clip DIR IMAGE... — the CLIP stage alone: preprocessing + vision tower, pooled outputs.
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "io/tensor_dump.h"
#include "models/clip_vision.h"
#include "output_checks.h"
#include "util/error.h"
#if __has_include("io/image.h")
#include "io/image.h"
#define GILL_HAVE_IMAGE_LOADER 1
#endif

namespace gill::cli {
namespace {

struct EmbedImageOptions {
  std::string clip_dir;
  std::vector<std::string> images;
  std::string dtype = "bf16";  // CPU default for CLIP (DESIGN.md); GEMMs run in fp32 on bf16 weights
  std::string dump_path;
  bool json = false;
};

gill::Image load_image_file(const std::string& path) {
#ifdef GILL_HAVE_IMAGE_LOADER
  return io::load_image(path);
#else
  detail::fail(ErrorCode::kUnsupported, path + ": this build has no image loader (src/io/image.h)");
#endif
}

int run(const EmbedImageOptions& o) {
  if (!o.dump_path.empty()) check_output_file(o.dump_path, "--dump-tensors");
  const auto dtype = io::parse_torch_dtype(o.dtype);
  GILL_CHECK(dtype == torch::kFloat32 || dtype == torch::kBFloat16 || dtype == torch::kFloat16,
             ErrorCode::kInvalidArgument, "--dtype ", o.dtype, ": expected fp32, bf16 or fp16");
  models::ModuleOptions mo;
  mo.dtype = dtype;
  auto model = models::load_clip_vision(o.clip_dir, mo);
  const auto pp = models::CLIPImageProcessorConfig::from_file(std::filesystem::path(o.clip_dir) /
                                                              "preprocessor_config.json");
  std::vector<gill::Image> images;
  for (const auto& p : o.images) images.push_back(load_image_file(p));
  io::TensorDump dump;
  const auto pooled = models::clip_embed_images(model, pp, images, o.dump_path.empty() ? nullptr : &dump).to(
      torch::kFloat32);  // [N, D]
  if (!o.dump_path.empty()) dump.write(o.dump_path);

  nlohmann::json j;
  j["clip"] = o.clip_dir;
  j["dtype"] = io::torch_dtype_name(dtype);
  j["hidden_size"] = pooled.size(1);
  for (size_t i = 0; i < images.size(); ++i) {
    const auto row = pooled[static_cast<int64_t>(i)];
    const auto head = row.slice(0, 0, std::min<int64_t>(4, row.size(0)));
    nlohmann::json e;
    e["image"] = o.images[i];
    e["size"] = {images[i].width, images[i].height};
    e["pooled_norm"] = row.norm().item<double>();
    e["pooled_head"] = std::vector<float>(head.data_ptr<float>(), head.data_ptr<float>() + head.numel());
    j["images"].push_back(e);
  }
  if (o.json) {
    std::cout << j.dump() << std::endl;
    return 0;
  }
  std::cout << "CLIP pooled output: " << images.size() << " x " << pooled.size(1) << " (" << j["dtype"].get<std::string>()
            << ")\n";
  for (const auto& e : j["images"]) {
    std::cout << "  " << e["image"].get<std::string>() << " (" << e["size"][0] << "x" << e["size"][1]
              << "): norm " << std::fixed << std::setprecision(4) << e["pooled_norm"].get<double>() << ", first [";
    for (size_t k = 0; k < e["pooled_head"].size(); ++k)
      std::cout << (k ? ", " : "") << std::setprecision(5) << e["pooled_head"][k].get<double>();
    std::cout << "]\n";
  }
  if (!o.dump_path.empty()) std::cout << "tensors written to " << o.dump_path << "\n";
  return 0;
}

}  // namespace

void register_embed_image(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand("embed-image", "Run the CLIP vision tower on images: pooled outputs (GILL's image input)");
  auto o = std::make_shared<EmbedImageOptions>();
  sub->add_option("--clip", o->clip_dir, "CLIP model folder (config.json, weights, preprocessor_config.json)")
      ->required();
  sub->add_option("IMAGE", o->images, "Image files (PNG, JPEG, BMP, GIF, ...)")->required();
  sub->add_option("--dtype", o->dtype, "Model dtype: fp32 | bf16 (bf16 keeps bf16 weights, GEMMs in fp32)")
      ->capture_default_str();
  sub->add_option("--dump-tensors", o->dump_path, "Write clip.pixel_values and clip.pooled to this .safetensors file");
  sub->add_flag("--json", o->json, "Print one JSON object instead of the summary");
  sub->callback([&ctx, o] { ctx.action = [o] { return run(*o); }; });
}

}  // namespace gill::cli
