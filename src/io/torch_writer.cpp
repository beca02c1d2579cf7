#include "io/torch_writer.h"

#include "io/atomic_file.h"
#include "util/error.h"

namespace gill::io {

void write_torch_pickle(const std::filesystem::path& path, const c10::IValue& value) {
  const std::vector<char> bytes =
      detail::with_context(path.string(), [&] { return torch::pickle_save(value); });
  write_file_atomic(path, std::string_view(bytes.data(), bytes.size()));
}

void write_torch_state_dict(const std::filesystem::path& path, const NamedTensors& tensors,
                            const std::string& top_key) {
  c10::Dict<std::string, torch::Tensor> sd;
  for (const auto& [name, t] : tensors) {
    GILL_CHECK(!sd.contains(name), ErrorCode::kInvalidArgument, path.string(), ": duplicate tensor name '", name, "'");
    sd.insert(name, t.detach().to(torch::kCPU).contiguous());
  }
  if (top_key.empty()) return write_torch_pickle(path, sd);
  c10::Dict<std::string, c10::Dict<std::string, torch::Tensor>> root;
  root.insert(top_key, sd);
  write_torch_pickle(path, root);
}

}  // namespace gill::io
