// --dump-tensors: named tensors from every stage that ran, written as one safetensors file at the end.
// Stage names are documented in docs/tensor-dumps.md. A null TensorDump* means "not dumping" everywhere.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace gill::io {

class TensorDump {
 public:
  // Stores a CPU copy (fp32 for floating tensors in reduced precision is NOT applied: dtype is kept).
  // A second add() under the same name replaces the first.
  void add(const std::string& name, const torch::Tensor& t);
  bool has(const std::string& name) const;
  torch::Tensor get(const std::string& name) const;
  const NamedTensors& tensors() const { return tensors_; }
  void write(const std::filesystem::path& path) const { write_safetensors(path, tensors_); }

 private:
  NamedTensors tensors_;
};

// Convenience: dump->add(name, t) when dump is not null.
inline void dump_tensor(TensorDump* dump, const std::string& name, const torch::Tensor& t) {
  if (dump) dump->add(name, t);
}

}  // namespace gill::io
