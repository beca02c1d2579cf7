// gill — what this machine offers and what gill decides from it (no torch here): the CPU probe, the compute
// policy "auto" resolves to, and OpenBLAS's core type. Printed by `gill info` and `gill --version`, recorded in
// benchmark JSON.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace gill {

struct SystemInfo {
  std::string cpu;                        // "AMD EPYC ... (AuthenticAMD family 26 model 2)"
  std::vector<std::string> cpu_features;  // "avx2", "fma", "avx512f", ..., "avx512_bf16", "amx_bf16"
  bool native_bf16 = false;               // AVX512-BF16 or AMX-BF16 usable
  std::string compute_auto;               // what compute "auto" picks here, with the decode GEMV kernel
  std::string openblas_core;              // the OpenBLAS kernels in use ("" when OpenBLAS is not loaded)
  std::string openblas_advice;            // why OPENBLAS_CORETYPE is (not) worth setting
  int default_threads = 0;                // threads = 0 means this many (physical cores)
  int kernel_threads = 0;                 // threads gill's own parallel loops (its kernels) run on, at the default
  bool kernels_openmp = false;            // built with OpenMP; without it gill's own loops run on one thread
};

SystemInfo system_info();

// Environment variables gill recommends for this machine, to be set before the process starts: OpenBLAS reads
// OPENBLAS_CORETYPE once, when it is loaded, and Debian's 0.3.21 falls back to its slowest kernels on CPU models
// it does not name. Never includes a variable the user has already set. The `gill` CLI applies these itself (it
// re-executes once); a program linking the library can apply them in its launcher, e.g.
//   for (auto& [k, v] : gill::recommended_environment()) setenv(k.c_str(), v.c_str(), 0);  then exec itself.
std::vector<std::pair<std::string, std::string>> recommended_environment();

// Sets each recommended variable the user has not set, and GILL_SET_<NAME> beside it (so `gill info` can say who
// set it); true when anything was set, i.e. when the process must re-execute itself for the values to take effect.
// What the `gill` CLI and `gill-bench` run at start.
bool apply_recommended_environment();

}  // namespace gill
