#include "tiny/tiny_opt.h"
#include "tokenizer/bpe_train.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/tensor_source.h"
#include "tiny/make_tiny.h"
#include "util/error.h"

namespace gill::tiny {

using detail::str_cat;
namespace fs = std::filesystem;

namespace {

// splitmix64: a fast seeded stream (the benchmark writes 6.7e9 values).
inline uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Fills dst[0..n) with center + U(-a, a), element i of the stream `stream_id`.
void fill_uniform(float* dst, int64_t n, uint64_t stream_id, int64_t offset, float center, float a) {
  at::parallel_for(0, n, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const uint64_t r = mix(stream_id * 0x100000001B3ull + static_cast<uint64_t>(offset + i));
      const float u = static_cast<float>(r >> 40) * (1.0f / 16777216.0f);  // [0, 1)
      dst[i] = center + a * (2.0f * u - 1.0f);
    }
  });
}

std::vector<std::pair<std::string, std::vector<int64_t>>> opt_tensor_shapes(const models::OPTConfig& c) {
  models::OPTDecoder dec(c, models::ModuleOptions{torch::kFloat32, torch::kCPU});  // torch::empty: lazy memory
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (auto& p : dec->named_parameters(true)) out.emplace_back("model.decoder." + p.key(), p.value().sizes().vec());
  return out;
}



}  // namespace

nlohmann::json opt_config_json(const models::OPTConfig& c) {
  return {{"_remove_final_layer_norm", c.remove_final_layer_norm},
          {"activation_dropout", 0.0},
          {"activation_function", c.activation_function},
          {"architectures", {"OPTForCausalLM"}},
          {"attention_dropout", 0.0},
          {"bos_token_id", c.bos_token_id},
          {"do_layer_norm_before", c.do_layer_norm_before},
          {"dropout", 0.1},
          {"enable_bias", c.enable_bias},
          {"eos_token_id", c.eos_token_id},
          {"ffn_dim", c.ffn_dim},
          {"hidden_size", c.hidden_size},
          {"init_std", 0.02},
          {"layer_norm_elementwise_affine", c.layer_norm_elementwise_affine},
          {"layerdrop", 0.0},
          {"max_position_embeddings", c.max_position_embeddings},
          {"model_type", "opt"},
          {"num_attention_heads", c.num_attention_heads},
          {"num_hidden_layers", c.num_hidden_layers},
          {"pad_token_id", c.pad_token_id},
          {"prefix", "</s>"},
          {"torch_dtype", c.torch_dtype.empty() ? "float32" : c.torch_dtype},
          {"transformers_version", "4.30.2"},
          {"use_cache", true},
          {"vocab_size", c.vocab_size},
          {"word_embed_proj_dim", c.word_embed_proj_dim}};
}

void write_random_opt(const fs::path& dir, const models::OPTConfig& config, torch::Dtype dtype, uint64_t seed) {
  fs::create_directories(dir);
  auto cfg = config;
  cfg.torch_dtype = dtype == torch::kBFloat16 ? "bfloat16" : dtype == torch::kFloat16 ? "float16" : "float32";
  write_json(dir / "config.json", opt_config_json(cfg), 2);

  const auto shapes = opt_tensor_shapes(config);
  const io::DType dt = io::from_torch(dtype);
  const size_t esize = io::dtype_size(dt);
  nlohmann::json header = {{"__metadata__", {{"format", "pt"}}}};
  size_t offset = 0;
  for (const auto& [name, shape] : shapes) {
    size_t n = 1;
    for (auto s : shape) n *= static_cast<size_t>(s);
    header[name] = {{"dtype", io::dtype_name(dt)}, {"shape", shape}, {"data_offsets", {offset, offset + n * esize}}};
    offset += n * esize;
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h.push_back(' ');
  const fs::path file = dir / "model.safetensors", tmp = dir / "model.safetensors.tmp";
  std::ofstream out(tmp, std::ios::binary);
  GILL_CHECK(out.good(), ErrorCode::kIo, tmp.string(), ": cannot write");
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(h.size()) >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));

  const int64_t chunk = int64_t(1) << 24;
  auto buf = torch::empty({chunk}, torch::kFloat32);
  const float a = 0.02f * std::sqrt(3.0f);  // U(-a, a) has std 0.02
  uint64_t stream = seed * 1000003ull;
  for (const auto& [name, shape] : shapes) {
    ++stream;
    int64_t n = 1;
    for (auto s : shape) n *= s;
    const bool is_norm_weight = shape.size() == 1 && name.find("layer_norm.weight") != std::string::npos;
    const bool is_bias = shape.size() == 1 && !is_norm_weight;
    for (int64_t o = 0; o < n; o += chunk) {
      const int64_t c = std::min(chunk, n - o);
      fill_uniform(buf.data_ptr<float>(), c, stream, o, is_norm_weight ? 1.0f : 0.0f,
                   is_norm_weight ? 0.1f : is_bias ? 0.01f : a);
      auto conv = buf.narrow(0, 0, c).to(dtype).contiguous();
      out.write(static_cast<const char*>(conv.data_ptr()), static_cast<std::streamsize>(c * esize));
    }
  }
  out.close();
  GILL_CHECK(out.good(), ErrorCode::kIo, tmp.string(), ": write failed (disk full?)");
  fs::rename(tmp, file);
}

models::OPTConfig tiny_opt_config() {
  models::OPTConfig c;
  c.vocab_size = 416;  // 409 tokenizer entries padded to a multiple of 8 (as 50272 = 50265 + 7)
  c.hidden_size = 64;
  c.ffn_dim = 128;
  c.num_attention_heads = 4;
  c.num_hidden_layers = 2;
  c.max_position_embeddings = 128;
  c.word_embed_proj_dim = 64;
  return c;
}

void write_tiny_opt(const fs::path& dir, uint64_t seed) {
  write_random_opt(dir, tiny_opt_config(), torch::kFloat32, seed);
  const auto c = tiny_opt_config();
  write_json(dir / "generation_config.json", {{"_from_model_config", true},
                                              {"bos_token_id", c.bos_token_id},
                                              {"eos_token_id", c.eos_token_id},
                                              {"pad_token_id", c.pad_token_id},
                                              {"transformers_version", "4.30.2"}},
             2);
  // A real byte-level BPE vocabulary trained on English text (409 entries, as the fixtures: [IMG0..7] follow).
  tokenizer::write_tiny_opt_tokenizer(dir, 409);
}

}  // namespace gill::tiny
