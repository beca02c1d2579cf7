// gill embed-image --clip DIR IMAGE... — the CLIP stage alone (gill::embed_images): preprocessing + vision tower,
// pooled outputs.
#include <gill/gill.h>
#include <gill/tools.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "api_options.h"
#include "cli_common.h"
#include "output_checks.h"

namespace gill::cli {
namespace {

struct EmbedImageArgs {
  EmbedImageOptions options;  // dtype default bf16: the CPU default for CLIP (DESIGN.md); GEMMs run in fp32
  std::vector<std::string> images;
  bool json = false;
};

int run(const EmbedImageArgs& a, const Context& ctx) {
  if (!a.options.dump_tensors.empty()) check_output_file(a.options.dump_tensors, "--dump-tensors");
  std::vector<Image> images;
  for (const auto& p : a.images) images.push_back(read_image(p));
  EmbedImageOptions eo = a.options;
  eo.threads = ctx.threads;
  const ImageEmbeddings emb = embed_images(images, eo);

  nlohmann::json j;
  j["clip"] = a.options.clip_dir;
  j["dtype"] = emb.dtype;
  j["hidden_size"] = emb.hidden_size;
  for (size_t i = 0; i < images.size(); ++i) {
    const auto& row = emb.pooled[i];
    double sq = 0;
    for (float v : row) sq += static_cast<double>(v) * v;
    nlohmann::json e;
    e["image"] = a.images[i];
    e["size"] = {images[i].width, images[i].height};
    e["pooled_norm"] = std::sqrt(sq);
    e["pooled_head"] = std::vector<float>(row.begin(), row.begin() + std::min<size_t>(4, row.size()));
    j["images"].push_back(e);
  }
  if (a.json) {
    std::cout << j.dump() << std::endl;
    return 0;
  }
  std::cout << "CLIP pooled output: " << images.size() << " x " << emb.hidden_size << " (" << emb.dtype
            << ")\n";
  for (const auto& e : j["images"]) {
    std::cout << "  " << e["image"].get<std::string>() << " (" << e["size"][0] << "x" << e["size"][1]
              << "): norm " << std::fixed << std::setprecision(4) << e["pooled_norm"].get<double>() << ", first [";
    for (size_t k = 0; k < e["pooled_head"].size(); ++k)
      std::cout << (k ? ", " : "") << std::setprecision(5) << e["pooled_head"][k].get<double>();
    std::cout << "]\n";
  }
  if (!a.options.dump_tensors.empty()) std::cout << "tensors written to " << a.options.dump_tensors << "\n";
  return 0;
}

}  // namespace

void register_embed_image(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand("embed-image", "Run the CLIP vision tower on images: pooled outputs (GILL's image input)");
  auto a = std::make_shared<EmbedImageArgs>();
  sub->add_option("--clip", a->options.clip_dir, "CLIP model folder (config.json, weights, preprocessor_config.json)")
      ->required();
  sub->add_option("IMAGE", a->images, "Image files (PNG, JPEG, BMP, GIF, ...)")->required();
  sub->add_option("--dtype", a->options.dtype, "Model dtype: fp32 | bf16 | fp16 (storage; see --compute)")
      ->capture_default_str();
  add_compute_option(sub, a->options.compute);
  sub->add_option("--dump-tensors", a->options.dump_tensors, "Write clip.pixel_values and clip.pooled to this .safetensors file");
  sub->add_flag("--json", a->json, "Print one JSON object instead of the summary");
  sub->callback([&ctx, a] { ctx.action = [&ctx, a] { return run(*a, ctx); }; });
}

}  // namespace gill::cli
