// The bad-input catalogue (tests/bad_inputs/cases.json): every case is one `gill` invocation on a broken file,
// option or output path, with the exit code and the message substring it must produce. Each case may first
// prepare its own folder (copies of the tiny model with a file truncated, removed, rewritten or a config key
// changed), and names outputs that must not exist afterwards (no half-written PNG, JSON or dump). One tiny model
// (gill make-tiny) is shared by all cases; cases run two at a time (GILL_BAD_INPUT_JOBS overrides;
// GILL_BAD_INPUT_CASES=a,b runs only those). Format and conventions: docs/hardening.md.
//
// Case fields: name, args, exit, message; optional stdin, setup [ops], absent [paths], no_files_under [folders],
// skip_if_root (reason), file_permissions (true: as root, the command runs without the capabilities that let
// root ignore file permissions, CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so a chmod-ed folder refuses root as
// it refuses any user; CI runs as root). Ops: {"copy", "to"}, {"truncate", "size" | "keep"}, {"write", "text"},
// {"remove"}, {"json_set", "key", "value"}, {"chmod", "mode"}, {"mkdir"}. Strings may use {tiny}, {case},
// {data} (tests/data), {cases} (tests/bad_inputs/data), {repeat:N:TEXT}, and \xHH for a raw byte.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "io/atomic_file.h"
#include "test_support.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Env {
  fs::path root, tiny;
};

std::string hex_bytes(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] == 'x' && std::isxdigit(static_cast<unsigned char>(s[i + 2])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 3]))) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 2, 2), nullptr, 16)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}

std::string expand(const std::string& in, const Env& env, const fs::path& case_dir) {
  std::string s = in;
  static const std::regex repeat(R"(\{repeat:(\d+):([^}]*)\})");
  std::smatch m;
  while (std::regex_search(s, m, repeat)) {
    std::string r;
    for (int k = 0, n = std::stoi(m[1].str()); k < n; ++k) r += m[2].str();
    s = m.prefix().str() + r + m.suffix().str();
  }
  s = replace_all(s, "{tiny}", env.tiny.string());
  s = replace_all(s, "{case}", case_dir.string());
  s = replace_all(s, "{data}", gill::test::data_dir().string());
  s = replace_all(s, "{cases}", (gill::test::source_dir() / "tests" / "bad_inputs" / "data").string());
  return hex_bytes(s);
}

void setup_op(const json& op, const Env& env, const fs::path& dir) {
  auto path = [&](const char* key) { return fs::path(expand(op.at(key).get<std::string>(), env, dir)); };
  if (op.contains("copy")) {
    fs::create_directories(path("to").parent_path());
    fs::copy(path("copy"), path("to"), fs::copy_options::recursive);
  } else if (op.contains("truncate")) {
    const auto p = path("truncate");
    const auto size = op.contains("size") ? op["size"].get<uintmax_t>()
                                          : static_cast<uintmax_t>(fs::file_size(p) * op.at("keep").get<double>());
    fs::resize_file(p, size);
  } else if (op.contains("write")) {
    const auto p = path("write");
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << expand(op.at("text").get<std::string>(), env, dir);
  } else if (op.contains("remove")) {
    fs::remove_all(path("remove"));
  } else if (op.contains("json_set")) {
    const auto p = path("json_set");
    json j = json::parse(gill::io::read_file(p));
    j[json::json_pointer(op.at("key").get<std::string>())] = op.at("value");
    std::ofstream(p) << j.dump(2);
  } else if (op.contains("chmod")) {
    ::chmod(path("chmod").c_str(), static_cast<mode_t>(std::stoul(op.at("mode").get<std::string>(), nullptr, 8)));
  } else if (op.contains("mkdir")) {
    fs::create_directories(path("mkdir"));
  } else {
    throw std::runtime_error("unknown setup op " + op.dump());
  }
}

struct Outcome {
  std::string name, skipped, failure;  // failure: empty when the case passed
  double seconds = 0;
};

