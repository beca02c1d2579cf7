// libFuzzer target: a torch.save zip file (central directory, local headers, zip64 fields, data.pkl, storages,
// tensor views) through io::open_tensors, then every tensor read back. Seeds: the .pth.tar / .bin files in
// tests/data.
#include <gill/error.h>

#include "fuzz_tensors.h"
#include "io/tensor_source.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = gill::fuzz::write_input("model.pth.tar", data, size);
  gill::fuzz::read_every_tensor(path);
  return 0;
}
