// Ref: kohjingyu/gill @4600b71 gill/layers.py (TextFcLayer), gill/models.py; torch 1.13.1 nn.Transformer,
// nn.MultiheadAttention (F.multi_head_attention_forward, _scaled_dot_product_attention).
#include "models/gill_mapper.h"

#include <cmath>
#include <fstream>

#include "util/error.h"
#include "util/json.h"

namespace gill::models {

using detail::str_cat;

// ---------------------------------------------------------------------------------------------- GILLArgs

namespace {

template <typename T>
T field(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) detail::fail(ErrorCode::kFormat, str_cat(where, ": missing field '", key, "'"));
  try {
    return util::json_get<T>(j.at(key));
  } catch (const nlohmann::json::exception&) {
    detail::fail(ErrorCode::kFormat, str_cat(where, ": field '", key, "' has the wrong type (", j.at(key).dump(), ")"));
  }
}

}  // namespace

GILLArgs GILLArgs::from_json(const nlohmann::json& j, const std::string& where) {
  GILL_CHECK(j.is_object(), ErrorCode::kFormat, where, ": expected a JSON object");
  GILLArgs a;
  a.opt_version = field<std::string>(j, "opt_version", where);
  a.freeze_lm = field<bool>(j, "freeze_lm", where);
  a.visual_encoder = field<std::string>(j, "visual_encoder", where);
  a.freeze_vm = field<bool>(j, "freeze_vm", where);
  a.n_visual_tokens = field<int64_t>(j, "n_visual_tokens", where);
  a.ret_emb_dim = field<int64_t>(j, "ret_emb_dim", where);
  a.gen_emb_dim = field<int64_t>(j, "gen_emb_dim", where);
  a.text_emb_layers = field<std::vector<int64_t>>(j, "text_emb_layers", where);
  a.text_fc_mode = field<std::string>(j, "text_fc_mode", where);
  a.ret_text_fc_mode = field<std::string>(j, "ret_text_fc_mode", where);
  a.num_tokens = field<int64_t>(j, "num_tokens", where);
  a.num_clip_tokens = field<int64_t>(j, "num_clip_tokens", where);
  a.share_ret_gen = field<bool>(j, "share_ret_gen", where);
  a.norm_image_embed = field<std::string>(j, "norm_image_embed", where);
  a.retrieval_token_idx = field<std::vector<int64_t>>(j, "retrieval_token_idx", where);
  a.gen_token_idx = field<std::vector<int64_t>>(j, "gen_token_idx", where);

  GILL_CHECK(a.text_fc_mode == "gill_mapper", ErrorCode::kUnsupported, where, ": text_fc_mode '", a.text_fc_mode,
             "' is not supported (only 'gill_mapper')");
  GILL_CHECK(a.ret_text_fc_mode == "linear", ErrorCode::kUnsupported, where, ": ret_text_fc_mode '",
             a.ret_text_fc_mode, "' is not supported (only 'linear')");
  GILL_CHECK(a.text_emb_layers == std::vector<int64_t>{-1}, ErrorCode::kUnsupported, where,
             ": text_emb_layers must be [-1] (the reference's only configuration)");
  GILL_CHECK(a.share_ret_gen, ErrorCode::kUnsupported, where,
             ": share_ret_gen must be true (the reference's load_gill asserts it)");
  GILL_CHECK(a.num_tokens > 0 && a.n_visual_tokens > 0 && a.ret_emb_dim > 0 && a.gen_emb_dim > 0 &&
                 a.num_clip_tokens > 0,
             ErrorCode::kFormat, where, ": sizes must be positive");
  GILL_CHECK(static_cast<int64_t>(a.retrieval_token_idx.size()) == a.num_tokens, ErrorCode::kFormat, where,
             ": retrieval_token_idx has ", a.retrieval_token_idx.size(), " entries but num_tokens is ", a.num_tokens);
  GILL_CHECK(a.gen_token_idx == a.retrieval_token_idx, ErrorCode::kFormat, where,
             ": gen_token_idx must equal retrieval_token_idx (share_ret_gen)");
  return a;
}

GILLArgs GILLArgs::from_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  GILL_CHECK(in.good(), ErrorCode::kNotFound, path.string(), ": file not found");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    detail::fail(ErrorCode::kFormat, str_cat(path.string(), ": invalid JSON: ", e.what()));
  }
  return from_json(j, path.string());
}

