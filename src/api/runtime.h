// What every public entry point that runs models does first (Engine's constructor, the tools.h functions).
#pragma once
#include <string>

#include "util/compute_policy.h"

namespace gill::detail {

// The one place threads and the device are applied: refuses a device this build cannot run (gill::check_device,
// naming `what`, e.g. "LmOptions.device"), then sets libtorch's intra-op thread count (0 = physical cores).
// Returns the thread count set.
int begin_call(const std::string& device, const std::string& what, int threads);

// The one place a compute policy is decided for a call: `value` (auto | fp32 | bf16, else kInvalidArgument naming
// `what`, e.g. "EngineOptions.compute") against this machine's CPU probe. Logs the choice (and a warning when the
// request is slow here).
util::ComputePolicy decide_compute(const std::string& value, const std::string& what);

}  // namespace gill::detail
