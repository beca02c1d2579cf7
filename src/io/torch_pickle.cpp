// torch zip-pickle reader. Layout from torch/serialization.py (_save with _use_new_zipfile_serialization): a ZIP of
// stored entries `archive/data.pkl`, `archive/data/<key>`, `archive/version`; storages are raw little-endian
// arrays of `numel` elements.
#include "io/torch_pickle.h"

#include <cstring>

#include "util/error.h"

namespace gill::io {

using detail::str_cat;

std::optional<DType> storage_dtype(const std::string& t) {
  static const std::pair<const char*, DType> kTypes[] = {
      {"FloatStorage", DType::F32}, {"HalfStorage", DType::F16},  {"BFloat16Storage", DType::BF16},
      {"DoubleStorage", DType::F64}, {"LongStorage", DType::I64}, {"IntStorage", DType::I32},
      {"ShortStorage", DType::I16}, {"CharStorage", DType::I8},   {"ByteStorage", DType::U8},
      {"BoolStorage", DType::BOOL}};
  for (auto& [n, d] : kTypes)
    if (t == n) return d;
  return std::nullopt;
}

void reject_legacy_torch(const MappedFile& file) {
  const uint8_t* d = file.data();
  const size_t n = file.size();
  if (n >= 2 && d[0] == 0x80 && d[1] <= 5)
    detail::fail(ErrorCode::kUnsupported,
                 str_cat(file.path(), ": legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it "
                                      "with a recent torch (torch.save(torch.load(f), f)) or convert to safetensors"));
  if (n >= 262 && std::memcmp(d + 257, "ustar", 5) == 0)
    detail::fail(ErrorCode::kUnsupported,
                 str_cat(file.path(), ": legacy tar torch.save format is not supported; re-save it with a recent "
                                      "torch or convert to safetensors"));
}

TorchPickleFile::TorchPickleFile(const std::filesystem::path& path, Residency residency) : path_(path) {
  file_ = MappedFile::open(path, residency);
  const std::string where = path.string();
  if (file_->size() < 4 || std::memcmp(file_->data(), "PK\x03\x04", 4) != 0) {
    reject_legacy_torch(*file_);
    detail::fail(ErrorCode::kFormat, str_cat(where, ": not a torch zip-pickle file (no ZIP signature)"));
  }
  ZipArchive zip(file_);
  std::string prefix;
  bool found = false;
  for (auto& [name, _] : zip.entries()) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos && name.substr(slash) == "/data.pkl") {
      prefix = name.substr(0, slash);
      found = true;
      break;
    }
  }
  if (!found) detail::fail(ErrorCode::kFormat, str_cat(where, ": no '<archive>/data.pkl' entry; not a torch.save file"));
  const std::string_view pkl = zip.data(prefix + "/data.pkl");
  pickle::ValuePtr root = pickle::unpickle(pkl, where + " (" + prefix + "/data.pkl)");

  std::vector<std::pair<std::string, pickle::ValuePtr>> leaves;
  detail::with_context(where, [&] { pickle::flatten(root, "", leaves); });
  for (auto& [name, v] : leaves) {
    if (v->kind != pickle::Kind::kTensor) {
      values_.emplace_back(name, v);
      continue;
    }
    const pickle::Value& st = *v->storage;
    auto dt = storage_dtype(st.storage_type);
    if (!dt)
      detail::fail(ErrorCode::kUnsupported,
                   str_cat(where, ": tensor '", name, "' uses unsupported storage type ", st.storage_type));
    const std::string entry = prefix + "/data/" + st.str;
    const ZipArchive::Entry* ze = zip.find(entry);
    if (!ze) detail::fail(ErrorCode::kFormat, str_cat(where, ": tensor '", name, "': storage '", entry, "' is missing"));
    if (ze->method != 0) zip.data(entry);  // throws kUnsupported naming the method
    const uint64_t esize = dtype_size(*dt);
    const uint64_t numel = static_cast<uint64_t>(st.i);
    if (numel > (uint64_t(1) << 60) / esize || ze->size != numel * esize)
      detail::fail(ErrorCode::kFormat, str_cat(where, ": tensor '", name, "': storage '", entry, "' holds ", ze->size,
                                               " bytes but its header says ", numel, " x ", esize, " bytes"));
    // The tensor's extent must lie inside its storage.
    bool empty = false;
    uint64_t last = static_cast<uint64_t>(v->offset);
    if (v->offset < 0) detail::fail(ErrorCode::kFormat, str_cat(where, ": tensor '", name, "': negative offset"));
    for (size_t k = 0; k < v->sizes.size(); ++k) {
      if (v->sizes[k] < 0 || v->strides[k] < 0 || v->sizes[k] > (int64_t(1) << 40) || v->strides[k] > (int64_t(1) << 40))
        detail::fail(ErrorCode::kFormat, str_cat(where, ": tensor '", name, "': bad size/stride"));
      if (v->sizes[k] == 0) empty = true;
      else last += static_cast<uint64_t>(v->sizes[k] - 1) * static_cast<uint64_t>(v->strides[k]);
    }
    // Stride-0 dimensions can make a view far larger than its storage; nothing real comes near 2^48 elements.
    const uint64_t kMaxNumel = uint64_t(1) << 48;
    uint64_t view_numel = 1;
    for (int64_t s : v->sizes) {
      if (s == 0) continue;
      if (static_cast<uint64_t>(s) > kMaxNumel / view_numel)
        detail::fail(ErrorCode::kFormat, str_cat(where, ": tensor '", name, "' of shape ", detail::shape_str(v->sizes),
                                                 " has too many elements"));
      view_numel *= static_cast<uint64_t>(s);
    }
    if (!empty && last >= numel)
      detail::fail(ErrorCode::kFormat,
                   str_cat(where, ": tensor '", name, "' of shape ", detail::shape_str(v->sizes), " at offset ",
                           v->offset, " does not fit its storage '", entry, "' of ", numel, " elements"));
    Entry e;
    e.info = TensorInfo{name, *dt, v->sizes, path.filename().string()};
    e.strides = v->strides;
    e.byte_offset = ze->offset + static_cast<uint64_t>(v->offset) * esize;
    if (!tensors_.emplace(name, std::move(e)).second)
      detail::fail(ErrorCode::kFormat, str_cat(where, ": duplicate tensor name '", name, "'"));
  }
}

