// gill-bench gemm — many-row products over bf16 weights (fp32 activations) at the real prefill shapes: OPT-6.7B
// with a 64-token prompt and the CLIP ViT-L/14 tower (257 tokens). The engine's path (kernels::linear_bf16_weight:
// a block of weight rows widened to fp32 at a time, then libtorch's fp32 GEMM) at its default block size and at
// other block sizes, against the same GEMM on an fp32 copy of the weight (the ceiling: no widening) and the
// machine's fp32 GEMM peak (4096^3), all in the same run.
//   flock /tmp/bench.lock gill-bench -t 2 gemm
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench_cli.h"
#include "bench_common.h"
#include "kernels/linear_bf16.h"
#include "util/cpu.h"

namespace gill::cli {

namespace {

struct BenchGemmOptions {
  int reps = 3;
  std::string blocks = "262144,524288,1048576,4194304";  // extra block sizes (elements) beside the default
};

struct Shape {
  const char* name;
  int64_t n, k, m;
};

int run_bench_gemm(const BenchGemmOptions& o) {
  c10::InferenceMode guard;
  nlohmann::json j;
  j["bench"] = "gemm";
  j["cpu"] = util::cpu_features().describe();
  j["threads"] = torch::get_num_threads();
  const double peak = bench::gemm_gflops("fp32", 4096);
  j["gemm_gflops_fp32_4096"] = peak;
  std::vector<int64_t> blocks;
  {
    std::stringstream ss(o.blocks);
    for (std::string b; std::getline(ss, b, ',');)
      if (!b.empty()) blocks.push_back(std::stoll(b));
  }
  const int64_t default_block = kernels::blocked_gemm_block_elems();
  j["default_block_elems"] = default_block;
  const std::vector<Shape> shapes{{"opt q/k/v/out_proj", 4096, 4096, 64},
                                  {"opt fc1", 16384, 4096, 64},
                                  {"opt fc2", 4096, 16384, 64},
                                  {"clip q/k/v/out_proj", 1024, 1024, 257},
                                  {"clip fc1", 4096, 1024, 257},
                                  {"clip fc2", 1024, 4096, 257}};
  auto gen = at::detail::createCPUGenerator(3);
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& s : shapes) {
    const auto w = (torch::randn({s.n, s.k}, gen) * 0.02).to(torch::kBFloat16);
    const auto w32 = w.to(torch::kFloat32);
    const auto x = torch::randn({s.m, s.k}, gen);
    const double flops = 2.0 * double(s.n) * double(s.k) * double(s.m);
    nlohmann::json r{{"shape", s.name}, {"n", s.n}, {"k", s.k}, {"m", s.m}};
    (void)torch::nn::functional::linear(x, w32);
    const double ceil_s = bench::best_seconds(o.reps, [&] { (void)torch::nn::functional::linear(x, w32); });
    r["fp32_copy_gflops"] = flops / ceil_s / 1e9;
    auto time_block = [&](int64_t elems) {
      kernels::set_blocked_gemm_block_elems(elems);
      (void)kernels::linear_bf16_weight(x, w, {});
      const double t = bench::best_seconds(o.reps, [&] { (void)kernels::linear_bf16_weight(x, w, {}); });
      kernels::set_blocked_gemm_block_elems(0);
      return flops / t / 1e9;
    };
    const double ours = time_block(0);
    r["engine_gflops"] = ours;
    r["engine_vs_fp32_copy"] = ours / (flops / ceil_s / 1e9);
    r["engine_vs_peak"] = ours / peak;
    nlohmann::json bj;
    for (int64_t b : blocks) bj[std::to_string(b)] = time_block(b);
    r["block_gflops"] = bj;
    spdlog::info("{} [{}x{}] M={}: engine {:.1f} GFLOP/s, fp32 copy {:.1f}, peak {:.1f}", s.name, s.n, s.k, s.m, ours,
                 flops / ceil_s / 1e9, peak);
    rows.push_back(r);
  }
  j["shapes"] = rows;
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace

void register_bench_gemm(CLI::App& bench, Context& ctx) {
  auto* sub = bench.add_subcommand(
      "gemm", "Many-row bf16-weight GEMMs at OPT-6.7B prefill and CLIP shapes: engine vs fp32 copy vs peak");
  auto o = std::make_shared<BenchGemmOptions>();
  sub->add_option("--reps", o->reps, "Timed calls per variant (best kept)")->capture_default_str()->check(CLI::Range(1, 100));
  sub->add_option("--blocks", o->blocks, "Comma-separated block sizes (weights widened at a time) to compare")
      ->capture_default_str();
  sub->callback([&ctx, o] { ctx.action = [o] { return run_bench_gemm(*o); }; });
}

}  // namespace gill::cli
