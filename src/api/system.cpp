#include <gill/system.h>

#include <cstdlib>

#include "util/compute_policy.h"
#include "util/cpu.h"
#include "util/threads.h"

namespace gill {

SystemInfo system_info() {
  const auto& f = util::cpu_features();
  SystemInfo s;
  s.cpu = f.describe();
  s.cpu = s.cpu.substr(0, s.cpu.find(':'));
  s.cpu_features = f.names();
  s.native_bf16 = f.native_bf16();
  s.compute_auto = util::decide_compute(f, util::ComputeMode::kAuto).describe();
  const auto advice = util::openblas_core_advice();
  s.openblas_core = advice.core;
  s.openblas_advice = advice.reason;
  s.default_threads = default_thread_count();
  s.kernel_threads = parallel_loop_threads(s.default_threads);
  s.kernels_openmp = built_with_openmp();
  return s;
}

std::vector<std::pair<std::string, std::string>> recommended_environment() {
  std::vector<std::pair<std::string, std::string>> env;
  const auto advice = util::openblas_core_advice();
  if (!advice.set_coretype.empty()) env.emplace_back("OPENBLAS_CORETYPE", advice.set_coretype);
  return env;
}

bool apply_recommended_environment() {
  bool changed = false;
  for (const auto& [key, value] : recommended_environment()) {
    if (std::getenv(key.c_str())) continue;
    ::setenv(key.c_str(), value.c_str(), 0);
    ::setenv(("GILL_SET_" + key).c_str(), value.c_str(), 1);
    changed = true;
  }
  return changed;
}

}  // namespace gill
