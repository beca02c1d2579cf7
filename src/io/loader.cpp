#include "io/loader.h"

#include "util/error.h"

namespace gill::io {

using detail::str_cat;

namespace {

bool matches_any(const std::string& s, const std::vector<std::regex>& res) {
  for (const auto& r : res)
    if (std::regex_match(s, r)) return true;
  return false;
}

std::vector<std::regex> compile(const std::vector<std::string>& patterns) {
  std::vector<std::regex> out;
  for (const auto& p : patterns) out.emplace_back(p);
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

}  // namespace

LoadReport load_module(torch::nn::Module& module, const TensorSource& source, const LoadSpec& spec,
                       torch::Dtype dtype, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  LoadReport report;
  const auto optional = compile(spec.optional);
  const auto allowed_extra = compile(spec.allowed_extra);
  const auto skip = compile(spec.skip);
  const auto fewer_rows = compile(spec.allow_fewer_rows);

  // Every tensor the module owns: parameters and buffers, by their registered names.
  std::vector<std::pair<std::string, torch::Tensor>> targets;
  for (auto& p : module.named_parameters(/*recurse=*/true)) targets.emplace_back(p.key(), p.value());
  for (auto& b : module.named_buffers(/*recurse=*/true)) targets.emplace_back(b.key(), b.value());

  // Choose the prefix: the first one under which any module tensor is found.
  std::string prefix = spec.prefixes.empty() ? "" : spec.prefixes.front();
  bool chosen = false;
  for (const auto& p : spec.prefixes) {
    for (auto& [name, _] : targets)
      if (source.contains(p + name)) {
        prefix = p;
        chosen = true;
        break;
      }
    if (chosen) break;
  }
  report.prefix = prefix;

  auto find_key = [&](const std::string& name) -> std::string {
    if (source.contains(prefix + name)) return prefix + name;
    for (const auto& [from, to] : spec.aliases) {
      auto pos = name.find(from);
      if (pos == std::string::npos) continue;
      std::string alt = name;
      alt.replace(pos, from.size(), to);
      if (source.contains(prefix + alt)) return prefix + alt;
    }
    return {};
  };

  std::set<std::string> used;
  std::vector<std::string> all_names = source.names();
  for (auto& [name, target] : targets) {
    if (matches_any(name, skip)) continue;
    const std::string key = find_key(name);
    if (key.empty()) {
      if (matches_any(name, optional)) {
        report.kept.push_back(name);
        continue;
      }
      auto close = close_matches(prefix + name, all_names);
      detail::fail(ErrorCode::kNotFound,
                   str_cat(source.description(), ": missing tensor '", prefix + name, "'",
                           close.empty() ? std::string() : str_cat(" (close matches: ", join(close), ")")));
    }
    const TensorInfo& info = source.info(key);
    const auto want_shape = target.sizes().vec();
    const bool is_float = target.is_floating_point();
    const torch::Dtype to_dtype = is_float ? dtype : target.scalar_type();
    if (info.shape != want_shape) {
      const bool rows_ok = matches_any(name, fewer_rows) && info.shape.size() == want_shape.size() &&
                           !want_shape.empty() && info.shape[0] <= want_shape[0] &&
                           std::equal(info.shape.begin() + 1, info.shape.end(), want_shape.begin() + 1);
      if (!rows_ok)
        detail::fail(ErrorCode::kShapeMismatch,
                     str_cat(source.description(), ": tensor '", key, "' has shape ", detail::shape_str(info.shape),
                             " but the model (from its config) expects ", detail::shape_str(want_shape)));
      auto full = torch::empty(want_shape, torch::TensorOptions().dtype(to_dtype).device(device));
      full.narrow(0, 0, info.shape[0]).copy_(source.get(key, to_dtype, device));
      target.set_data(full);
    } else {
      target.set_data(source.get(key, to_dtype, device));
    }
    used.insert(key);
    report.loaded.push_back(name);
  }

  std::vector<std::string> surplus;
  for (const auto& k : all_names) {
    if (used.count(k)) continue;
    if (!spec.all_keys_must_be_used && k.rfind(prefix, 0) != 0) continue;
    if (matches_any(k, allowed_extra)) {
      report.unused_extra.push_back(k);
      continue;
    }
    surplus.push_back(k);
  }
  if (!surplus.empty()) {
    std::vector<std::string> shown(surplus.begin(), surplus.begin() + std::min<size_t>(surplus.size(), 5));
    detail::fail(ErrorCode::kFormat, str_cat(source.description(), ": ", surplus.size(),
                                             " unexpected tensor(s) the model does not use: ", join(shown),
                                             surplus.size() > 5 ? ", ..." : ""));
  }
  return report;
}

}  // namespace gill::io
// x
// y
