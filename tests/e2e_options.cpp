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

// gill-bench clip and turn run the compute policy asked (default auto, as the engine decides it) and record it: a
// bf16 CLIP tower under fp32 compute runs its GEMMs on fp32 copies, under bf16 compute in bf16 (any CPU: emulated
// where not native). An unknown policy is refused by name.
TEST(GillBench, ClipAndTurnRunTheComputePolicyAsked) {
  for (const std::string compute : {"fp32", "bf16"}) {
    auto r = gill::test::run_program(gill::test::bench_path(), {"-t", "1", "clip", "--layers", "1", "--reps", "1",
                                                                "--no-peer", "--dtypes", "bf16", "--compute", compute});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json j = json::parse(r.out);
    ASSERT_EQ(j["results"].size(), 1u) << j;
    const json& res = j["results"][0];
    EXPECT_EQ(res["compute_policy"].get<std::string>().rfind("compute " + compute + " (asked " + compute, 0), 0u)
        << res;
    EXPECT_EQ(res["gemm_fp32"].get<bool>(), compute == "fp32") << res;
  }
  auto t = gill::test::run_program(gill::test::bench_path(), {"-t", "1", "turn", "--shape", "tiny", "--steps", "2",
                                                              "--ref-points", "2", "--compute", "fp32"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_EQ(json::parse(t.out)["compute_policy"].get<std::string>().rfind("compute fp32 (asked fp32", 0), 0u) << t.out;
  for (const char* bench : {"clip", "turn"}) {
    auto bad = gill::test::run_program(gill::test::bench_path(), {bench, "--compute", "fast"});
    EXPECT_NE(bad.exit_code, 0) << bench;
    EXPECT_NE(bad.err.find("--compute"), std::string::npos) << bad.err;
    EXPECT_NE(bad.err.find("fast"), std::string::npos) << bad.err;
  }
}

// gill-bench turn's reference on the peers' kernels: the fastest diffusers dtype per stage is taken from the results
// file, and the peer turn is the reference turn with its UNet, VAE, CLIP and no-cache LM times replaced by the
// peers' (tiny shapes, every step and UNet call run). A malformed results file is refused by file and key.
TEST(GillBench, TurnOnThePeersKernelsReplacesTheStagesItNames) {
  const fs::path dir = gill::test::temp_dir("bench_turn_peers");
  const fs::path good = dir / "diffusers.json", bad = dir / "bad.json";
  gill::write_file_atomic(good.string(), R"({"diffusers_version": "0.17.1", "unet_fp32": {"min_s": 2.0},
      "unet_bf16": {"min_s": 3.0}, "vae_decode_fp32": {"min_s": 4.0}, "vae_decode_bf16": {"min_s": 1.5}})");
  gill::write_file_atomic(bad.string(), R"({"unet_fp32": {"min_s": "fast"}, "vae_decode_fp32": {"min_s": 1.0}})");
  const std::vector<std::string> args{"-t", "1", "turn", "--shape", "tiny", "--steps", "3", "--unet-calls", "0",
                                      "--ref-points", "0", "--peer-points", "2", "--peer-repeats", "1"};
  auto with = [&](std::vector<std::string> extra) {
    auto a = args;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  for (const std::string layers : {"0", "1"}) {
    auto r = gill::test::run_program(gill::test::bench_path(), with({"--diffusers", good.string(), "--peer-layers", layers}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json j = json::parse(r.out);
    const json& p = j["peers"];
    ASSERT_TRUE(p.is_object()) << p;
    EXPECT_EQ(p["diffusers"]["unet_guided_call_s"], 2.0);
    EXPECT_EQ(p["diffusers"]["unet_dtype"], "fp32");
    EXPECT_EQ(p["diffusers"]["vae_decode_s"], 1.5);
    EXPECT_EQ(p["diffusers"]["vae_dtype"], "bf16");
    const double calls = j["stages"]["unet_calls_total"].get<double>();
    EXPECT_EQ(calls, 4);
    const double expect = j["reference"]["turn"]["s"].get<double>() - p["replaced"]["unet_s"].get<double>() -
                          p["replaced"]["vae_s"].get<double>() - p["replaced"]["clip_s"].get<double>() -
                          p["replaced"]["lm_s"].get<double>() + calls * 2.0 + 1.5 +
                          p["clip"]["calls"].get<double>() * p["clip"]["s"].get<double>() + p["lm"]["s"].get<double>();
    EXPECT_NEAR(p["turn_s"].get<double>(), expect, 1e-9 * expect);
    EXPECT_DOUBLE_EQ(p["replaced"]["lm_s"].get<double>(), j["reference"]["lm"]["s"].get<double>());
    EXPECT_DOUBLE_EQ(p["replaced"]["vae_s"].get<double>(), j["stages"]["vae_decode"]["s"].get<double>());
    EXPECT_DOUBLE_EQ(p["ratio_generate"].get<double>(),
                     p["turn_s"].get<double>() / j["engine"]["generate_turn"]["s"].get<double>());
    EXPECT_EQ(p["lm"]["forward_no_cache"].size(), 2u);
    EXPECT_GT(p["lm"]["s"].get<double>(), 0);
    EXPECT_GT(p["clip"]["s"].get<double>(), 0);
  }
  auto r = gill::test::run_program(gill::test::bench_path(), with({"--diffusers", bad.string()}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(bad.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("unet_fp32.min_s"), std::string::npos) << r.err;
  auto none = gill::test::run_program(gill::test::bench_path(), with({}));
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_TRUE(json::parse(none.out)["peers"].is_string());
  fs::remove_all(dir);
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
