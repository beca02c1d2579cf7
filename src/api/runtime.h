// What every public entry point that runs models does first (Engine's constructor, the tools.h functions).
#pragma once
#include <string>

namespace gill::detail {

// The one place threads and the device are applied: refuses a device this build cannot run (gill::check_device,
// naming `what`, e.g. "LmOptions.device"), then sets libtorch's intra-op thread count (0 = physical cores).
// Returns the thread count set.
int begin_call(const std::string& device, const std::string& what, int threads);

}  // namespace gill::detail