std::vector<std::string> TorchPickleFile::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (auto& [k, _] : tensors_) out.push_back(k);
  return out;
}

const TensorInfo& TorchPickleFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw_missing(name);
  return it->second.info;
}

const uint8_t* TorchPickleFile::raw_data(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw_missing(name);
  return file_->data() + it->second.byte_offset;
}

torch::Tensor TorchPickleFile::get(const std::string& name, std::optional<torch::Dtype> dtype,
                                   const torch::Device& device) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw_missing(name);
  const Entry& e = it->second;
  const torch::Dtype src = to_torch(e.info.dtype);
  const auto opts = torch::TensorOptions().dtype(src);
  torch::Tensor view;
  if (e.info.numel() == 0) {
    view = torch::empty(e.info.shape, opts);
  } else {
    void* ptr = file_->data() + e.byte_offset;
    auto keep = file_;
    view = torch::from_blob(ptr, e.info.shape, e.strides, [keep](void*) mutable { keep.reset(); }, opts);
    // Misaligned element data (never produced by torch.save, which aligns to 64) is copied once.
    if (reinterpret_cast<uintptr_t>(ptr) % dtype_size(e.info.dtype) != 0) view = view.clone();
  }
  const torch::Dtype want = dtype.value_or(src);
  if (want == src && device.is_cpu()) return view;
  return view.to(device, want);
}

std::unique_ptr<TensorSource> open_torch_pickle(const std::filesystem::path& file, Residency residency) {
  return std::make_unique<TorchPickleFile>(file, residency);
}

}  // namespace gill::io
