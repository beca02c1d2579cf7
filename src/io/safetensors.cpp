#include "io/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include "io/atomic_file.h"
#include "util/error.h"

namespace gill::io {

using detail::str_cat;
using json = nlohmann::json;

namespace {
constexpr uint64_t kMaxHeader = 100000000;  // the reference implementation's MAX_HEADER_SIZE

[[noreturn]] void bad(const std::filesystem::path& p, const std::string& what) {
  detail::fail(ErrorCode::kFormat, str_cat(p.string(), ": ", what));
}
}  // namespace

// The rules are those of the reference implementation (huggingface/safetensors, SafeTensors::read_metadata and
// Metadata::validate): a header length of at most 100,000,000 bytes inside the file; a UTF-8 JSON object header
// (trailing JSON whitespace allowed, nothing else); `__metadata__` absent, null or an object of strings; each
// tensor with a known dtype, a shape of non-negative integers and two data_offsets; the tensors, in offset order,
// covering the data section from byte 0 to the file's end with no gap and no overlap, each span exactly
// numel x dtype size. Whatever the reference rejects is rejected here, naming the file and the rule.
SafetensorsFile::SafetensorsFile(const std::filesystem::path& path, Residency residency) : path_(path) {
  file_ = MappedFile::open(path, residency);
  const size_t size = file_->size();
  if (size < 8) bad(path, str_cat("truncated safetensors file (", size, " bytes, need at least 8)"));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file_->data()[i];
  if (n > kMaxHeader)
    bad(path, str_cat("safetensors header length ", n, " exceeds the limit of ", kMaxHeader, " bytes"));
  if (n > size - 8)
    bad(path, str_cat("safetensors header length ", n, " runs past the end of the file (", size, " bytes)"));
  data_start_ = 8 + n;
  const size_t data_size = size - data_start_;
  const char* hbegin = reinterpret_cast<const char*>(file_->data() + 8);
  // nlohmann's parser stops at a NUL byte as at the end of the input; the reference's JSON parser rejects it.
  if (std::memchr(hbegin, '\0', n) != nullptr)
    bad(path, "safetensors header is not valid JSON: it contains a NUL byte (pad the header with spaces)");
  json header;
  try {
    header = json::parse(hbegin, hbegin + n);
  } catch (const json::exception& e) {
    bad(path, str_cat("safetensors header is not valid JSON: ", e.what()));
  }
  if (!header.is_object()) bad(path, "safetensors header is not a JSON object");
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (key == "__metadata__") {
      if (v.is_null()) continue;  // Option<...> in the reference: null is "no metadata"
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
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) bad(path, str_cat("tensor '", key, "': shape holds a non-integer or negative"));
      const uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        bad(path, str_cat("tensor '", key, "': shape is too large"));
      e.info.shape.push_back(static_cast<int64_t>(dim));
    }
    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      bad(path, str_cat("tensor '", key, "': data_offsets must be two non-negative integers"));
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    entries_.emplace(key, std::move(e));
  }
  // Metadata::validate: in (begin, end) order, each tensor starts where the previous one ended (the first at 0).
  std::vector<const Entry*> order;
  order.reserve(entries_.size());
  for (const auto& [_, e] : entries_) order.push_back(&e);
  std::stable_sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return std::make_pair(a->begin, a->end) < std::make_pair(b->begin, b->end);
  });
  uint64_t covered = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : order) {
    const std::string& key = e->info.name;
    if (e->begin > e->end)
      bad(path, str_cat("tensor '", key, "': data_offsets [", e->begin, ", ", e->end, "] are reversed"));
    if (e->begin != covered) {
      if (prev)
        bad(path, str_cat("tensor '", key, "': data_offsets [", e->begin, ", ", e->end, "] do not start where '",
                          prev->info.name, "' ends (", covered, "): tensors must cover the data section with no ",
                          e->begin < covered ? "overlap" : "gap"));
      bad(path, str_cat("tensor '", key, "': data_offsets [", e->begin, ", ", e->end,
                        "] do not start at 0: tensors must cover the data section with no gap"));
    }
    covered = e->end;
    prev = e;
    uint64_t numel = 1;
    for (int64_t d : e->info.shape) {
      const uint64_t dim = static_cast<uint64_t>(d);
      if (dim && numel > std::numeric_limits<uint64_t>::max() / dim)
        bad(path, str_cat("tensor '", key, "': shape ", detail::shape_str(e->info.shape), " overflows"));
      numel *= dim;
    }
    const uint64_t esize = dtype_size(e->info.dtype);
    if (numel > std::numeric_limits<uint64_t>::max() / esize)
      bad(path, str_cat("tensor '", key, "': shape ", detail::shape_str(e->info.shape), " overflows"));
    const uint64_t expect = numel * esize;
    if (e->end - e->begin != expect)
      bad(path, str_cat("tensor '", key, "': byte span ", e->end - e->begin, " does not match shape ",
                        detail::shape_str(e->info.shape), " x ", dtype_name(e->info.dtype), " = ", expect, " bytes"));
  }
  // The last tensor must end exactly at the end of the file.
  if (covered > data_size)
    bad(path, str_cat("tensor '", prev->info.name, "': data_offsets [", prev->begin, ", ", prev->end,
                      "] run past the end of the data (", data_size, " bytes)"));
  if (covered < data_size)
    bad(path, str_cat("the tensors cover ", covered, " of the ", data_size,
                      " data bytes: the file has bytes after its last tensor (the data section must end at the "
                      "file's end)"));
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
  torch::Dtype src;
  try {
    src = to_torch(e.info.dtype);
  } catch (const Error& err) {
    detail::fail(ErrorCode::kUnsupported, str_cat(path_.string(), ": tensor '", name, "': ", err.what()));
  }
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

