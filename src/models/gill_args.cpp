#include "models/gill_args.h"

#include <fstream>

#include "util/error.h"
#include "util/json.h"

namespace gill::models {

using detail::str_cat;

// ---------------------------------------------------------------------------------------------- GILLArgs

namespace {

// model_args.json's messages (the tests pin them); every field is required.
std::string args_field_message(const util::FieldError& e) {
  if (e.problem == util::FieldError::kMissing) return str_cat(e.where, ": missing field '", e.key, "'");
  return str_cat(e.where, ": field '", e.key, "' has the wrong type (", e.value->dump(), ")");
}

template <typename T>
T args_field(const nlohmann::json& j, const char* key, const std::string& where) {
  return util::require_field<T>(j, key, where, args_field_message);
}

}  // namespace

GILLArgs GILLArgs::from_json(const nlohmann::json& j, const std::string& where) {
  GILL_CHECK(j.is_object(), ErrorCode::kFormat, where, ": expected a JSON object");
  GILLArgs a;
  a.opt_version = args_field<std::string>(j, "opt_version", where);
  a.freeze_lm = args_field<bool>(j, "freeze_lm", where);
  a.visual_encoder = args_field<std::string>(j, "visual_encoder", where);
  a.freeze_vm = args_field<bool>(j, "freeze_vm", where);
  a.n_visual_tokens = args_field<int64_t>(j, "n_visual_tokens", where);
  a.ret_emb_dim = args_field<int64_t>(j, "ret_emb_dim", where);
  a.gen_emb_dim = args_field<int64_t>(j, "gen_emb_dim", where);
  a.text_emb_layers = args_field<std::vector<int64_t>>(j, "text_emb_layers", where);
  a.text_fc_mode = args_field<std::string>(j, "text_fc_mode", where);
  a.ret_text_fc_mode = args_field<std::string>(j, "ret_text_fc_mode", where);
  a.num_tokens = args_field<int64_t>(j, "num_tokens", where);
  a.num_clip_tokens = args_field<int64_t>(j, "num_clip_tokens", where);
  a.share_ret_gen = args_field<bool>(j, "share_ret_gen", where);
  a.norm_image_embed = args_field<std::string>(j, "norm_image_embed", where);
  a.retrieval_token_idx = args_field<std::vector<int64_t>>(j, "retrieval_token_idx", where);
  a.gen_token_idx = args_field<std::vector<int64_t>>(j, "gen_token_idx", where);

  GILL_CHECK(a.text_fc_mode == "gill_mapper", ErrorCode::kUnsupported, where, ": text_fc_mode '", a.text_fc_mode,
             "' is not supported (only 'gill_mapper')");
  GILL_CHECK(a.ret_text_fc_mode == "linear", ErrorCode::kUnsupported, where, ": ret_text_fc_mode '", a.ret_text_fc_mode,
             "' is not supported (only 'linear')");
  GILL_CHECK(a.text_emb_layers == std::vector<int64_t>{-1}, ErrorCode::kUnsupported, where,
             ": text_emb_layers must be [-1] (the reference's only configuration)");
  GILL_CHECK(a.share_ret_gen, ErrorCode::kUnsupported, where,
             ": share_ret_gen must be true (the reference's load_gill asserts it)");
  GILL_CHECK(
      a.num_tokens > 0 && a.n_visual_tokens > 0 && a.ret_emb_dim > 0 && a.gen_emb_dim > 0 && a.num_clip_tokens > 0,
      ErrorCode::kFormat, where, ": sizes must be positive");
  GILL_CHECK(static_cast<int64_t>(a.retrieval_token_idx.size()) == a.num_tokens, ErrorCode::kFormat, where,
             ": retrieval_token_idx has ", a.retrieval_token_idx.size(), " entries but num_tokens is ", a.num_tokens);
  GILL_CHECK(a.gen_token_idx == a.retrieval_token_idx, ErrorCode::kFormat, where,
             ": gen_token_idx must equal retrieval_token_idx (share_ret_gen)");
  return a;
}

GILLArgs GILLArgs::from_file(const std::filesystem::path& path) {
  return from_json(util::read_json_file(path, str_cat(path.string(), ": file not found")), path.string());
}

nlohmann::json GILLArgs::to_json() const {
  return {{"opt_version", opt_version},
          {"freeze_lm", freeze_lm},
          {"visual_encoder", visual_encoder},
          {"freeze_vm", freeze_vm},
          {"n_visual_tokens", n_visual_tokens},
          {"ret_emb_dim", ret_emb_dim},
          {"gen_emb_dim", gen_emb_dim},
          {"text_emb_layers", text_emb_layers},
          {"text_fc_mode", text_fc_mode},
          {"ret_text_fc_mode", ret_text_fc_mode},
          {"num_tokens", num_tokens},
          {"num_clip_tokens", num_clip_tokens},
          {"share_ret_gen", share_ret_gen},
          {"norm_image_embed", norm_image_embed},
          {"retrieval_token_idx", retrieval_token_idx},
          {"gen_token_idx", gen_token_idx}};
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
  GILL_CHECK(ve[0] % d.lm_hidden == 0, ErrorCode::kShapeMismatch, src.description(), ": visual_embeddings has ", ve[0],
             " outputs, not a multiple of the LM width ", d.lm_hidden);
  d.n_visual_tokens = ve[0] / d.lm_hidden;

  auto agree = [&](const char* field_name, int64_t from_args, int64_t from_ckpt, const std::string& tensor) {
    GILL_CHECK(from_args == from_ckpt, ErrorCode::kShapeMismatch, "model_args.json says ", field_name, " = ", from_args,
               " but ", src.description(), " has ", from_ckpt, " (tensor '", prefix + tensor, "' ",
               detail::shape_str(src.info(prefix + tensor).shape), ")");
  };
  agree("ret_emb_dim", args.ret_emb_dim, d.ret_emb_dim, "ret_text_hidden_fcs.0.model.weight");
  agree("gen_emb_dim", args.gen_emb_dim, d.gen_emb_dim, g + "model.weight");
  agree("num_clip_tokens", args.num_clip_tokens, d.n_queries, g + "query_embs");
  agree("n_visual_tokens", args.n_visual_tokens, d.n_visual_tokens, "visual_embeddings.weight");
  agree("num_tokens", args.num_tokens, d.num_tokens, "input_embeddings.weight");
  return d;
}

}  // namespace gill::models
