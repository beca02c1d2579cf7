// GILL's configuration: model_args.json (GILLArgs) and the module widths read from the checkpoint (GILLDims).
// Ref: kohjingyu/gill @4600b71 gill/models.py (GILLArgs), main.py (the args the training writes).
#pragma once
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/tensor_source.h"

namespace gill::models {

// checkpoints/gill_opt/model_args.json: every field the reference writes (gill-spec §2.1).
struct GILLArgs {
  std::string opt_version;                   // LLM + tokenizer id, e.g. "facebook/opt-6.7b"
  bool freeze_lm = true;                     // training only
  std::string visual_encoder;                // CLIP id, e.g. "openai/clip-vit-large-patch14"
  bool freeze_vm = true;                     // training only
  int64_t n_visual_tokens = 4;               // visual_embeddings output = n_visual_tokens x LM hidden
  int64_t ret_emb_dim = 256;                 // retrieval space width
  int64_t gen_emb_dim = 768;                 // mapper output width (SD text width)
  std::vector<int64_t> text_emb_layers{-1};  // only [-1] (post final LayerNorm) is supported
  std::string text_fc_mode = "gill_mapper";  // only gill_mapper is supported
  std::string ret_text_fc_mode = "linear";   // only linear is supported
  int64_t num_tokens = 8;                    // number of [IMG] tokens
  int64_t num_clip_tokens = 77;              // mapper queries = SD sequence length
  bool share_ret_gen = true;                 // must be true (asserted by the reference's load_gill)
  std::string norm_image_embed = "none";     // unused at inference
  std::vector<int64_t> retrieval_token_idx;  // ids of [IMG0..7]; checked against the tokenizer
  std::vector<int64_t> gen_token_idx;

  // Reads every field; missing or mistyped fields and unsupported modes are kFormat / kUnsupported errors that
  // name `where` (the file) and the field.
  static GILLArgs from_json(const nlohmann::json& j, const std::string& where);
  static GILLArgs from_file(const std::filesystem::path& path);
  nlohmann::json to_json() const;
};

// Widths and depths of GILL's modules. The reference hard-codes three of them (mapper width 512, decision input
// 4096, SD width 768); here every one comes from the checkpoint's tensor shapes (from_checkpoint) so the real and
// the tiny models both load.
struct GILLDims {
  int64_t lm_hidden = 4096;    // OPT hidden size (ret fc / mapper fc input)
  int64_t clip_hidden = 1024;  // CLIP pooled width (visual_embeddings / visual_fc input)
  int64_t n_visual_tokens = 4;
  int64_t ret_emb_dim = 256;
  int64_t mapper_dim = 512;   // d_model of the mapper transformer
  int64_t mapper_ffn = 2048;  // dim_feedforward
  int64_t mapper_heads = 4;   // nhead: not visible in shapes; the reference's literal
  int64_t n_encoder_layers = 4;
  int64_t n_decoder_layers = 4;
  int64_t n_queries = 77;
  int64_t gen_emb_dim = 768;
  int64_t num_tokens = 8;

  // Reads the shapes from the GILL checkpoint (`prefix` = the key prefix, e.g. "model.") and checks them
  // against model_args.json: a disagreement is kShapeMismatch naming the field, both values and the file.
  static GILLDims from_checkpoint(const io::TensorSource& src, const std::string& prefix, const GILLArgs& args);
};

}  // namespace gill::models
