// Sharded checkpoints: model.safetensors.index.json / pytorch_model.bin.index.json.
#include <nlohmann/json.hpp>

#include <map>

#include "io/atomic_file.h"
#include "io/tensor_source.h"
#include "util/error.h"

namespace gill::io {

using detail::str_cat;
using json = nlohmann::json;

namespace {

class ShardedSource : public TensorSource {
 public:
  ShardedSource(const std::filesystem::path& index, Residency residency) : index_(index) {
    const std::string text = read_file(index);
    json j;
    try {
      j = json::parse(text);
    } catch (const json::exception& e) {
      detail::fail(ErrorCode::kFormat, str_cat(index.string(), ": not valid JSON: ", e.what()));
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      detail::fail(ErrorCode::kFormat, str_cat(index.string(), ": no \"weight_map\" object"));
    std::map<std::string, size_t> shard_ids;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string())
        detail::fail(ErrorCode::kFormat, str_cat(index.string(), ": weight_map entry '", it.key(), "' is not a string"));
      const std::string file = it.value().get<std::string>();
      if (file.find("..") != std::string::npos || (!file.empty() && file[0] == '/'))
        detail::fail(ErrorCode::kSecurity, str_cat(index.string(), ": shard path '", file, "' leaves the folder"));
      auto [pos, inserted] = shard_ids.emplace(file, shards_.size());
      if (inserted) {
        const auto shard_path = index.parent_path() / file;
        std::error_code ec;
        if (!std::filesystem::exists(shard_path, ec))
          detail::fail(ErrorCode::kNotFound,
                       str_cat(index.string(), ": shard '", file, "' (for tensor '", it.key(), "') is missing"));
        shards_.push_back(detail::with_context(index.string(), [&] { return open_tensors(shard_path, residency); }));
        shard_names_.push_back(file);
      }
      where_[it.key()] = pos->second;
    }
    for (auto& [name, shard] : where_) {
      if (!shards_[shard]->contains(name))
        detail::fail(ErrorCode::kFormat, str_cat(index.string(), ": tensor '", name, "' is listed in shard '",
                                                 shard_names_[shard], "' but that file does not hold it"));
      infos_[name] = shards_[shard]->info(name);
    }
  }

  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (auto& [k, _] : where_) out.push_back(k);
    return out;
  }
  bool contains(const std::string& name) const override { return where_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const override {
    auto it = infos_.find(name);
    if (it == infos_.end()) throw_missing(name);
    return it->second;
  }
  torch::Tensor get(const std::string& name, std::optional<torch::Dtype> dtype,
                    const torch::Device& device) const override {
    auto it = where_.find(name);
    if (it == where_.end()) throw_missing(name);
    return shards_[it->second]->get(name, dtype, device);
  }
  std::string description() const override {
    return str_cat(index_.string(), " (", shards_.size(), " shard", shards_.size() == 1 ? "" : "s", ")");
  }

 private:
  std::filesystem::path index_;
  std::vector<std::unique_ptr<TensorSource>> shards_;
  std::vector<std::string> shard_names_;
  std::map<std::string, size_t> where_;
  std::map<std::string, TensorInfo> infos_;
};

}  // namespace

std::unique_ptr<TensorSource> open_sharded_index(const std::filesystem::path& index_json, Residency residency) {
  return std::make_unique<ShardedSource>(index_json, residency);
}


}  // namespace gill::io
