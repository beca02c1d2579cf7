// torch.save zip archives (pytorch_model.bin, *.pth.tar): `<prefix>/data.pkl` read by the restricted unpickler,
// storages `<prefix>/data/<key>` used in place from the memory mapping. Nested dicts are flattened with '.'
// ({'state_dict': {'1.weight': t}} -> "state_dict.1.weight"); non-tensor leaves are kept as values.
// Format: torch/serialization.py (_save / _load, zip layout since torch 1.6).
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/mapped_file.h"
#include "io/pickle.h"
#include "io/tensor_source.h"
#include "io/zip.h"

namespace gill::io {

class TorchPickleFile : public TensorSource {
 public:
  // Throws kNotFound, kFormat (not a zip, no data.pkl, bad storages), kSecurity (a global outside the allow-list),
  // kUnsupported (legacy pre-zip torch format, compressed entries) — always naming the file.
  explicit TorchPickleFile(const std::filesystem::path& path, Residency residency = Residency::kMap);

  std::vector<std::string> names() const override;
  bool contains(const std::string& name) const override { return tensors_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const override;
  torch::Tensor get(const std::string& name, std::optional<torch::Dtype> dtype = std::nullopt,
                    const torch::Device& device = torch::kCPU) const override;
  std::string description() const override { return path_.string(); }

  // Non-tensor leaves ("epoch" -> 5), in file order.
  const std::vector<std::pair<std::string, pickle::ValuePtr>>& values() const { return values_; }
  // Where a tensor's first element lives in the mapping (zero-copy tests).
  const uint8_t* raw_data(const std::string& name) const;

 private:
  struct Entry {
    TensorInfo info;
    std::vector<int64_t> strides;
    uint64_t byte_offset = 0;  // of the first element, in the file
  };
  std::filesystem::path path_;
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, Entry> tensors_;
  std::vector<std::pair<std::string, pickle::ValuePtr>> values_;
};

// A torch storage class name ("FloatStorage") -> its dtype; nullopt when unknown.
std::optional<DType> storage_dtype(const std::string& storage_type);

// Throws kUnsupported naming the format when `file` is a legacy (pre-1.6) torch.save file; otherwise returns.
void reject_legacy_torch(const MappedFile& file);

}  // namespace gill::io
