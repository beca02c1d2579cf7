// gill info — what this machine offers and what gill decides from it: the CPU probe, the compute policy "auto"
// picks, OpenBLAS's kernels and the environment gill recommends.
#include <gill/gill.h>
#include <gill/system.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"

namespace gill::cli {

void register_info(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand("info", "Show the CPU features, the compute policy and OpenBLAS's kernels");
  auto json = std::make_shared<bool>(false);
  sub->add_flag("--json", *json, "One JSON object instead of text");
  sub->callback([&ctx, json] {
    ctx.action = [json] {
      const SystemInfo s = system_info();
      nlohmann::json env = nlohmann::json::object();
      for (const auto& [k, v] : recommended_environment()) env[k] = v;
      if (*json) {
        nlohmann::json j = {{"version", version()},          {"cpu", s.cpu},
                            {"cpu_features", s.cpu_features}, {"native_bf16", s.native_bf16},
                            {"compute_auto", s.compute_auto}, {"openblas_core", s.openblas_core},
                            {"openblas_advice", s.openblas_advice}, {"recommended_environment", env},
                            {"default_threads", s.default_threads}, {"kernel_threads", s.kernel_threads},
                            {"kernels_openmp", s.kernels_openmp}, {"devices", available_devices()}};
        std::cout << j.dump() << "\n";
        return 0;
      }
      std::string features;
      for (const auto& f : s.cpu_features) features += (features.empty() ? "" : " ") + f;
      std::cout << "gill " << version() << "\n"
                << "cpu:            " << s.cpu << "\n"
                << "features:       " << (features.empty() ? "(no AVX)" : features) << "\n"
                << "compute (auto): " << s.compute_auto << "\n"
                << "openblas:       " << (s.openblas_core.empty() ? "(not loaded)" : s.openblas_core) << " — "
                << s.openblas_advice << "\n"
                << "threads:        " << s.default_threads << " by default (-t N); gill's kernels on "
                << s.kernel_threads
                << (s.kernels_openmp ? "" : " (built without OpenMP: its own loops run on one thread)") << "\n";
      return 0;
    };
  });
}

}  // namespace gill::cli
