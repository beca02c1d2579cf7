// The tiny model kit: `gill make-tiny DIR` writes a complete tiny GILL in the DESIGN.md weights layout, random
// weights (deterministic for a seed), real key names and file formats. Each component has its own writer
// `write_tiny_<component>(root, seed)`; add yours to tiny_components() in make_tiny.cpp.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace gill::tiny {

// Widths shared by the tiny components (they must agree with each other). Same values as
// ../shared/fixtures/models (see oracle_gill_constants.json there).
struct TinyDims {
  int64_t lm_hidden = 64;           // OPT hidden size (the reference's 4096)
  int64_t lm_vocab_base = 409;      // tokenizer entries before [IMG0..7]
  int64_t clip_vision_hidden = 48;  // CLIP vision hidden size (the reference's 1024)
  int64_t n_visual_tokens = 4;
  int64_t num_img_tokens = 8;       // [IMG0..7]
  int64_t ret_emb_dim = 24;         // the reference's 256
  int64_t gen_emb_dim = 32;         // SD text width (the reference's 768)
  int64_t mapper_width = 40;        // GILLMapper width (the reference's 512)
  int64_t mapper_layers = 4;        // encoder and decoder layers
  int64_t num_clip_tokens = 77;
  int64_t retrieval_images = 6;
};
const TinyDims& tiny_dims();

using TinyWriter = void (*)(const std::filesystem::path& root, uint64_t seed);
struct TinyComponent {
  const char* name;  // "gill_checkpoint", ...
  TinyWriter write;
};
// Every component make_tiny writes, in order.
const std::vector<TinyComponent>& tiny_components();

// Writes every component under `root` (created when missing). Files are written atomically; a component's seed
// is derived from `seed` and its name so components do not share random streams.
void make_tiny(const std::filesystem::path& root, uint64_t seed = 0);

// checkpoints/gill_opt/: model_args.json, pretrained_ckpt.pth.tar ({'state_dict': {model.*}} bf16, as
// scripts/prune_model_ckpt.py leaves it), decision_model.pth.tar ({'state_dict': {'1.weight','1.bias'}} fp32),
// cc3m_embeddings_urls.npy (the reference's {'paths','embeddings'} pickle).
void write_tiny_gill_checkpoint(const std::filesystem::path& root, uint64_t seed);

// retrieval_images/00000{0..3}.png and checkpoints/gill_opt/index.safetensors over them (gill's index format,
// paths relative to the index folder; it takes precedence over the cc3m pickle). Needs the CLIP and GILL
// components written first.
void write_tiny_retrieval_index(const std::filesystem::path& root, uint64_t seed);

}  // namespace gill::tiny
