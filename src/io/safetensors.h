// safetensors: reading (mmap, zero-copy) and writing (atomic).
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/mapped_file.h"
#include "io/tensor_source.h"

namespace gill::io {

class SafetensorsFile : public TensorSource {
 public:
  // Validates the header completely; throws kNotFound / kFormat / kUnsupported with the file name.
  explicit SafetensorsFile(const std::filesystem::path& path, Residency residency = Residency::kMap);

  std::vector<std::string> names() const override;
  bool contains(const std::string& name) const override;
  const TensorInfo& info(const std::string& name) const override;
  torch::Tensor get(const std::string& name, std::optional<torch::Dtype> dtype = std::nullopt,
                    const torch::Device& device = torch::kCPU) const override;
  std::string description() const override { return path_.string(); }

  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Address of a tensor's bytes inside the mapping (for tests of zero-copy).
  const uint8_t* raw_data(const std::string& name) const;

 private:
  struct Entry {
    TensorInfo info;
    size_t begin, end;  // offsets in the data section
  };
  std::filesystem::path path_;
  std::shared_ptr<MappedFile> file_;
  size_t data_start_ = 0;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Named tensors, written in order, CPU-contiguous copies taken as needed. Atomic (temp + rename).
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;
void write_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace gill::io
