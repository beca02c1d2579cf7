// GILL's own modules: the GILLMapper (TextFcLayer in `gill_mapper` mode), the linear retrieval head, the visual
// maps, logit_scale and the decision head. Registered under the checkpoint names of pretrained_ckpt.pth.tar
// (without its `model.` prefix) and decision_model.pth.tar.
// Ref: kohjingyu/gill @4600b71 gill/layers.py (TextFcLayer), gill/models.py (GILLModel.__init__, GILL.__init__);
//      torch 1.13.1 torch/nn/modules/transformer.py, torch/nn/functional.py (multi_head_attention_forward).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/loader.h"
#include "io/tensor_source.h"
#include "models/layers.h"

namespace gill::models {

// checkpoints/gill_opt/model_args.json: every field the reference writes (gill-spec §2.1).
struct GILLArgs {
  std::string opt_version;       // LLM + tokenizer id, e.g. "facebook/opt-6.7b"
  bool freeze_lm = true;         // training only
  std::string visual_encoder;    // CLIP id, e.g. "openai/clip-vit-large-patch14"
  bool freeze_vm = true;         // training only
  int64_t n_visual_tokens = 4;   // visual_embeddings output = n_visual_tokens x LM hidden
  int64_t ret_emb_dim = 256;     // retrieval space width
  int64_t gen_emb_dim = 768;     // mapper output width (SD text width)
  std::vector<int64_t> text_emb_layers{-1};  // only [-1] (post final LayerNorm) is supported
  std::string text_fc_mode = "gill_mapper";  // only gill_mapper is supported
  std::string ret_text_fc_mode = "linear";   // only linear is supported
  int64_t num_tokens = 8;        // number of [IMG] tokens
  int64_t num_clip_tokens = 77;  // mapper queries = SD sequence length
  bool share_ret_gen = true;     // must be true (asserted by the reference's load_gill)
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
  int64_t lm_hidden = 4096;      // OPT hidden size (ret fc / mapper fc input)
  int64_t clip_hidden = 1024;    // CLIP pooled width (visual_embeddings / visual_fc input)
  int64_t n_visual_tokens = 4;
  int64_t ret_emb_dim = 256;
  int64_t mapper_dim = 512;      // d_model of the mapper transformer
  int64_t mapper_ffn = 2048;     // dim_feedforward
  int64_t mapper_heads = 4;      // nhead: not visible in shapes; the reference's literal
  int64_t n_encoder_layers = 4;
  int64_t n_decoder_layers = 4;
  int64_t n_queries = 77;
  int64_t gen_emb_dim = 768;
  int64_t num_tokens = 8;

  // Reads the shapes from the GILL checkpoint (`prefix` = the key prefix, e.g. "model.") and checks them
  // against model_args.json: a disagreement is kShapeMismatch naming the field, both values and the file.
  static GILLDims from_checkpoint(const io::TensorSource& src, const std::string& prefix, const GILLArgs& args);
};

// torch.nn.MultiheadAttention (batch_first, biases, no masks). ckpt: in_proj_weight [3E, E], in_proj_bias [3E],
// out_proj.{weight,bias}.
class MultiheadAttentionImpl : public torch::nn::Module {
 public:
  MultiheadAttentionImpl(int64_t dim, int64_t n_heads, const ModuleOptions& opt);
  // q_in [B, Tq, E], kv_in [B, Tk, E] -> [B, Tq, E]
  torch::Tensor forward(const torch::Tensor& q_in, const torch::Tensor& kv_in);
  torch::Tensor in_proj_weight, in_proj_bias;
  Linear out_proj{nullptr};
  int64_t dim, n_heads;
};
TORCH_MODULE(MultiheadAttention);

// nn.TransformerEncoderLayer(norm_first=True, activation=relu, dropout=0).
class TransformerEncoderLayerImpl : public torch::nn::Module {
 public:
  TransformerEncoderLayerImpl(const GILLDims& d, const ModuleOptions& opt);
  torch::Tensor forward(torch::Tensor h);
  MultiheadAttention self_attn{nullptr};
  Linear linear1{nullptr}, linear2{nullptr};
  LayerNorm norm1{nullptr}, norm2{nullptr};
};
TORCH_MODULE(TransformerEncoderLayer);

// nn.TransformerDecoderLayer(norm_first=True, activation=relu, dropout=0); no masks (the reference passes none,
// so the 77 queries attend to each other without a causal mask).
class TransformerDecoderLayerImpl : public torch::nn::Module {
 public:
  TransformerDecoderLayerImpl(const GILLDims& d, const ModuleOptions& opt);
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& memory);
  MultiheadAttention self_attn{nullptr}, multihead_attn{nullptr};
  Linear linear1{nullptr}, linear2{nullptr};
  LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
};
TORCH_MODULE(TransformerDecoderLayer);

