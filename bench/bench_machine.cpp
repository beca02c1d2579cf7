// gill-bench machine — this machine's own limits (bf16/fp32 GEMM, memory read bandwidth).
#include <iostream>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "bench_cli.h"

namespace gill::cli {

void register_bench_machine(CLI::App& bench, Context& ctx) {
  auto* sub = bench.add_subcommand("machine", "Measure bf16/fp32 GEMM GFLOP/s and memory read bandwidth");
  sub->callback([&ctx] {
    ctx.action = [] {
      nlohmann::json j;
      j["threads"] = at::get_num_threads();
      j["gemm_gflops_bf16"] = bench::gemm_gflops("bf16");
      j["gemm_gflops_fp32"] = bench::gemm_gflops("fp32");
      j["read_gbs"] = bench::read_bandwidth_gbs();
      std::cout << j.dump() << std::endl;
      return 0;
    };
  });
}

}  // namespace gill::cli