nlohmann::json GILLArgs::to_json() const {
  return {{"opt_version", opt_version},   {"freeze_lm", freeze_lm},
          {"visual_encoder", visual_encoder}, {"freeze_vm", freeze_vm},
          {"n_visual_tokens", n_visual_tokens}, {"ret_emb_dim", ret_emb_dim},
          {"gen_emb_dim", gen_emb_dim},   {"text_emb_layers", text_emb_layers},
          {"text_fc_mode", text_fc_mode}, {"ret_text_fc_mode", ret_text_fc_mode},
          {"num_tokens", num_tokens},     {"num_clip_tokens", num_clip_tokens},
          {"share_ret_gen", share_ret_gen}, {"norm_image_embed", norm_image_embed},
          {"retrieval_token_idx", retrieval_token_idx}, {"gen_token_idx", gen_token_idx}};
}

// ---------------------------------------------------------------------------------------------- GILLDims

GILLDims GILLDims::from_checkpoint(const io::TensorSource& src, const std::string& prefix, const GILLArgs& args) {
  auto shape = [&](const std::string& name, size_t rank) {
    const auto& info = src.info(prefix + name);
    GILL_CHECK(info.shape.size() == rank, ErrorCode::kShapeMismatch, src.description(), ": tensor '", prefix + name,
               "' has shape ", detail::shape_str(info.shape), ", expected rank ", rank);
    return info.shape;
  };
  const std::string g = "gen_text_hidden_fcs.0.";
  GILLDims d;
  const auto fc = shape(g + "fc.weight", 2);  // [mapper, lm_hidden]
  d.mapper_dim = fc[0];
  d.lm_hidden = fc[1];
  d.mapper_ffn = shape(g + "tfm.encoder.layers.0.linear1.weight", 2)[0];
  const auto q = shape(g + "query_embs", 3);  // [1, Q, mapper]
  d.n_queries = q[1];
  d.gen_emb_dim = shape(g + "model.weight", 2)[0];
  const auto ve = shape("visual_embeddings.weight", 2);  // [n_vis * lm_hidden, clip]
  d.clip_hidden = ve[1];
  d.ret_emb_dim = shape("ret_text_hidden_fcs.0.model.weight", 2)[0];
  d.num_tokens = shape("input_embeddings.weight", 2)[0];
  auto count = [&](const std::string& stack) {
    int64_t n = 0;
    while (src.contains(str_cat(prefix, g, "tfm.", stack, ".layers.", n, ".norm1.weight"))) ++n;
    return n;
  };
  d.n_encoder_layers = count("encoder");
  d.n_decoder_layers = count("decoder");
  GILL_CHECK(d.n_encoder_layers > 0 && d.n_decoder_layers > 0, ErrorCode::kFormat, src.description(),
             ": no mapper transformer layers under '", prefix, g, "tfm.'");
  GILL_CHECK(d.mapper_dim % d.mapper_heads == 0, ErrorCode::kShapeMismatch, src.description(), ": mapper width ",
             d.mapper_dim, " is not divisible by ", d.mapper_heads, " heads");
  GILL_CHECK(ve[0] % d.lm_hidden == 0, ErrorCode::kShapeMismatch, src.description(),
             ": visual_embeddings has ", ve[0], " outputs, not a multiple of the LM width ", d.lm_hidden);
  d.n_visual_tokens = ve[0] / d.lm_hidden;

  auto agree = [&](const char* field_name, int64_t from_args, int64_t from_ckpt, const std::string& tensor) {
    GILL_CHECK(from_args == from_ckpt, ErrorCode::kShapeMismatch, "model_args.json says ", field_name, " = ",
               from_args, " but ", src.description(), " has ", from_ckpt, " (tensor '", prefix + tensor, "' ",
               detail::shape_str(src.info(prefix + tensor).shape), ")");
  };
  agree("ret_emb_dim", args.ret_emb_dim, d.ret_emb_dim, "ret_text_hidden_fcs.0.model.weight");
  agree("gen_emb_dim", args.gen_emb_dim, d.gen_emb_dim, g + "model.weight");
  agree("num_clip_tokens", args.num_clip_tokens, d.n_queries, g + "query_embs");
  agree("n_visual_tokens", args.n_visual_tokens, d.n_visual_tokens, "visual_embeddings.weight");
  agree("num_tokens", args.num_tokens, d.num_tokens, "input_embeddings.weight");
  return d;
}

// ---------------------------------------------------------------------------------------------- modules

MultiheadAttentionImpl::MultiheadAttentionImpl(int64_t dim_, int64_t n_heads_, const ModuleOptions& opt)
    : dim(dim_), n_heads(n_heads_) {
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * dim, dim}, opt.tensor()), false);
  in_proj_bias = register_parameter("in_proj_bias", torch::empty({3 * dim}, opt.tensor()), false);
  out_proj = register_module("out_proj", Linear(dim, dim, true, opt));
}