// nn.TransformerEncoder / nn.TransformerDecoder: the layer stack plus the final `norm` that nn.Transformer always
// builds and applies (also with norm_first).
class TransformerEncoderImpl : public torch::nn::Module {
 public:
  TransformerEncoderImpl(const GILLDims& d, const ModuleOptions& opt);
  torch::Tensor forward(torch::Tensor h);
  torch::nn::ModuleList layers{nullptr};  // of TransformerEncoderLayer
  LayerNorm norm{nullptr};
};
TORCH_MODULE(TransformerEncoder);

class TransformerDecoderImpl : public torch::nn::Module {
 public:
  TransformerDecoderImpl(const GILLDims& d, const ModuleOptions& opt);
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& memory);
  torch::nn::ModuleList layers{nullptr};  // of TransformerDecoderLayer
  LayerNorm norm{nullptr};
};
TORCH_MODULE(TransformerDecoder);

// nn.Transformer(src, tgt) with no masks: decoder(tgt, encoder(src)).
class TransformerImpl : public torch::nn::Module {
 public:
  TransformerImpl(const GILLDims& d, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& src, const torch::Tensor& tgt);  // -> [B, Tq, E]
  TransformerEncoder encoder{nullptr};
  TransformerDecoder decoder{nullptr};
};
TORCH_MODULE(Transformer);

// TextFcLayer, mode gill_mapper: x = fc(hidden + img_input_embs); y = tfm(x, query_embs); out = model(y).
class GILLMapperImpl : public torch::nn::Module {
 public:
  GILLMapperImpl(const GILLDims& d, const ModuleOptions& opt);
  // hidden [B, 8, D] (final hidden states at the [IMG] positions), img_embs [B, 8, D] (their input embeddings)
  // -> [B, n_queries, gen_emb_dim]
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& img_embs);
  Linear fc{nullptr};
  Transformer tfm{nullptr};
  Linear model{nullptr};      // ckpt: model (the output Linear)
  torch::Tensor query_embs;   // [1, n_queries, mapper_dim]
};
TORCH_MODULE(GILLMapper);

// TextFcLayer, mode linear: model(hidden)[:, :1]. The input embeddings are NOT added in this mode.
class TextFcLinearImpl : public torch::nn::Module {
 public:
  TextFcLinearImpl(int64_t in_dim, int64_t out_dim, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& hidden);  // [B, 8, D] -> [B, 1, out]
  Linear model{nullptr};
};
TORCH_MODULE(TextFcLinear);

// The trained GILL heads of pretrained_ckpt.pth.tar (keys under `model.`), except input_embeddings.weight (the
// 8 [IMG] rows), which the pipeline writes into the LM's embedding table.
class GILLHeadsImpl : public torch::nn::Module {
 public:
  GILLHeadsImpl(const GILLDims& d, const ModuleOptions& opt);
  // CLIP pooled [B, C] -> [B, n_visual_tokens, D]  (mode 'captioning')
  torch::Tensor visual_embs(const torch::Tensor& pooled);
  // CLIP pooled [B, C] -> [B, ret_emb_dim], NOT normalised (mode 'retrieval')
  torch::Tensor visual_retrieval(const torch::Tensor& pooled);

  GILLDims dims;
  torch::Tensor logit_scale;  // [] (log scale; exp() folds into the retrieval matrix)
  Linear visual_embeddings{nullptr}, visual_fc{nullptr};
  torch::nn::ModuleList ret_text_hidden_fcs{nullptr}, gen_text_hidden_fcs{nullptr};  // registration (ckpt: .0)
  TextFcLinear ret_fc{nullptr};  // = ret_text_hidden_fcs[0]
  GILLMapper mapper{nullptr};    // = gen_text_hidden_fcs[0]
};
TORCH_MODULE(GILLHeads);

// decision_model.pth.tar: nn.Sequential(Dropout(0.5), Linear(D, 2)); class 0 = generate, 1 = retrieve.
class DecisionHeadImpl : public torch::nn::Module {
 public:
  DecisionHeadImpl(int64_t in_dim, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x);  // [B, D] -> [B, 2] (dropout is the identity at inference)
  Linear linear{nullptr};  // ckpt: 1
};
TORCH_MODULE(DecisionHead);

// The load tables (gill-spec §6.2, §6.3). Prefixes cover the key layouts the readers produce (plain
// `model.`, DDP `module.model.`, and a pickle reader that keeps the top-level `state_dict.`).
io::LoadSpec gill_heads_load_spec();
io::LoadSpec decision_load_spec();
// The key prefix under which `src` stores the GILL heads ("model.", "module.model.", ...); kNotFound otherwise.
std::string find_gill_prefix(const io::TensorSource& src);

}  // namespace gill::models
