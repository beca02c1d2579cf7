// Shared by the checkpoint-format targets: open a file through io::open_tensors and read back every tensor small
// enough to touch, as a model load would. Any gill::Error is an accepted outcome; anything else reaches libFuzzer.
#pragma once
#include <gill/error.h>

#include <filesystem>

#include "fuzz_common.h"
#include "io/tensor_source.h"

namespace gill::fuzz {

inline void read_every_tensor(const std::filesystem::path& path) {
  try {
    auto src = io::open_tensors(path);
    for (const auto& name : src->names()) {
      if (!src->contains(name)) std::abort();
      if (src->info(name).numel() > kMaxTouchElements) continue;
      (void)src->get(name, torch::kFloat32).sum().item<double>();
    }
  } catch (const Error&) {
  }
}

}  // namespace gill::fuzz
