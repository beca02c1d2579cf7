// libFuzzer target: a torch.save zip file (central directory, local headers, zip64 fields, data.pkl, storages,
// tensor views) through io::open_tensors, then every tensor read back. Seeds: the .pth.tar / .bin files in
// tests/data.
#include <gill/error.h>

#include "fuzz_common.h"
#include "io/tensor_source.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = gill::fuzz::write_input("model.pth.tar", data, size);
  try {
    auto src = gill::io::open_tensors(path);
    for (const auto& name : src->names()) {
      const auto& info = src->info(name);
      if (info.numel() > gill::fuzz::kMaxTouchElements) continue;
      auto t = src->get(name, torch::kFloat32);
      (void)t.sum().item<double>();
    }
  } catch (const gill::Error&) {
  }
  return 0;
}
