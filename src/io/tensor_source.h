// TensorSource: "give me tensor NAME as dtype D" over any checkpoint format on disk.
//
// Implementations: safetensors (mmap, zero-copy), sharded index JSON (either format), torch zip-pickle
// (`pytorch_model.bin`, `*.pth.tar`, through the restricted unpickler). open_tensors() picks one.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/mapped_file.h"

namespace gill::io {

// On-disk dtype names as safetensors spells them.
// Every safetensors dtype. U16, U32, U64 and the two FP8 kinds have no libtorch 1.13 type: files holding them open
// (and `gill inspect` lists them), but reading such a tensor is a kUnsupported error naming it.
enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL, U16, U32, U64, F8_E5M2, F8_E4M3 };

const char* dtype_name(DType d);                    // "F32", ...
std::optional<DType> dtype_from_name(const std::string& s);
size_t dtype_size(DType d);
torch::Dtype to_torch(DType d);                   // throws kUnsupported for the types libtorch lacks
DType from_torch(torch::Dtype d);                   // throws kUnsupported for other torch dtypes
// The one parser of user-facing dtype names: fp32|float32|f32|float, bf16|bfloat16, fp16|float16|f16|half,
// fp64|float64|f64|double (any case), one of `allowed`. Otherwise kInvalidArgument
// "unknown dtype 'int8'<context> (expected fp32 or bf16)", e.g. context " for the LM".
torch::Dtype parse_torch_dtype(const std::string& s,
                               const std::vector<torch::Dtype>& allowed = {torch::kFloat32, torch::kBFloat16,
                                                                           torch::kFloat16, torch::kFloat64},
                               const std::string& context = "");
// The one namer, parse_torch_dtype's inverse: "fp32", "bf16", "fp16", "fp64" (else libtorch's name).
std::string torch_dtype_name(torch::Dtype d);

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::string file;  // the file this tensor lives in
  int64_t numel() const;
};

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  // Every tensor name, sorted.
  virtual std::vector<std::string> names() const = 0;
  virtual bool contains(const std::string& name) const = 0;
  // Throws kNotFound naming the key, the source and close matches.
  virtual const TensorInfo& info(const std::string& name) const = 0;
  // The tensor converted to `dtype` (its own dtype when unset) on `device`. When no conversion is needed and the
  // device is the CPU, the result may be a zero-copy view of a memory-mapped file (it keeps the mapping alive;
  // writes to it are private copy-on-write and never reach the file).
  virtual torch::Tensor get(const std::string& name, std::optional<torch::Dtype> dtype = std::nullopt,
                            const torch::Device& device = torch::kCPU) const = 0;
  // What this source reads, for messages ("model.safetensors", "pytorch_model.bin.index.json (2 shards)").
  virtual std::string description() const = 0;

 protected:
  [[noreturn]] void throw_missing(const std::string& name) const;
};

// Close matches of `key` among `candidates` (by shared suffix / edit distance), for error messages.
std::vector<std::string> close_matches(const std::string& key, const std::vector<std::string>& candidates,
                                       size_t max_results = 3);

// Opens a checkpoint: a .safetensors file, a torch zip-pickle (.bin, .pt, .pth, .pth.tar, .ckpt), a shard index
// (*.index.json), or a model folder (model.safetensors, then the safetensors index, pytorch_model.bin, its index,
// then diffusion_pytorch_model.{safetensors,bin}). `device` is where pickle storages are loaded.
// `residency` says where the bytes live (io/mapped_file.h: mapped by default, or read into anonymous memory).
std::unique_ptr<TensorSource> open_tensors(const std::filesystem::path& path, Residency residency = Residency::kMap);

// Registration of formats implemented in other files (kept as plain functions, no global registry).
std::unique_ptr<TensorSource> open_safetensors(const std::filesystem::path& file, Residency residency = Residency::kMap);
std::unique_ptr<TensorSource> open_sharded_index(const std::filesystem::path& index_json,
                                                 Residency residency = Residency::kMap);
std::unique_ptr<TensorSource> open_torch_pickle(const std::filesystem::path& file, Residency residency = Residency::kMap);

}  // namespace gill::io
