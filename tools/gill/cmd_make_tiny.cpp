// gill make-tiny DIR [--seed N] — writes a complete tiny GILL (random weights, real layouts) for tests and demos.
#include <gill/tools.h>

#include <iostream>

#include "cli_common.h"

namespace gill::cli {

void register_make_tiny(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand("make-tiny", "Write a tiny random GILL in the weights layout (outputs are noise)");
  auto dir = std::make_shared<std::string>();
  auto seed = std::make_shared<uint64_t>(0);
  sub->add_option("DIR", *dir, "Folder to write (created when missing)")->required();
  sub->add_option("--seed", *seed, "Random seed (same seed, same files)");
  sub->callback([&ctx, dir, seed] {
    ctx.action = [&ctx, dir, seed] {
      make_tiny(*dir, *seed, ctx.threads);
      std::cout << "wrote tiny GILL to " << *dir << "\n";
      return 0;
    };
  });
}

}  // namespace gill::cli