Outcome run_case(const json& c, const Env& env) {
  Outcome o;
  o.name = c.at("name").get<std::string>();
  if (c.contains("skip_if_root") && ::geteuid() == 0) {
    o.skipped = c["skip_if_root"].get<std::string>();
    return o;
  }
  const fs::path dir = env.root / "cases" / o.name;
  fs::create_directories(dir);
  std::ostringstream fail;
  try {
    for (const auto& op : c.value("setup", json::array())) setup_op(op, env, dir);
  } catch (const std::exception& e) {
    o.failure = std::string("setup failed: ") + e.what();
    return o;
  }
  std::vector<std::string> args;
  for (const auto& a : c.at("args")) args.push_back(expand(a.get<std::string>(), env, dir));
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> wrapper;
  if (c.value("file_permissions", false) && ::geteuid() == 0)
    wrapper = {"setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"};  // util-linux
  const auto r = gill::test::run_cli(args, expand(c.value("stdin", std::string()), env, dir), wrapper);
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int want = c.at("exit").get<int>();
  const std::string msg = expand(c.at("message").get<std::string>(), env, dir);
  if (r.exit_code != want) fail << "exit code " << r.exit_code << ", expected " << want << "; ";
  if (r.err.find(msg) == std::string::npos) fail << "stderr lacks \"" << msg << "\"; ";
  for (const char* bad : {"terminate called", "Segmentation", "AddressSanitizer", "runtime error:", "c10::Error"})
    if (r.err.find(bad) != std::string::npos) fail << "stderr shows \"" << bad << "\"; ";
  for (const auto& a : c.value("absent", json::array())) {
    const fs::path p = expand(a.get<std::string>(), env, dir);
    if (fs::exists(p)) fail << p.string() << " exists after the failure; ";
  }
  for (const auto& d : c.value("no_files_under", json::array())) {
    const fs::path p = expand(d.get<std::string>(), env, dir);
    if (!fs::is_directory(p)) continue;
    for (const auto& e : fs::recursive_directory_iterator(p))
      if (e.is_regular_file()) fail << e.path().string() << " was left behind; ";
  }
  // No temporary of an atomic write may survive anywhere in the case folder.
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->path().filename().string().find(".tmp-") != std::string::npos)
      fail << "temporary " << it->path().string() << " left behind; ";
  o.failure = fail.str();
  if (!o.failure.empty()) {
    std::ostringstream args_str;
    for (const auto& a : args) args_str << " '" << a << "'";
    o.failure += "\n  command: gill" + args_str.str() + "\n  stderr: " + r.err.substr(0, 2000);
  }
  for (const auto& op : c.value("setup", json::array()))  // let the folder be removed again
    if (op.contains("chmod")) ::chmod(expand(op["chmod"].get<std::string>(), env, dir).c_str(), 0755);
  return o;
}

}  // namespace

TEST(BadInputs, Catalogue) {
  ::setenv("OMP_WAIT_POLICY", "passive", 1);  // the CLI then skips its re-exec (halves each case's start-up)
  const json cases = json::parse(gill::io::read_file(gill::test::source_dir() / "tests/bad_inputs/cases.json"));
  ASSERT_TRUE(cases.is_array());
  EXPECT_GE(cases.size(), 40u) << "the catalogue must keep at least 40 cases";
  std::set<std::string> names;
  for (const auto& c : cases) {
    ASSERT_TRUE(c.contains("name") && c.contains("args") && c.contains("exit") && c.contains("message")) << c.dump();
    EXPECT_TRUE(names.insert(c["name"].get<std::string>()).second) << "duplicate case " << c["name"];
    EXPECT_FALSE(c["message"].get<std::string>().empty()) << c["name"];
  }

  Env env;
  env.root = gill::test::temp_dir("bad-inputs");
  env.tiny = env.root / "tiny";
  const auto made = gill::test::run_cli({"-q", "make-tiny", env.tiny.string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;

  // GILL_BAD_INPUT_CASES=name,name runs only those cases (when debugging one).
  std::set<std::string> only;
  if (const char* o = std::getenv("GILL_BAD_INPUT_CASES")) {
    std::stringstream ss(o);
    for (std::string n; std::getline(ss, n, ',');) only.insert(n);
  }
  int jobs = 2;
  if (const char* j = std::getenv("GILL_BAD_INPUT_JOBS")) jobs = std::max(1, std::atoi(j));
  std::vector<Outcome> outcomes(cases.size());
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < jobs; ++t)
    pool.emplace_back([&] {
      for (size_t k; (k = next++) < cases.size();) {
        if (!only.empty() && !only.count(cases[k]["name"].get<std::string>())) {
          outcomes[k].name = cases[k]["name"].get<std::string>();
          outcomes[k].skipped = "not in GILL_BAD_INPUT_CASES";
          continue;
        }
        outcomes[k] = run_case(cases[k], env);
      }
    });
  for (auto& t : pool) t.join();

  int n_skipped = 0;
  for (const auto& o : outcomes) {
    if (!o.skipped.empty()) {
      ++n_skipped;
      if (only.empty()) std::cout << "[ SKIPPED  ] " << o.name << ": " << o.skipped << "\n";
      continue;
    }
    EXPECT_TRUE(o.failure.empty()) << o.name << ": " << o.failure;
  }
  std::cout << cases.size() - n_skipped << " of " << cases.size() << " bad-input cases run; slowest:";
  std::sort(outcomes.begin(), outcomes.end(), [](const Outcome& a, const Outcome& b) { return a.seconds > b.seconds; });
  for (size_t k = 0; k < 3 && k < outcomes.size(); ++k)
    std::cout << " " << outcomes[k].name << " " << outcomes[k].seconds << " s";
  std::cout << "\n";
  std::error_code ec;
  fs::remove_all(env.root, ec);
}
