// What every public entry point that runs models does first (Engine's constructor, the tools.h functions).
#pragma once
#include <gill/gill.h>

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

// What a call records of how it computed (Result::compute, LmResult::compute): `dtype` is the storage dtype's
// name (io::torch_dtype_name), `requested` the compute option as given.
ComputeInfo compute_info(const std::string& device, const std::string& dtype, const std::string& requested,
                         const util::ComputePolicy& policy, bool mmap = true);

}  // namespace gill::detail
