// gill-bench — the benchmark program (bench/, built as `gill-bench`, not installed). Each bench_NAME.cpp defines
// gill::cli::register_bench_NAME(CLI::App& bench, Context&) -> `gill-bench NAME`; CMake collects them, so adding
// a benchmark touches no other file. Benchmarks may use the library's internals (src/).
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace gill::cli {

struct Context {
  int threads = 0;              // -t/--threads; 0 = number of physical cores
  int verbosity = 0;            // -v: +1, -q: -1
  std::function<int()> action;  // set by the chosen benchmark's callback; returns the exit code
};

}  // namespace gill::cli

#define GILL_BENCH(name)                                     \
  namespace gill::cli {                                      \
  void register_bench_##name(CLI::App& bench, Context& ctx); \
  }
#include "gill_benches.inc"
#undef GILL_BENCH
