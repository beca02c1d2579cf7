// gill — command-line front end. Parses, calls the library, writes outputs; no tensor code here.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include <gill/error.h>
#include <gill/gill.h>
#include <gill/system.h>

#include "cli_common.h"

namespace gill::cli {

void apply_context(const Context& ctx) {
  auto level = spdlog::level::info;
  if (ctx.verbosity > 0) level = spdlog::level::debug;
  if (ctx.verbosity > 1) level = spdlog::level::trace;
  if (ctx.verbosity < 0) level = spdlog::level::err;
  auto logger = spdlog::stderr_color_mt("gill");
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

bool show_progress(const Context& ctx) { return ctx.verbosity >= 0 && ::isatty(STDERR_FILENO); }

}  // namespace gill::cli

int main(int argc, char** argv) {
  // OpenMP reads OMP_WAIT_POLICY and OpenBLAS reads OPENBLAS_CORETYPE when they load, before main. On small
  // machines OpenMP's busy-waiting workers fight OpenBLAS's threads (fp32 up to 2x slower), and Debian's OpenBLAS
  // runs its slowest kernels on CPU models it does not name; so re-execute once with a passive policy and the
  // core type the CPU probe confirms (gill::recommended_environment), never replacing a value the user set.
  // Set GILL_NO_REEXEC=1 to skip.
  if (!std::getenv("GILL_NO_REEXEC")) {
    bool changed = false;
    if (!std::getenv("OMP_WAIT_POLICY")) {
      ::setenv("OMP_WAIT_POLICY", "passive", 1);
      changed = true;
    }
    if (gill::apply_recommended_environment()) changed = true;
    if (changed) ::execv("/proc/self/exe", argv);  // only returns on failure: carry on in this process
  }

  CLI::App app{"gill — native inference for GILL (Generating Images with Multimodal Language Models)", "gill"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] {
    const auto s = gill::system_info();
    return std::string("gill ") + gill::version() + "\ncpu: " + s.cpu + "\ncompute (auto): " + s.compute_auto +
           "\nopenblas: " + (s.openblas_core.empty() ? "(not loaded)" : s.openblas_core);
  });
  gill::cli::Context ctx;
  app.add_option("-t,--threads", ctx.threads, "CPU threads for libtorch (default: number of physical cores)")
      ->check(CLI::Range(0, 4096));
  app.add_flag_function("-v,--verbose", [&](int64_t n) { ctx.verbosity += static_cast<int>(n); },
                        "More log output (repeat for more)");
  app.add_flag_function("-q,--quiet", [&](int64_t n) { ctx.verbosity -= static_cast<int>(10 * n); },
                        "Errors only, no progress bars");
  app.fallthrough();

#define GILL_COMMAND(name) gill::cli::register_##name(app, ctx);
#include "gill_commands.inc"
#undef GILL_COMMAND

  // The first word that is not an option names the command; CLI11 alone would only say "A subcommand is required".
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-t" || arg == "--threads") {
      ++i;
      continue;
    }
    if (arg == "--") break;
    if (!arg.empty() && arg[0] == '-') continue;
    if (!app.get_subcommands([&](CLI::App* s) { return s->check_name(arg); }).empty()) break;
    std::string names;
    for (const CLI::App* s : app.get_subcommands([](CLI::App*) { return true; }))
      names += (names.empty() ? "" : ", ") + s->get_name();
    std::cerr << "gill: error: unknown command '" << arg << "' (commands: " << names << ")\n";
    return gill::exit_code_for(gill::ErrorCode::kInvalidArgument);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return gill::exit_code_for(gill::ErrorCode::kInvalidArgument);
  } catch (const gill::Error& e) {
    std::cerr << "gill: error: " << e.what() << "\n";
    return gill::exit_code_for(e.code());
  }
  if (!ctx.action) {
    std::cerr << app.help();
    return gill::exit_code_for(gill::ErrorCode::kInvalidArgument);
  }
  try {
    gill::cli::apply_context(ctx);
    return ctx.action();
  } catch (const gill::Error& e) {
    std::cerr << "gill: error: " << e.what() << "\n";
    return gill::exit_code_for(e.code());
  } catch (const std::exception& e) {
    std::cerr << "gill: error: " << e.what() << "\n";
    return gill::exit_code_for(gill::ErrorCode::kInternal);
  }
}