torch::Tensor MultiheadAttentionImpl::forward(const torch::Tensor& q_in, const torch::Tensor& kv_in) {
  const int64_t B = q_in.size(0), Tq = q_in.size(1), Tk = kv_in.size(1), hd = dim / n_heads;
  auto w = in_proj_weight.chunk(3, 0);
  auto b = in_proj_bias.chunk(3, 0);
  auto q = torch::nn::functional::linear(q_in, w[0], b[0]);  // [B, Tq, E]
  auto k = torch::nn::functional::linear(kv_in, w[1], b[1]);  // [B, Tk, E]
  auto v = torch::nn::functional::linear(kv_in, w[2], b[2]);
  q = q.view({B, Tq, n_heads, hd}).transpose(1, 2);  // [B, H, Tq, hd]
  k = k.view({B, Tk, n_heads, hd}).transpose(1, 2);
  v = v.view({B, Tk, n_heads, hd}).transpose(1, 2);
  // torch 1.13 _scaled_dot_product_attention: q / sqrt(head_dim), then q k^T, softmax, @ v.
  q = q / std::sqrt(static_cast<double>(hd));
  auto attn = torch::softmax(torch::matmul(q, k.transpose(-2, -1)), -1);  // [B, H, Tq, Tk]
  auto o = torch::matmul(attn, v).transpose(1, 2).reshape({B, Tq, dim});  // [B, Tq, E]
  return out_proj(o);
}

TransformerEncoderLayerImpl::TransformerEncoderLayerImpl(const GILLDims& d, const ModuleOptions& opt) {
  self_attn = register_module("self_attn", MultiheadAttention(d.mapper_dim, d.mapper_heads, opt));
  linear1 = register_module("linear1", Linear(d.mapper_dim, d.mapper_ffn, true, opt));
  linear2 = register_module("linear2", Linear(d.mapper_ffn, d.mapper_dim, true, opt));
  norm1 = register_module("norm1", LayerNorm(d.mapper_dim, 1e-5, true, opt));
  norm2 = register_module("norm2", LayerNorm(d.mapper_dim, 1e-5, true, opt));
}

torch::Tensor TransformerEncoderLayerImpl::forward(torch::Tensor h) {
  auto x = norm1(h);
  h = h + self_attn(x, x);
  h = h + linear2(torch::relu(linear1(norm2(h))));
  return h;
}

TransformerDecoderLayerImpl::TransformerDecoderLayerImpl(const GILLDims& d, const ModuleOptions& opt) {
  self_attn = register_module("self_attn", MultiheadAttention(d.mapper_dim, d.mapper_heads, opt));
  multihead_attn = register_module("multihead_attn", MultiheadAttention(d.mapper_dim, d.mapper_heads, opt));
  linear1 = register_module("linear1", Linear(d.mapper_dim, d.mapper_ffn, true, opt));
  linear2 = register_module("linear2", Linear(d.mapper_ffn, d.mapper_dim, true, opt));
  norm1 = register_module("norm1", LayerNorm(d.mapper_dim, 1e-5, true, opt));
  norm2 = register_module("norm2", LayerNorm(d.mapper_dim, 1e-5, true, opt));
  norm3 = register_module("norm3", LayerNorm(d.mapper_dim, 1e-5, true, opt));
}

torch::Tensor TransformerDecoderLayerImpl::forward(torch::Tensor h, const torch::Tensor& memory) {
  auto x = norm1(h);
  h = h + self_attn(x, x);
  h = h + multihead_attn(norm2(h), memory);  // keys/values: memory as-is (already encoder.norm-ed)
  h = h + linear2(torch::relu(linear1(norm3(h))));
  return h;
}

TransformerEncoderImpl::TransformerEncoderImpl(const GILLDims& d, const ModuleOptions& opt) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < d.n_encoder_layers; ++i) layers->push_back(TransformerEncoderLayer(d, opt));
  norm = register_module("norm", LayerNorm(d.mapper_dim, 1e-5, true, opt));
}

torch::Tensor TransformerEncoderImpl::forward(torch::Tensor h) {
  for (const auto& layer : *layers) h = layer->as<TransformerEncoderLayer>()->forward(h);
  return norm(h);
}

TransformerDecoderImpl::TransformerDecoderImpl(const GILLDims& d, const ModuleOptions& opt) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < d.n_decoder_layers; ++i) layers->push_back(TransformerDecoderLayer(d, opt));
  norm = register_module("norm", LayerNorm(d.mapper_dim, 1e-5, true, opt));
}

