// gill bench NAME — benchmarks at real model shapes (random weights). Each bench_NAME.cpp adds one.
#include "cli_common.h"

#define GILL_BENCH(name) \
  namespace gill::cli {  \
  void register_bench_##name(CLI::App& bench, Context& ctx); \
  }
#include "gill_benches.inc"
#undef GILL_BENCH

namespace gill::cli {

void register_bench(CLI::App& app, Context& ctx) {
  auto* bench = app.add_subcommand("bench", "Benchmarks at real model shapes with random weights (JSON on stdout)");
  bench->require_subcommand(1);
#define GILL_BENCH(name) register_bench_##name(*bench, ctx);
#include "gill_benches.inc"
#undef GILL_BENCH
}

}  // namespace gill::cli
