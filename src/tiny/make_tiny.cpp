#include "tiny/make_tiny.h"

#include <ATen/CPUGeneratorImpl.h>

#include "io/atomic_file.h"
#include "io/image.h"
#include "pipeline/gill_index.h"
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
  io::write_file_atomic(path, j.dump(indent) + "\n");
}

void write_tiny_retrieval_index(const std::filesystem::path& root, uint64_t seed) {
  // Four small procedural pictures (a gradient with a coloured block; the seed shifts the colours), indexed
  // with the tiny CLIP and GILL heads exactly as `gill index` does.
  const auto dir = root / "retrieval_images";
  std::vector<std::filesystem::path> files;
  for (int k = 0; k < 4; ++k) {
    gill::Image im;
    im.width = 48;
    im.height = 40;
    im.pixels.resize(static_cast<size_t>(im.width) * im.height * 3);
    const int r0 = static_cast<int>((seed * 37 + 60 * k) % 256), g0 = (90 * k + 30) % 256, b0 = (200 - 45 * k) % 256;
    for (int y = 0; y < im.height; ++y)
      for (int x = 0; x < im.width; ++x) {
        const bool block = x >= 8 + 6 * k && x < 24 + 6 * k && y >= 10 && y < 30;
        uint8_t* px = &im.pixels[(static_cast<size_t>(y) * im.width + x) * 3];
        px[0] = static_cast<uint8_t>(block ? 255 - r0 : (r0 + 3 * x) % 256);
        px[1] = static_cast<uint8_t>(block ? 255 - g0 : (g0 + 4 * y) % 256);
        px[2] = static_cast<uint8_t>(block ? 255 - b0 : (b0 + 2 * (x + y)) % 256);
      }
    files.push_back(dir / detail::str_cat("00000", k, ".png"));
    io::write_png(files.back(), im);
  }
  pipeline::IndexBuildOptions o;
  o.paths.root = root;
  pipeline::build_index(o, files, root / "checkpoints" / "gill_opt");
}

const std::vector<TinyComponent>& tiny_components() {
  static const std::vector<TinyComponent> kComponents = {
      {"opt", [](const std::filesystem::path& root, uint64_t seed) { write_tiny_opt(root / "facebook" / "opt-tiny", seed); }},
      {"clip", [](const std::filesystem::path& root, uint64_t seed) { write_tiny_clip(root, seed); }},
      {"sd", [](const std::filesystem::path& root, uint64_t seed) { write_tiny_sd(root, seed); }},
      {"gill_checkpoint", write_tiny_gill_checkpoint},
      {"retrieval_index", write_tiny_retrieval_index},
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
