// The CausalLM registry and the decoder-agnostic pieces (KV cache, parameter bytes).
#include "models/causal_lm.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/tensor_source.h"
#include "util/error.h"
#include "util/json.h"

namespace gill::models {

namespace fs = std::filesystem;
using detail::str_cat;

// ---------------------------------------------------------------------------------------------- the registry

// Each decoder's loader is defined in its own models/ file.
std::shared_ptr<CausalLM> load_opt_causal_lm(const fs::path& dir, const ModuleOptions& options);  // models/opt.cpp

namespace {

struct DecoderEntry {
  const char* model_type;  // config.json's model_type
  std::shared_ptr<CausalLM> (*load)(const fs::path& dir, const ModuleOptions& options);
};

// One line per decoder.
const DecoderEntry kDecoderTable[] = {
    {"opt", load_opt_causal_lm},
};

std::string known_decoder_types() {
  std::string s;
  for (const auto& d : kDecoderTable) s += str_cat(s.empty() ? "" : ", ", d.model_type);
  return s;
}

}  // namespace

std::vector<std::string> causal_lm_model_types() {
  std::vector<std::string> out;
  for (const auto& d : kDecoderTable) out.emplace_back(d.model_type);
  return out;
}

std::string causal_lm_model_type(const fs::path& dir) {
  const fs::path path = dir / "config.json";
  const nlohmann::json j = util::read_json_file(path);
  GILL_CHECK(j.is_object(), ErrorCode::kFormat, path.string(), ": expected a JSON object");
  auto it = j.find("model_type");
  GILL_CHECK(it != j.end() && it->is_string(), ErrorCode::kFormat, path.string(),
             ": no string 'model_type' (it names the decoder; known: ", known_decoder_types(), ")");
  return it->get<std::string>();
}

std::shared_ptr<CausalLM> load_causal_lm(const fs::path& dir, const ModuleOptions& options) {
  std::error_code ec;
  GILL_CHECK(fs::is_directory(dir, ec), ErrorCode::kNotFound, "loading the LM from ", dir.string(), ": no such folder");
  const std::string type = causal_lm_model_type(dir);
  for (const auto& d : kDecoderTable)
    if (type == d.model_type) return d.load(dir, options);
  detail::fail(ErrorCode::kUnsupported, str_cat((dir / "config.json").string(), ": model_type '", type,
                                                "' has no decoder in gill (known: ", known_decoder_types(), ")"));
}

int64_t fp32_parameter_bytes(const fs::path& dir) {
  auto source = io::open_tensors(dir);
  bool tied = true;
  std::error_code ec;
  if (fs::is_regular_file(dir / "config.json", ec)) {
    const nlohmann::json j = util::read_json_file(dir / "config.json");
    if (j.is_object()) util::json_get_if(j, "tie_word_embeddings", tied);
  }
  int64_t n = 0;
  for (const auto& name : source->names()) {
    if (tied && name == "lm_head.weight") continue;  // the embedding's own tensor, counted under its name
    const auto& info = source->info(name);
    switch (info.dtype) {
      case io::DType::F32:
      case io::DType::F16:
      case io::DType::BF16:
      case io::DType::F64:
      case io::DType::F8_E5M2:
      case io::DType::F8_E4M3:
        n += info.numel();
        break;
      default:
        break;  // integer buffers (position ids) are not parameters
    }
  }
  return n * 4;
}

// ---------------------------------------------------------------------------------------------- KVCache

void KVCache::clear() {
  k.clear();
  v.clear();
  n_tokens = 0;
}

void KVCache::truncate(int64_t n) {
  GILL_CHECK(n >= 0 && n <= n_tokens, ErrorCode::kInvalidArgument, "KVCache::truncate(", n, "): the cache holds ",
             n_tokens, " positions");
  n_tokens = n;
}

std::pair<torch::Tensor, torch::Tensor> KVCache::append(size_t layer, const torch::Tensor& k_new,
                                                        const torch::Tensor& v_new) {
  if (k.size() <= layer) {
    k.resize(layer + 1);
    v.resize(layer + 1);
  }
  const int64_t t_new = k_new.size(2), need = n_tokens + t_new;
  auto& kb = k[layer];
  auto& vb = v[layer];
  if (kb.defined() && (kb.size(0) != k_new.size(0) || kb.scalar_type() != k_new.scalar_type()))
    detail::fail(ErrorCode::kInvalidArgument, str_cat("KVCache: batch/dtype changed (cache batch ", kb.size(0),
                                                      ", new batch ", k_new.size(0), "); call clear() first"));
  if (!kb.defined() || kb.size(2) < need) {
    const int64_t cap = std::max<int64_t>(need, kb.defined() ? 2 * kb.size(2) : std::max<int64_t>(need, 64));
    auto grow = [&](torch::Tensor& buf, const torch::Tensor& like) {
      auto nb = torch::empty({like.size(0), like.size(1), cap, like.size(3)}, like.options());  // [B, H, cap, hd]
      if (buf.defined() && n_tokens > 0) nb.narrow(2, 0, n_tokens).copy_(buf.narrow(2, 0, n_tokens));
      buf = nb;
    };
    grow(kb, k_new);
    grow(vb, v_new);
  }
  kb.narrow(2, n_tokens, t_new).copy_(k_new);
  vb.narrow(2, n_tokens, t_new).copy_(v_new);
  return {kb.narrow(2, 0, need), vb.narrow(2, 0, need)};
}

void KVCache::commit(int64_t n_new) {
  n_tokens += n_new;
}

}  // namespace gill::models
