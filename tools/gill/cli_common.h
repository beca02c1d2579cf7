// Shared pieces of the gill CLI: the context handed to every subcommand and small helpers.
// Each subcommand lives in tools/gill/cmd_NAME.cpp and defines register_NAME(CLI::App&, Context&); CMake
// collects them, so adding a command touches no other file.
#pragma once
#include <gill/error.h>

#include <CLI/CLI.hpp>

#include <functional>
#include <sstream>
#include <string>

namespace gill::cli {

struct Context {
  int threads = 0;      // -t/--threads; 0 = number of physical cores. Passed to the library call of each command
                        // (EngineOptions::threads, LmOptions::threads, ...), which sets it: the CLI sets nothing.
  int verbosity = 0;    // -v: +1, -q: -1
  std::function<int()> action;  // set by the chosen subcommand's callback; returns the exit code
};

// Applies logging from the context (called by main before the action runs).
void apply_context(const Context& ctx);
// True when stderr is a terminal and -q is not given (progress bars).
bool show_progress(const Context& ctx);

// Message building and checks for the CLI's own argument errors (gill::Error, like the library's).
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}
[[noreturn]] inline void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }
inline void require(bool ok, ErrorCode code, const std::string& message) {
  if (!ok) fail(code, message);
}

}  // namespace gill::cli

#define GILL_COMMAND(name) \
  namespace gill::cli {    \
  void register_##name(CLI::App& app, Context& ctx); \
  }
#include "gill_commands.inc"
#undef GILL_COMMAND
