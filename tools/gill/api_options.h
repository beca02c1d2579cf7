// CLI flags for the public option structs, shared by `gill run`, `gill chat` and `gill batch`. Help text shows
// the defaults of default-constructed options, so it cannot drift from the library.
#pragma once
#include <gill/gill.h>

#include <CLI/CLI.hpp>

namespace gill::cli {

// -m/--weights, --lm, --clip, --sd, --gill, --index, --device, --dtype, --no-sd. (A new EngineOptions field gets
// its flag here, and nowhere else.)
// --compute auto | fp32 | bf16 (the compute policy for bf16 weights).
void add_compute_option(CLI::App* app, std::string& compute);
// --no-mmap: EngineOptions/LmOptions/SdOptions::mmap = false.
void add_mmap_option(CLI::App* app, bool& mmap);
void add_engine_options(CLI::App* app, EngineOptions& options);
// "Device (this build: cpu)": the devices gill::available_devices() reports.
std::string device_help();
// "pndm | ddim | ..." from gill::scheduler_names() (the library's one table).
std::string scheduler_help();
// -n/--num-words, --temp, --top-p, --top-k, --seed, --steps, --cfg-scale, --scheduler, --ret-scale-factor,
// --gen-scale-factor, --min-word-tokens, --max-num-rets, --always-generate.
void add_generate_options(CLI::App* app, GenerateOptions& options);

}  // namespace gill::cli
