#include "io/inspect.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <iomanip>
#include <set>

#include "io/npy.h"
#include "io/tensor_source.h"
#include "io/torch_pickle.h"
#include "util/error.h"

namespace gill::io {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_weights_file(const std::string& name) {
  return ends_with(name, ".safetensors") || ends_with(name, ".bin") || ends_with(name, ".pth.tar") ||
         ends_with(name, ".pth") || ends_with(name, ".pt") || ends_with(name, ".ckpt") || ends_with(name, ".index.json") ||
         ends_with(name, ".npy");
}

void list_source(const TensorSource& src, const fs::path& base, std::ostream& out, bool as_json) {
  for (const auto& name : src.names()) {
    const TensorInfo& info = src.info(name);
    if (as_json) {
      nlohmann::json j = {{"name", name}, {"dtype", dtype_name(info.dtype)}, {"shape", info.shape},
                          {"file", (base / info.file).string()}};
      out << j.dump() << "\n";
    } else {
      out << name << "  " << dtype_name(info.dtype) << "  " << detail::shape_str(info.shape) << "  "
          << (base / info.file).string() << "\n";
    }
  }
}

void print_value(const std::string& name, const pickle::Value& v, const fs::path& file, std::ostream& out,
                 bool as_json) {
  if (as_json) {
    nlohmann::json j = {{"name", name}, {"type", pickle::kind_name(v.kind)}, {"value", v.repr()}, {"file", file.string()}};
    out << j.dump() << "\n";
  } else {
    out << name << "  " << pickle::kind_name(v.kind) << "  " << v.repr() << "  " << file.string() << "\n";
  }
}

void print_tensor(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
                  const fs::path& file, std::ostream& out, bool as_json) {
  if (as_json) {
    out << nlohmann::json({{"name", name}, {"dtype", dtype}, {"shape", shape}, {"file", file.string()}}).dump() << "\n";
  } else {
    out << name << "  " << dtype << "  " << detail::shape_str(shape) << "  " << file.string() << "\n";
  }
}

// .npy: a real numpy array, or (GILL's retrieval file) a pickle {'paths', 'embeddings'}.
void inspect_npy(const fs::path& f, std::ostream& out, bool as_json) {
  if (is_npy_file(f)) {
    const NpyHeader h = read_npy_header(f);
    print_tensor(f.stem().string(), dtype_name(h.dtype), h.shape, f, out, as_json);
    return;
  }
  pickle::ValuePtr root = load_pickle_file(f);
  bool retrieval = root->kind == pickle::Kind::kDict;
  if (retrieval) {
    bool p = false, e = false;
    for (auto& [k, v] : root->entries) {
      p |= k->kind == pickle::Kind::kString && k->str == "paths";
      e |= k->kind == pickle::Kind::kString && k->str == "embeddings";
    }
    retrieval = p && e;
  }
  if (retrieval) {
    const RetrievalEmbeddings r = load_retrieval_embeddings(f);
    pickle::Value paths;
    paths.kind = pickle::Kind::kList;
    paths.items.resize(r.paths.size());
    print_value("paths", paths, f, out, as_json);
    print_tensor("embeddings", "F32", r.embeddings.sizes().vec(), f, out, as_json);
    return;
  }
  std::vector<std::pair<std::string, pickle::ValuePtr>> leaves;
  pickle::flatten(root, "", leaves);
  for (auto& [name, v] : leaves) {
    if (v->kind == pickle::Kind::kNdArray)
      print_tensor(name, dtype_name(npy_dtype(v->storage_type, f.string())), v->sizes, f, out, as_json);
    else
      print_value(name, *v, f, out, as_json);
  }
}

void inspect_file(const fs::path& f, std::ostream& out, bool as_json) {
  if (ends_with(f.filename().string(), ".npy")) return inspect_npy(f, out, as_json);
  auto src = open_tensors(f);
  list_source(*src, f.parent_path(), out, as_json);
  if (auto* tp = dynamic_cast<const TorchPickleFile*>(src.get()))
    for (auto& [name, v] : tp->values()) print_value(name, *v, f, out, as_json);
}

}  // namespace

void inspect(const fs::path& path, std::ostream& out, bool as_json) {
  std::error_code ec;
  if (!fs::exists(path, ec)) detail::fail(ErrorCode::kNotFound, path.string() + ": no such file or folder");
  if (!fs::is_directory(path, ec)) return inspect_file(path, out, as_json);
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(path, ec); it != fs::recursive_directory_iterator(); ++it)
    if (it->is_regular_file() && is_weights_file(it->path().filename().string())) files.push_back(it->path());
  std::sort(files.begin(), files.end());
  // Shards named by an index are listed through it.
  std::set<fs::path> covered;
  for (const auto& f : files) {
    if (!ends_with(f.filename().string(), ".index.json")) continue;
    try {
      auto j = nlohmann::json::parse(std::ifstream(f));
      for (auto& [k, v] : j.at("weight_map").items()) covered.insert(f.parent_path() / v.template get<std::string>());
    } catch (const std::exception&) {
      // open_tensors below reports the problem with the file name.
    }
  }
  for (const auto& f : files) {
    if (covered.count(f)) continue;
    inspect_file(f, out, as_json);
  }
}

}  // namespace gill::io
