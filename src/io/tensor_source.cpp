#include "io/tensor_source.h"

#include <algorithm>

#include "util/error.h"

namespace gill::io {

using detail::str_cat;

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
    case DType::U16: return "U16";
    case DType::U32: return "U32";
    case DType::U64: return "U64";
    case DType::F8_E5M2: return "F8_E5M2";
    case DType::F8_E4M3: return "F8_E4M3";
  }
  return "?";
}

std::optional<DType> dtype_from_name(const std::string& s) {
  static const std::pair<const char*, DType> kNames[] = {
      {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"F64", DType::F64}, {"I64", DType::I64},
      {"I32", DType::I32}, {"I16", DType::I16}, {"I8", DType::I8},     {"U8", DType::U8},   {"BOOL", DType::BOOL},
      {"U16", DType::U16}, {"U32", DType::U32}, {"U64", DType::U64}, {"F8_E5M2", DType::F8_E5M2},
      {"F8_E4M3", DType::F8_E4M3}};
  for (auto& [n, d] : kNames)
    if (s == n) return d;
  return std::nullopt;
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::F64:
    case DType::I64:
    case DType::U64: return 8;
    case DType::F32:
    case DType::I32:
    case DType::U32: return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
    case DType::U16: return 2;
    case DType::I8:
    case DType::U8:
    case DType::BOOL:
    case DType::F8_E5M2:
    case DType::F8_E4M3: return 1;
  }
  return 0;
}

torch::Dtype to_torch(DType d) {
  switch (d) {
    case DType::F32: return torch::kFloat32;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::F64: return torch::kFloat64;
    case DType::I64: return torch::kInt64;
    case DType::I32: return torch::kInt32;
    case DType::I16: return torch::kInt16;
    case DType::I8: return torch::kInt8;
    case DType::U8: return torch::kUInt8;
    case DType::BOOL: return torch::kBool;
    case DType::U16:
    case DType::U32:
    case DType::U64:
    case DType::F8_E5M2:
    case DType::F8_E4M3: break;
  }
  detail::fail(ErrorCode::kUnsupported, str_cat("dtype ", dtype_name(d), " has no libtorch 1.13 tensor type"));
}

DType from_torch(torch::Dtype d) {
  switch (d) {
    case torch::kFloat32: return DType::F32;
    case torch::kFloat16: return DType::F16;
    case torch::kBFloat16: return DType::BF16;
    case torch::kFloat64: return DType::F64;
    case torch::kInt64: return DType::I64;
    case torch::kInt32: return DType::I32;
    case torch::kInt16: return DType::I16;
    case torch::kInt8: return DType::I8;
    case torch::kUInt8: return DType::U8;
    case torch::kBool: return DType::BOOL;
    default: break;
  }
  detail::fail(ErrorCode::kUnsupported, str_cat("torch dtype ", c10::toString(d), " has no safetensors name"));
}

torch::Dtype parse_torch_dtype(const std::string& s, const std::vector<torch::Dtype>& allowed,
                               const std::string& context) {
  std::string l = s;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
  std::optional<torch::Dtype> d;
  if (l == "fp32" || l == "float32" || l == "f32" || l == "float") d = torch::kFloat32;
  if (l == "bf16" || l == "bfloat16") d = torch::kBFloat16;
  if (l == "fp16" || l == "float16" || l == "f16" || l == "half") d = torch::kFloat16;
  if (l == "fp64" || l == "float64" || l == "f64" || l == "double") d = torch::kFloat64;
  if (d && std::find(allowed.begin(), allowed.end(), *d) != allowed.end()) return *d;
  std::string list;
  for (size_t k = 0; k < allowed.size(); ++k)
    list += str_cat(k == 0 ? "" : k + 1 == allowed.size() ? " or " : ", ", torch_dtype_name(allowed[k]));
  detail::fail(ErrorCode::kInvalidArgument, str_cat("unknown dtype '", s, "'", context, " (expected ", list, ")"));
}

std::string torch_dtype_name(torch::Dtype d) {
  switch (d) {
    case torch::kFloat32: return "fp32";
    case torch::kBFloat16: return "bf16";
    case torch::kFloat16: return "fp16";
    case torch::kFloat64: return "fp64";
    default: return c10::toString(d);
  }
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

static size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::vector<std::string> close_matches(const std::string& key, const std::vector<std::string>& candidates,
                                       size_t max_results) {
  std::vector<std::pair<size_t, std::string>> scored;
  scored.reserve(candidates.size());
  for (const auto& c : candidates) {
    // Shared-suffix bonus: "decoder.layers.0.fc1.weight" vs "model.decoder.layers.0.fc1.weight".
    size_t d = edit_distance(key, c);
    if (c.size() > key.size() && c.compare(c.size() - key.size(), key.size(), key) == 0) d = 1;
    if (key.size() > c.size() && key.compare(key.size() - c.size(), c.size(), c) == 0) d = 1;
    scored.emplace_back(d, c);
  }
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  size_t limit = std::max<size_t>(4, key.size() / 3);
  for (auto& [d, c] : scored) {
    if (out.size() >= max_results || d > limit) break;
    out.push_back(c);
  }
  return out;
}

void TensorSource::throw_missing(const std::string& name) const {
  auto close = close_matches(name, names());
  std::string msg = str_cat(description(), ": no tensor named '", name, "'");
  if (!close.empty()) {
    msg += " (close matches: ";
    for (size_t i = 0; i < close.size(); ++i) msg += (i ? ", " : "") + close[i];
    msg += ")";
  }
  detail::fail(ErrorCode::kNotFound, msg);
}

static bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::unique_ptr<TensorSource> open_tensors(const std::filesystem::path& path, Residency residency) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) detail::fail(ErrorCode::kNotFound, str_cat(path.string(), ": no such file or folder"));
  if (fs::is_directory(path, ec)) {
    static const char* kCandidates[] = {"model.safetensors",
                                        "model.safetensors.index.json",
                                        "diffusion_pytorch_model.safetensors",
                                        "diffusion_pytorch_model.safetensors.index.json",
                                        "pytorch_model.bin",
                                        "pytorch_model.bin.index.json",
                                        "diffusion_pytorch_model.bin",
                                        "diffusion_pytorch_model.bin.index.json"};
    for (const char* c : kCandidates)
      if (fs::exists(path / c, ec)) return open_tensors(path / c, residency);
    detail::fail(ErrorCode::kNotFound,
                 str_cat(path.string(), ": no weights found (looked for model.safetensors, pytorch_model.bin, "
                                        "diffusion_pytorch_model.safetensors and their .index.json)"));
  }
  const std::string name = path.filename().string();
  if (ends_with(name, ".index.json")) return open_sharded_index(path, residency);
  if (ends_with(name, ".safetensors")) return open_safetensors(path, residency);
  if (ends_with(name, ".bin") || ends_with(name, ".pt") || ends_with(name, ".pth") || ends_with(name, ".pth.tar") ||
      ends_with(name, ".ckpt") || ends_with(name, ".tar"))
    return open_torch_pickle(path, residency);
  detail::fail(ErrorCode::kUnsupported,
               str_cat(path.string(), ": unknown weight format (expected .safetensors, .bin, .pth.tar or .index.json)"));
}

}  // namespace gill::io
