#include "io/inspect.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <iomanip>
#include <set>

#include "io/tensor_source.h"
#include "util/error.h"

namespace gill::io {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_weights_file(const std::string& name) {
  return ends_with(name, ".safetensors") || ends_with(name, ".bin") || ends_with(name, ".pth.tar") ||
         ends_with(name, ".pth") || ends_with(name, ".pt") || ends_with(name, ".ckpt") || ends_with(name, ".index.json");
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

}  // namespace

void inspect(const fs::path& path, std::ostream& out, bool as_json) {
  std::error_code ec;
  if (!fs::exists(path, ec)) detail::fail(ErrorCode::kNotFound, path.string() + ": no such file or folder");
  if (!fs::is_directory(path, ec)) {
    auto src = open_tensors(path);
    list_source(*src, path.parent_path(), out, as_json);
    return;
  }
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
    auto src = open_tensors(f);
    list_source(*src, f.parent_path(), out, as_json);
  }
}

}  // namespace gill::io
