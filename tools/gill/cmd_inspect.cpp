// gill inspect PATH — one line per tensor (name, dtype, shape, file) for a weights file or a model folder.
#include <gill/tools.h>

#include <iostream>

#include "cli_common.h"

namespace gill::cli {

void register_inspect(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand("inspect", "List the tensors (and non-tensor entries) of a weights file or folder");
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  sub->add_option("PATH", *path, "A .safetensors / .bin / .pth.tar / .npy / .index.json file, or a model folder")
      ->required();
  sub->add_flag("--json", *json, "One JSON object per line instead of columns");
  sub->callback([&ctx, path, json] {
    ctx.action = [path, json] {
      inspect(*path, std::cout, *json);
      return 0;
    };
  });
}

}  // namespace gill::cli
