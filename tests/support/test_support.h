// Helpers shared by gill's tests: paths, fixture lookup, tensor comparison with worst-element reports, running
// the CLI.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/error.h"

namespace gill::test {

std::filesystem::path source_dir();  // the repository root
std::filesystem::path data_dir();    // tests/data
std::filesystem::path shared_dir();  // $GILL_SHARED_DIR or <repo>/../shared (may not exist)
std::filesystem::path cli_path();    // the built gill binary
// A fresh, empty temporary folder removed at process exit is NOT guaranteed: tests clean up what they create.
std::filesystem::path temp_dir(const std::string& tag);

// True when the environment sets GILL_REQUIRE_SHARED=1 (tools/scripts/test.sh does when ../shared exists).
bool shared_required();
// For a test that needs a file of ../shared (fixtures, tokenizer data, upstream files): when `p` does not exist,
// skips the current test (GTEST_SKIP, reported as skipped by CTest) with the path, or fails it when
// shared_required(), so a run that has ../shared cannot pass with its parity tests skipped. Use as:
//   GILL_REQUIRE_PATH(shared_dir() / "fixtures");
#define GILL_REQUIRE_PATH(p)                                                                                  \
  do {                                                                                                        \
    if (!std::filesystem::exists(p)) {                                                                        \
      if (::gill::test::shared_required())                                                                    \
        FAIL() << "missing " << (p).string() << " while GILL_REQUIRE_SHARED=1 ("                              \
               << ::gill::test::shared_dir().string() << " must hold it)";                                    \
      GTEST_SKIP() << "missing " << (p).string() << " (skipped; GILL_REQUIRE_SHARED=1 makes this a failure)"; \
    }                                                                                                         \
  } while (0)

// Compares `actual` with `expected` elementwise: |a-e| <= atol + rtol*|e|. On failure the message names `what`,
// the worst element's index, both values, and the max abs / rel error.
::testing::AssertionResult tensors_close(const torch::Tensor& actual, const torch::Tensor& expected, double rtol,
                                         double atol, const std::string& what = "");
// Max |a-e| / max|e| (a relative error over the whole tensor).
double rel_error(const torch::Tensor& actual, const torch::Tensor& expected);

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};
// Runs the gill CLI with args (shell-quoted for you), optional stdin text. `wrapper`: a command the binary runs
// under (e.g. {"setpriv", ..., "--"}), empty for none.
CliResult run_cli(const std::vector<std::string>& args, const std::string& stdin_text = "",
                  const std::vector<std::string>& wrapper = {});
// The same for another program (e.g. bench_path()).
CliResult run_program(const std::filesystem::path& exe, const std::vector<std::string>& args,
                      const std::string& stdin_text = "", const std::vector<std::string>& wrapper = {});
// gill-bench, built beside the gill CLI.
std::filesystem::path bench_path();

// The message of the gill::Error that fn throws, or "no error".
std::string error_of(const std::function<void()>& fn);
// fn throws a gill::Error with this code and exactly this message.
template <typename Fn>
void expect_error(Fn&& fn, ErrorCode code, const std::string& message) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected: " << message;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_EQ(std::string(e.what()), message);
  }
}
std::filesystem::path io_data(const std::string& name);                  // tests/data/io/NAME
std::string bytes(std::initializer_list<int> b);                         // a byte string from small integers
std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& p);  // the non-empty lines of a JSON-lines file

}  // namespace gill::test