namespace {
// The reference's Dtype enum order (its alignment order); its writer lays tensors out by descending rank, then name.
int reference_rank(DType d) {
  switch (d) {
    case DType::BOOL: return 0;
    case DType::U8: return 1;
    case DType::I8: return 2;
    case DType::F8_E5M2: return 3;
    case DType::F8_E4M3: return 4;
    case DType::I16: return 5;
    case DType::U16: return 6;
    case DType::F16: return 7;
    case DType::BF16: return 8;
    case DType::I32: return 9;
    case DType::U32: return 10;
    case DType::F32: return 11;
    case DType::F64: return 12;
    case DType::I64: return 13;
    case DType::U64: return 14;
  }
  return 0;
}
}  // namespace

// Laid out as the reference's serialize() lays it out, so the same tensors give byte-identical files: compact JSON,
// `__metadata__` first (its keys sorted; the reference's order is its hash map's, the same for one key), then the
// tensors by descending dtype rank and then name, each as {"dtype","shape","data_offsets"}; the header padded with
// spaces to a multiple of 8 bytes; the data in the same order.
void write_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  struct Item {
    const std::string* name;
    torch::Tensor t;
    DType dt;
  };
  std::vector<Item> items;
  items.reserve(tensors.size());
  std::set<std::string> seen;
  for (const auto& [name, t0] : tensors) {
    GILL_CHECK(seen.insert(name).second, ErrorCode::kInvalidArgument, path.string(), ": duplicate tensor name '", name,
               "'");
    GILL_CHECK(name != "__metadata__", ErrorCode::kInvalidArgument, path.string(),
               ": '__metadata__' is reserved and cannot name a tensor");
    torch::Tensor t = t0.detach().to(torch::kCPU).contiguous();
    items.push_back({&name, t, from_torch(t.scalar_type())});
  }
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    const int ra = reference_rank(a.dt), rb = reference_rank(b.dt);
    return ra != rb ? ra > rb : *a.name < *b.name;
  });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto& it : items) {
    const size_t bytes = static_cast<size_t>(it.t.numel()) * dtype_size(it.dt);
    nlohmann::ordered_json info = nlohmann::ordered_json::object();
    info["dtype"] = dtype_name(it.dt);
    info["shape"] = it.t.sizes().vec();
    info["data_offsets"] = {offset, offset + bytes};
    header[*it.name] = std::move(info);
    offset += bytes;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  uint8_t len[8];
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  AtomicFile f(path);
  f.write(len, 8);
  f.write(h);
  for (const auto& it : items) f.write(it.t.data_ptr(), static_cast<size_t>(it.t.numel()) * it.t.element_size());
  f.commit();
}

}  // namespace gill::io

namespace gill::io {
std::unique_ptr<TensorSource> open_safetensors(const std::filesystem::path& file, Residency residency) {
  return std::make_unique<SafetensorsFile>(file, residency);
}
}  // namespace gill::io
