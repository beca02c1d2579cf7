// Shared pieces of the gill CLI: the context handed to every subcommand and small helpers.
// Each subcommand lives in tools/gill/cmd_NAME.cpp and defines register_NAME(CLI::App&, Context&); CMake
// collects them, so adding a command touches no other file.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace gill::cli {

struct Context {
  int threads = 0;      // -t/--threads; 0 = number of physical cores
  int verbosity = 0;    // -v: +1, -q: -1
  std::function<int()> action;  // set by the chosen subcommand's callback; returns the exit code
};

// Applies threads and logging from the context (called by main before the action runs).
void apply_context(const Context& ctx);
// True when stderr is a terminal and -q is not given (progress bars).
bool show_progress(const Context& ctx);

}  // namespace gill::cli

#define GILL_COMMAND(name) \
  namespace gill::cli {    \
  void register_##name(CLI::App& app, Context& ctx); \
  }
#include "gill_commands.inc"
#undef GILL_COMMAND
