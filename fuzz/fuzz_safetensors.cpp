// libFuzzer target: safetensors headers and shard indexes. An input starting with '{' is a
// model.safetensors.index.json next to one small valid shard (model-00001-of-00002.safetensors, tensor 'a');
// anything else is a model.safetensors file. Every tensor a source lists is read back. Seeds: the .safetensors
// and *.index.json files in tests/data.
#include <gill/error.h>

#include "fuzz_tensors.h"
#include "io/safetensors.h"
#include "io/tensor_source.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gill::io::write_safetensors(
      gill::fuzz::scratch_dir() / "model-00001-of-00002.safetensors",
      {{"a", torch::arange(6, torch::kFloat32).reshape({2, 3})}, {"b", torch::ones({4}, torch::kBFloat16)}});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool index = size > 0 && data[0] == '{';
  const auto path = gill::fuzz::write_input(index ? "model.safetensors.index.json" : "model.safetensors", data, size);
  gill::fuzz::read_every_tensor(path);
  return 0;
}
