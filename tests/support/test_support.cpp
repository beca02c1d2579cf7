#include "test_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

namespace gill::test {

namespace fs = std::filesystem;

fs::path source_dir() {
  return fs::path(GILL_SOURCE_DIR);
}
fs::path data_dir() {
  return source_dir() / "tests" / "data";
}
fs::path shared_dir() {
  if (const char* e = std::getenv("GILL_SHARED_DIR")) return fs::path(e);
  return fs::weakly_canonical(source_dir() / ".." / "shared");
}
fs::path cli_path() {
  return fs::path(GILL_CLI_PATH);
}
bool shared_required() {
  const char* e = std::getenv("GILL_REQUIRE_SHARED");
  return e && std::string(e) == "1";
}

fs::path temp_dir(const std::string& tag) {
  std::random_device rd;
  fs::path p = fs::temp_directory_path() /
               ("gill-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd() % 1000000));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

double rel_error(const torch::Tensor& actual, const torch::Tensor& expected) {
  auto a = actual.detach().to(torch::kCPU, torch::kFloat64);
  auto e = expected.detach().to(torch::kCPU, torch::kFloat64);
  double denom = e.abs().max().item<double>();
  if (denom == 0) denom = 1;
  return (a - e).abs().max().item<double>() / denom;
}

::testing::AssertionResult tensors_close(const torch::Tensor& actual, const torch::Tensor& expected, double rtol,
                                         double atol, const std::string& what) {
  if (actual.sizes() != expected.sizes())
    return ::testing::AssertionFailure() << what << ": shape " << actual.sizes() << " vs expected " << expected.sizes();
  auto a = actual.detach().to(torch::kCPU, torch::kFloat64).flatten();
  auto e = expected.detach().to(torch::kCPU, torch::kFloat64).flatten();
  if (a.numel() == 0) return ::testing::AssertionSuccess();
  auto diff = (a - e).abs();
  auto excess = diff - (atol + rtol * e.abs());
  auto worst = excess.argmax().item<int64_t>();
  if (excess[worst].item<double>() <= 0 && !diff.isnan().any().item<bool>()) return ::testing::AssertionSuccess();
  auto idx = worst;
  std::vector<int64_t> coord(actual.dim());
  for (int64_t d = actual.dim() - 1; d >= 0; --d) {
    coord[d] = idx % actual.size(d);
    idx /= actual.size(d);
  }
  std::ostringstream os;
  os << what << ": worst element at [";
  for (size_t i = 0; i < coord.size(); ++i) os << (i ? "," : "") << coord[i];
  os << "] actual " << a[worst].item<double>() << " expected " << e[worst].item<double>() << "; max abs err "
     << diff.max().item<double>() << ", rel err " << rel_error(actual, expected) << " (rtol " << rtol << ", atol "
     << atol << ")";
  return ::testing::AssertionFailure() << os.str();
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

fs::path io_data(const std::string& name) {
  return data_dir() / "io" / name;
}

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& p) {
  std::ifstream f(p);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(f, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

static std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

CliResult run_cli(const std::vector<std::string>& args, const std::string& stdin_text,
                  const std::vector<std::string>& wrapper) {
  return run_program(cli_path(), args, stdin_text, wrapper);
}

fs::path bench_path() { return cli_path().parent_path() / "gill-bench"; }

CliResult run_program(const fs::path& exe, const std::vector<std::string>& args, const std::string& stdin_text,
                      const std::vector<std::string>& wrapper) {
  fs::path dir = temp_dir("cli");
  std::string cmd;
  for (const auto& w : wrapper) cmd += shell_quote(w) + " ";
  cmd += shell_quote(exe.string());
  for (const auto& a : args) cmd += " " + shell_quote(a);
  {
    std::ofstream in(dir / "stdin");
    in << stdin_text;
  }
  cmd += " <" + shell_quote((dir / "stdin").string()) + " >" + shell_quote((dir / "out").string()) + " 2>" +
         shell_quote((dir / "err").string());
  int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  auto slurp = [](const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  r.out = slurp(dir / "out");
  r.err = slurp(dir / "err");
  fs::remove_all(dir);
  return r;
}

}  // namespace gill::test