torch::Tensor TransformerDecoderImpl::forward(torch::Tensor h, const torch::Tensor& memory) {
  for (const auto& layer : *layers) h = layer->as<TransformerDecoderLayer>()->forward(h, memory);
  return norm(h);
}

TransformerImpl::TransformerImpl(const GILLDims& d, const ModuleOptions& opt) {
  encoder = register_module("encoder", TransformerEncoder(d, opt));
  decoder = register_module("decoder", TransformerDecoder(d, opt));
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& src, const torch::Tensor& tgt) {
  return decoder(tgt, encoder(src));
}

GILLMapperImpl::GILLMapperImpl(const GILLDims& d, const ModuleOptions& opt) {
  fc = register_module("fc", Linear(d.lm_hidden, d.mapper_dim, true, opt));
  tfm = register_module("tfm", Transformer(d, opt));
  model = register_module("model", Linear(d.mapper_dim, d.gen_emb_dim, true, opt));
  query_embs = register_parameter("query_embs", torch::empty({1, d.n_queries, d.mapper_dim}, opt.tensor()), false);
}

torch::Tensor GILLMapperImpl::forward(const torch::Tensor& hidden, const torch::Tensor& img_embs) {
  auto x = fc(hidden + img_embs);                       // [B, 8, M]
  auto q = query_embs.expand({x.size(0), -1, -1});      // [B, Q, M]
  return model(tfm(x, q));                              // [B, Q, gen_emb_dim]
}

TextFcLinearImpl::TextFcLinearImpl(int64_t in_dim, int64_t out_dim, const ModuleOptions& opt) {
  model = register_module("model", Linear(in_dim, out_dim, true, opt));
}

torch::Tensor TextFcLinearImpl::forward(const torch::Tensor& hidden) {
  return model(hidden).narrow(1, 0, 1);  // [B, 1, out]: num_output_tokens = 1
}

GILLHeadsImpl::GILLHeadsImpl(const GILLDims& d, const ModuleOptions& opt) : dims(d) {
  logit_scale = register_parameter("logit_scale", torch::empty({}, opt.tensor()), false);
  visual_embeddings =
      register_module("visual_embeddings", Linear(d.clip_hidden, d.n_visual_tokens * d.lm_hidden, true, opt));
  visual_fc = register_module("visual_fc", Linear(d.clip_hidden, d.ret_emb_dim, true, opt));
  ret_fc = TextFcLinear(d.lm_hidden, d.ret_emb_dim, opt);
  mapper = GILLMapper(d, opt);
  ret_text_hidden_fcs = register_module("ret_text_hidden_fcs", torch::nn::ModuleList(ret_fc));
  gen_text_hidden_fcs = register_module("gen_text_hidden_fcs", torch::nn::ModuleList(mapper));
}

torch::Tensor GILLHeadsImpl::visual_embs(const torch::Tensor& pooled) {
  return visual_embeddings(pooled).view({pooled.size(0), dims.n_visual_tokens, dims.lm_hidden});  // [B, 4, D]
}

torch::Tensor GILLHeadsImpl::visual_retrieval(const torch::Tensor& pooled) { return visual_fc(pooled); }

DecisionHeadImpl::DecisionHeadImpl(int64_t in_dim, const ModuleOptions& opt) {
  linear = register_module("1", Linear(in_dim, 2, true, opt));
}

torch::Tensor DecisionHeadImpl::forward(const torch::Tensor& x) { return linear(x); }

// ---------------------------------------------------------------------------------------------- load tables

namespace {
const std::vector<std::string> kGillPrefixes = {"model.", "module.model.", "state_dict.model.",
                                                "state_dict.module.model."};
}

io::LoadSpec gill_heads_load_spec() {
  io::LoadSpec spec;
  spec.prefixes = kGillPrefixes;
  // The 8 trained [IMG] rows: read separately and written into the LM's embedding table (gill-spec §6.2).
  spec.allowed_extra = {"(state_dict\\.)?(module\\.)?model\\.input_embeddings\\.weight"};
  return spec;
}

io::LoadSpec decision_load_spec() {
  io::LoadSpec spec;
  spec.prefixes = {"", "state_dict.", "module."};
  return spec;
}

std::string find_gill_prefix(const io::TensorSource& src) {
  for (const auto& p : kGillPrefixes)
    if (src.contains(p + "logit_scale")) return p;
  detail::fail(ErrorCode::kNotFound, str_cat(src.description(), ": not a GILL checkpoint (no 'model.logit_scale'",
                                             " under any of the prefixes model., module.model., state_dict.model.)"));
}

}  // namespace gill::models
