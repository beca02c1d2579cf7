// Random-weight OPT checkpoints: the tiny kit's LM and the full-size benchmark files.
#pragma once
#include <nlohmann/json.hpp>
#include <cstdint>
#include <filesystem>

#include <torch/torch.h>

#include "models/opt.h"

namespace gill::tiny {

// The tiny kit's OPT: pre-LN, hidden 64, 2 layers, 4 heads, ffn 128, 128 positions, vocabulary = the byte-level
// tokenizer written next to it (4 specials + 256 byte symbols, padded to a multiple of 8).
models::OPTConfig tiny_opt_config();

// Writes a complete OPT folder into `dir` (created): config.json, generation_config.json, model.safetensors
// (fp32, `model.decoder.*` keys, seeded random weights, lm_head tied and not stored), and GPT-2 tokenizer files
// (vocab.json with <s>,<pad>,</s>,<unk> = 0..3 then the 256 byte-level symbols, an empty merges.txt,
// special_tokens_map.json, tokenizer_config.json). Its outputs are noise; the files are real.
void write_tiny_opt(const std::filesystem::path& dir, uint64_t seed);

// Writes config.json + model.safetensors for `config` into `dir` with seeded random weights in `dtype`,
// streaming tensor by tensor (never holds the model in memory: used for the 13 GB OPT-6.7B benchmark file).
// Matrices ~ U(-a, a) with std 0.02, LayerNorm weights 1 + small noise, biases small.
void write_random_opt(const std::filesystem::path& dir, const models::OPTConfig& config, torch::Dtype dtype,
                      uint64_t seed);

// config.json content for `config` (the fields transformers' OPTConfig writes).
nlohmann::json opt_config_json(const models::OPTConfig& config);

}  // namespace gill::tiny
