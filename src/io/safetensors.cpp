#include "io/safetensors.h"

#include <nlohmann/json.hpp>

#include <cstring>

#include "io/atomic_file.h"
#include "util/error.h"

namespace gill::io {

using detail::str_cat;
using json = nlohmann::json;

namespace {
constexpr uint64_t kMaxHeader = 100ull << 20;  // 100 MiB, as the reference implementation limits it

[[noreturn]] void bad(const std::filesystem::path& p, const std::string& what) {
  detail::fail(ErrorCode::kFormat, str_cat(p.string(), ": ", what));
}
}  // namespace

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path) {
  file_ = MappedFile::open(path);
  const size_t size = file_->size();
  if (size < 8) bad(path, str_cat("truncated safetensors file (", size, " bytes, need at least 8)"));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file_->data()[i];
  if (n > size - 8)
    bad(path, str_cat("safetensors header length ", n, " runs past the end of the file (", size, " bytes)"));
  if (n > kMaxHeader) bad(path, str_cat("safetensors header length ", n, " exceeds the 100 MiB limit"));
  data_start_ = 8 + n;
  const size_t data_size = size - data_start_;
  json header;
  try {
    header = json::parse(reinterpret_cast<const char*>(file_->data() + 8),
                         reinterpret_cast<const char*>(file_->data() + 8 + n));
  } catch (const json::exception& e) {
    bad(path, str_cat("safetensors header is not valid JSON: ", e.what()));
  }
  if (!header.is_object()) bad(path, "safetensors header is not a JSON object");
  std::vector<std::pair<size_t, std::string>> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (key == "__metadata__") {
      if (!v.is_object()) bad(path, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) bad(path, str_cat("__metadata__ value '", m.key(), "' is not a string"));
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      bad(path, str_cat("tensor '", key, "': entry needs dtype, shape and data_offsets"));
    if (!v["dtype"].is_string()) bad(path, str_cat("tensor '", key, "': dtype is not a string"));
    auto dt = dtype_from_name(v["dtype"].get<std::string>());
    if (!dt) bad(path, str_cat("tensor '", key, "': unknown dtype '", v["dtype"].get<std::string>(), "'"));
    Entry e;
    e.info.name = key;
    e.info.dtype = *dt;
    e.info.file = path.filename().string();
    if (!v["shape"].is_array()) bad(path, str_cat("tensor '", key, "': shape is not an array"));
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) bad(path, str_cat("tensor '", key, "': shape holds a non-integer or negative"));
      uint64_t dim = d.get<uint64_t>();
      if (dim > (1ull << 40) || (dim && numel > (1ull << 50) / dim))
        bad(path, str_cat("tensor '", key, "': shape is too large"));
      numel *= dim;
      e.info.shape.push_back(static_cast<int64_t>(dim));
    }
    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      bad(path, str_cat("tensor '", key, "': data_offsets must be two non-negative integers"));
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.begin > e.end) bad(path, str_cat("tensor '", key, "': data_offsets [", e.begin, ", ", e.end, "] are reversed"));
    if (e.end > data_size)
      bad(path, str_cat("tensor '", key, "': data_offsets [", e.begin, ", ", e.end, "] run past the end of the data (",
                        data_size, " bytes)"));
    const uint64_t expect = numel * dtype_size(*dt);
    if (e.end - e.begin != expect)
      bad(path, str_cat("tensor '", key, "': byte span ", e.end - e.begin, " does not match shape ",
                        detail::shape_str(e.info.shape), " x ", dtype_name(*dt), " = ", expect, " bytes"));
    spans.emplace_back(e.begin, key);
    entries_.emplace(key, std::move(e));
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    const Entry& prev = entries_.at(spans[i - 1].second);
    const Entry& cur = entries_.at(spans[i].second);
    if (cur.begin < prev.end && cur.end > cur.begin && prev.end > prev.begin)
      bad(path, str_cat("tensors '", prev.info.name, "' and '", cur.info.name, "' overlap (data_offsets [", prev.begin,
                        ", ", prev.end, "] and [", cur.begin, ", ", cur.end, "])"));
  }
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (auto& [k, _] : entries_) out.push_back(k);
  return out;
}

bool SafetensorsFile::contains(const std::string& name) const { return entries_.count(name) > 0; }

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw_missing(name);
  return it->second.info;
}

const uint8_t* SafetensorsFile::raw_data(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw_missing(name);
  return file_->data() + data_start_ + it->second.begin;
}

torch::Tensor SafetensorsFile::get(const std::string& name, std::optional<torch::Dtype> dtype,
                                   const torch::Device& device) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw_missing(name);
  const Entry& e = it->second;
  const torch::Dtype src = to_torch(e.info.dtype);
  auto keep = file_;  // the view keeps the mapping alive
  void* ptr = file_->data() + data_start_ + e.begin;
  torch::Tensor view;
  if (e.end == e.begin) {
    view = torch::empty(e.info.shape, torch::TensorOptions().dtype(src));
  } else {
    view = torch::from_blob(ptr, e.info.shape, [keep](void*) mutable { keep.reset(); },
                            torch::TensorOptions().dtype(src));
  }
  const torch::Dtype want = dtype.value_or(src);
  if (want == src && device.is_cpu()) return view;
  return view.to(device, want);
}

void write_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;
  data.reserve(tensors.size());
  size_t offset = 0;
  for (const auto& [name, t0] : tensors) {
    GILL_CHECK(!header.contains(name), ErrorCode::kInvalidArgument, path.string(), ": duplicate tensor name '", name, "'");
    torch::Tensor t = t0.detach().to(torch::kCPU).contiguous();
    const DType dt = from_torch(t.scalar_type());
    const size_t bytes = static_cast<size_t>(t.numel()) * dtype_size(dt);
    header[name] = {{"dtype", dtype_name(dt)}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(t);
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');
  uint8_t len[8];
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  AtomicFile f(path);
  f.write(len, 8);
  f.write(h);
  for (const auto& t : data) f.write(t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size());
  f.commit();
}

}  // namespace gill::io

namespace gill::io {
std::unique_ptr<TensorSource> open_safetensors(const std::filesystem::path& file) {
  return std::make_unique<SafetensorsFile>(file);
}
}  // namespace gill::io
