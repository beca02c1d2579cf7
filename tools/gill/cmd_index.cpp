// gill index -m ROOT IMAGES... -o INDEX_DIR — a retrieval index over local images (gill::build_index), used with
// `gill run --index INDEX_DIR`.
#include <gill/progress.h>
#include <gill/tools.h>

#include <iostream>

#include "api_options.h"
#include "cli_common.h"
#include "output_checks.h"

namespace gill::cli {

namespace {
struct IndexArgs {
  IndexOptions options;
  std::string out;
  std::vector<std::string> images;
};
}  // namespace

void register_index(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand("index", "Build a retrieval index from local images (CLIP -> GILL's retrieval map)");
  auto a = std::make_shared<IndexArgs>();
  sub->add_option("IMAGES", a->images, "Image files")->required();
  sub->add_option("-m,--weights", a->options.weights_root, "Weights root (layout of weights/README.md)");
  sub->add_option("--clip", a->options.clip_dir, "CLIP folder (overrides the root)");
  sub->add_option("--gill", a->options.gill_dir, "GILL checkpoint folder (overrides the root)");
  sub->add_option("-o,--out", a->out, "Index folder (index.safetensors is written there)")->required();
  sub->add_option("--dtype", a->options.dtype, "fp32 | bf16")->capture_default_str();
  add_compute_option(sub, a->options.compute);
  sub->callback([&ctx, a] {
    ctx.action = [&ctx, a] {
      check_output_dir(a->out, "-o");
      IndexOptions o = a->options;
      o.threads = ctx.threads;
      o.on_progress = make_progress_callback(progress_style_for(stderr, ctx.verbosity < 0));
      const IndexSummary index = build_index(a->images, a->out, o);
      std::cout << "indexed " << index.n_images << " images -> " << index.path << "\n";
      return 0;
    };
  });
}

}  // namespace gill::cli
