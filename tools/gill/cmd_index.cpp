// gill index -m ROOT IMAGES... -o INDEX_DIR — a retrieval index over local images (pipeline/gill_index.h),
// used with `gill run --index INDEX_DIR`.
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli_common.h"
#include "output_checks.h"
#include "pipeline/gill_index.h"
#include "pipeline/lm_generate.h"
#include "util/error.h"
#include "util/progress.h"

namespace gill::cli {

namespace {
struct IndexArgs {
  std::string root, clip, gill, out, dtype = "fp32";
  std::vector<std::string> images;
};
}  // namespace

void register_index(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand("index", "Build a retrieval index from local images (CLIP -> GILL's retrieval map)");
  auto a = std::make_shared<IndexArgs>();
  sub->add_option("IMAGES", a->images, "Image files")->required();
  sub->add_option("-m,--weights", a->root, "Weights root (layout of weights/README.md)");
  sub->add_option("--clip", a->clip, "CLIP folder (overrides the root)");
  sub->add_option("--gill", a->gill, "GILL checkpoint folder (overrides the root)");
  sub->add_option("-o,--out", a->out, "Index folder (index.safetensors is written there)")->required();
  sub->add_option("--dtype", a->dtype, "fp32 | bf16")->capture_default_str();
  sub->callback([&ctx, a] {
    ctx.action = [&ctx, a] {
      check_output_dir(a->out, "-o");
      pipeline::IndexBuildOptions o;
      o.paths.root = a->root;
      o.paths.clip = a->clip;
      o.paths.gill = a->gill;
      o.dtype = pipeline::parse_lm_dtype(a->dtype);
      auto bar = make_progress_callback(progress_style_for(stderr, ctx.verbosity < 0));
      o.progress = [bar](int64_t done, int64_t total) { bar("embed", done, total); };
      std::vector<std::filesystem::path> images(a->images.begin(), a->images.end());
      auto index = pipeline::build_index(o, images, a->out);
      std::cout << "indexed " << index.size() << " images -> " << index.source << "\n";
      return 0;
    };
  });
}

}  // namespace gill::cli
