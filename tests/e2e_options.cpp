// Options reach the library in every mode: `-t N` is the intra-op thread count each run reports (GILL run, LLM-only
// run), --top-k reaches a GILL run's settings, and the benchmarks live in gill-bench, not in `gill --help`.
// Options a mode does not use are refused by name in the bad-input catalogue (tests/bad_inputs/cases.json:
// run-gill-refuses-*, run-lm-refuses-*, *-device-cuda).
#include <gill/tools.h>

#include <nlohmann/json.hpp>

#include "result_schema.h"
#include "test_support.h"

using gill::test::run_cli;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

class RunOptionsCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(gill::test::temp_dir("options"));
    gill::make_tiny((*dir_ / "tiny").string(), 0);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path root() { return *dir_ / "tiny"; }
  static json read_json(const fs::path& p) { return json::parse(gill::read_file(p.string())); }
  static fs::path* dir_;
};
fs::path* RunOptionsCli::dir_ = nullptr;

TEST_F(RunOptionsCli, ThreadsFlagIsTheIntraOpThreadCountOfAGillRun) {
  for (int t : {1, 3}) {
    const auto js = *dir_ / ("gill_t" + std::to_string(t) + ".json");
    auto r = run_cli({"-t", std::to_string(t), "run", "-m", root().string(), "-p", "hi", "-n", "2", "--no-sd", "-o",
                      (*dir_ / "out").string(), "--json", js.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(read_json(js)["timings"]["threads"], t);
  }
}

TEST_F(RunOptionsCli, ThreadsFlagIsTheIntraOpThreadCountOfAnLmRun) {
  for (int t : {1, 3}) {
    const auto js = *dir_ / ("lm_t" + std::to_string(t) + ".json");
    auto r = run_cli({"-t", std::to_string(t), "run", "--lm", (root() / "facebook" / "opt-tiny").string(), "--ids",
                      "2,40,41", "-n", "3", "--no-eos-stop", "--json", js.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json j = read_json(js);
    EXPECT_EQ(gill::test::schema_problems(j, "lm"), std::vector<std::string>{}) << j.dump(2);
    EXPECT_EQ(j["timings"]["threads"], t);
    EXPECT_EQ(j["token_ids"].size(), 3u);
    EXPECT_EQ(j["stop_reason"], "max_new_tokens");
  }
}

TEST_F(RunOptionsCli, ThreadsThroughTheApi) {
  gill::LmOptions o;
  o.lm_dir = (root() / "facebook" / "opt-tiny").string();
  o.prompt_ids = {2, 40};
  o.max_new_tokens = 2;
  o.threads = 1;
  EXPECT_EQ(gill::generate_text(o).threads, 1);
  o.threads = 2;
  EXPECT_EQ(gill::generate_text(o).threads, 2);
  o.device = "cuda";
  EXPECT_EQ(gill::test::error_of([&] { gill::generate_text(o); }),
            "LmOptions.device cuda: this build of gill runs on the CPU only (no CUDA path); available devices: cpu");
}

TEST_F(RunOptionsCli, TopKReachesAGillRun) {
  const auto js = *dir_ / "topk.json";
  auto r = run_cli({"run", "-m", root().string(), "-p", "hi", "-n", "2", "--no-sd", "--temp", "0.7", "--top-k", "5",
                    "-o", (*dir_ / "out").string(), "--json", js.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_json(js)["settings"]["top_k"], 5);
}

TEST(GillBench, HelpListsNoBenchmarkAndGillBenchHasThemAll) {
  auto r = run_cli({"--help"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("make-tiny"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("bench"), std::string::npos) << r.out;
  const fs::path bench = gill::test::cli_path().parent_path() / "gill-bench";
  ASSERT_TRUE(fs::exists(bench)) << bench;
  const std::string cmd = bench.string() + " --help 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  EXPECT_EQ(::pclose(p), 0) << out;
  for (const char* name : {"machine", "lm", "clip", "sd", "turn", "io", "tokenizer"})
    EXPECT_NE(out.find(std::string("\n  ") + name + " "), std::string::npos) << name << " in:\n" << out;
}

}  // namespace

namespace {

// --compute reaches the policy each run decides (logged once per call) and an unknown value is refused by name.
TEST_F(RunOptionsCli, ComputeFlagPicksThePolicy) {
  for (const std::string mode : {"fp32", "bf16"}) {
    auto r = run_cli({"run", "--lm", (root() / "facebook" / "opt-tiny").string(), "--dtype", "bf16", "--compute", mode,
                      "--ids", "2,40,41", "-n", "2", "--no-eos-stop"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("compute " + mode + " (asked " + mode), std::string::npos) << r.err;
  }
  auto bad = run_cli({"run", "--lm", (root() / "facebook" / "opt-tiny").string(), "--compute", "fp16", "--ids", "2",
                      "-n", "1"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--compute"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("fp16"), std::string::npos) << bad.err;
}

// --no-mmap reads the weights into memory: the same tokens as the mapped weights, recorded as compute.weights, for a
// GILL run and an LLM-only run.
TEST_F(RunOptionsCli, NoMmapGivesTheSameResultAndIsRecorded) {
  for (const bool lm : {false, true}) {
    std::vector<json> got;
    for (const bool no_mmap : {false, true}) {
      const auto js = *dir_ / (std::string(lm ? "lm" : "gill") + (no_mmap ? "_mem" : "_map") + ".json");
      std::vector<std::string> args =
          lm ? std::vector<std::string>{"run", "--lm", (root() / "facebook" / "opt-tiny").string(), "--ids", "2,40,41",
                                        "-n", "4", "--no-eos-stop", "--json", js.string()}
             : std::vector<std::string>{"run", "-m", root().string(), "-p", "hi", "-n", "4", "--no-sd", "-o",
                                        (*dir_ / "out").string(), "--json", js.string()};
      if (no_mmap) args.push_back("--no-mmap");
      auto r = run_cli(args);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      got.push_back(read_json(js));
      EXPECT_EQ(got.back()["compute"]["weights"], no_mmap ? "memory" : "mmap");
    }
    EXPECT_EQ(got[0]["token_ids"], got[1]["token_ids"]) << (lm ? "lm" : "gill");
    EXPECT_FALSE(got[0]["token_ids"].empty());
  }
}

TEST(InfoCli, ReportsTheProbeAndThePolicy) {
  auto r = run_cli({"info", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_TRUE(j["cpu_features"].is_array());
  EXPECT_FALSE(j["cpu"].get<std::string>().empty());
  const bool native = j["native_bf16"].get<bool>();
  const std::string policy = j["compute_auto"].get<std::string>();
  EXPECT_EQ(policy.rfind(native ? "compute bf16" : "compute fp32", 0), 0u) << policy;
  EXPECT_EQ(j["devices"], json::array({"cpu"}));
  // The text form names the same CPU.
  auto t = run_cli({"info"});
  ASSERT_EQ(t.exit_code, 0);
  EXPECT_NE(t.out.find(j["cpu"].get<std::string>()), std::string::npos);
}

}  // namespace
