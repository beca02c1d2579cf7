#include "tiny/make_tiny.h"

#include <ATen/CPUGeneratorImpl.h>

#include "io/atomic_file.h"
#include "tiny/tiny.h"
#include "tiny/tiny_clip.h"
#include "tiny/tiny_opt.h"
#include "tiny/tiny_sd.h"
#include "tiny/tiny_sd_pipeline.h"
#include "tokenizer/bpe_train.h"
#include "util/error.h"

namespace gill::tiny {

const TinyDims& tiny_dims() {
  static const TinyDims d;
  return d;
}

torch::Generator tiny_generator(uint64_t seed, const std::string& component) {
  uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a over the name, mixed with the seed
  for (unsigned char c : component) h = (h ^ c) * 1099511628211ull;
  return at::make_generator<at::CPUGeneratorImpl>(h);
}

torch::Tensor tiny_randn(torch::Generator& gen, at::IntArrayRef shape, double std, torch::Dtype dtype) {
  return (torch::randn(shape, gen, torch::kFloat32) * std).to(dtype);
}

void write_json(const std::filesystem::path& path, const nlohmann::json& j, int indent) {
  io::write_file_atomic(path, j.dump(indent));
}

const std::vector<TinyComponent>& tiny_components() {
  static const std::vector<TinyComponent> kComponents = {
      {"opt", [](const std::filesystem::path& root, uint64_t seed) { write_tiny_opt(root / "facebook" / "opt-tiny", seed); }},
      {"clip", [](const std::filesystem::path& root, uint64_t seed) { write_tiny_clip(root, seed); }},
      {"sd", [](const std::filesystem::path& root, uint64_t seed) { write_tiny_sd(root, seed); }},
      {"gill_checkpoint", write_tiny_gill_checkpoint},
  };
  return kComponents;
}

void make_tiny(const std::filesystem::path& root, uint64_t seed) {
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) detail::fail(ErrorCode::kIo, root.string() + ": cannot create folder: " + ec.message());
  for (const auto& c : tiny_components())
    detail::with_context(std::string("make-tiny ") + c.name, [&] { c.write(root, seed); });
}

}  // namespace gill::tiny
