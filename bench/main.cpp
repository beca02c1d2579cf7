// gill-bench NAME — benchmarks at real model shapes (random weights), JSON on stdout. Each bench_NAME.cpp adds one.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include <gill/system.h>

#include "bench_cli.h"
#include "util/error.h"
#include "util/threads.h"

int main(int argc, char** argv) {
  // As the gill CLI (tools/gill/main.cpp): OpenMP reads OMP_WAIT_POLICY and OpenBLAS its variables when they
  // load; re-execute once with a passive policy and gill::recommended_environment(), so a benchmark measures what
  // the CLI runs, never replacing a value the user set (that is how an A/B run picks the other value). Set
  // GILL_NO_REEXEC=1 to skip.
  if (!std::getenv("GILL_NO_REEXEC")) {
    bool changed = false;
    if (!std::getenv("OMP_WAIT_POLICY")) {
      ::setenv("OMP_WAIT_POLICY", "passive", 1);
      changed = true;
    }
    if (gill::apply_recommended_environment()) changed = true;  // what the gill CLI runs with
    if (changed) ::execv("/proc/self/exe", argv);  // only returns on failure: carry on in this process
  }
  CLI::App app{"gill-bench — gill's benchmarks at real model shapes with random weights (JSON on stdout)",
               "gill-bench"};
  app.require_subcommand(1);
  gill::cli::Context ctx;
  app.add_option("-t,--threads", ctx.threads, "CPU threads for libtorch (default: number of physical cores)")
      ->check(CLI::Range(0, 4096));
  app.add_flag_function(
      "-v,--verbose", [&](int64_t n) { ctx.verbosity += static_cast<int>(n); }, "More log output (repeat for more)");
  app.add_flag_function(
      "-q,--quiet", [&](int64_t n) { ctx.verbosity -= static_cast<int>(10 * n); }, "Errors only");
  app.fallthrough();
#define GILL_BENCH(name) gill::cli::register_bench_##name(app, ctx);
#include "gill_benches.inc"
#undef GILL_BENCH

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : gill::exit_code_for(gill::ErrorCode::kInvalidArgument);
  }
  try {
    auto level = spdlog::level::info;
    if (ctx.verbosity > 0) level = spdlog::level::debug;
    if (ctx.verbosity < 0) level = spdlog::level::err;
    auto logger = spdlog::stderr_color_mt("gill-bench");
    logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
    logger->set_level(level);
    spdlog::set_default_logger(logger);
    const int n = gill::set_threads(ctx.threads);  // the one place this program sets threads
    spdlog::debug("using {} thread(s)", n);
    return ctx.action();
  } catch (const gill::Error& e) {
    std::cerr << "gill-bench: error: " << e.what() << "\n";
    return gill::exit_code_for(e.code());
  } catch (const c10::Error& e) {
    std::cerr << "gill-bench: error: " << gill::detail::c10_message(e) << "\n";
    return gill::exit_code_for(gill::ErrorCode::kInternal);
  } catch (const std::exception& e) {
    std::cerr << "gill-bench: error: " << e.what() << "\n";
    return gill::exit_code_for(gill::ErrorCode::kInternal);
  }
}
