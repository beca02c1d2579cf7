// OPTForCausalLM. Ref: transformers v4.30.2 src/transformers/models/opt/modeling_opt.py (OPTAttention,
// OPTDecoderLayer, OPTDecoder, OPTLearnedPositionalEmbedding, _make_causal_mask, _expand_mask).
#include "models/opt.h"

#include <ATen/Parallel.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "io/tensor_source.h"
#include "kernels/linear_bf16.h"
#include "util/error.h"
#include "util/json.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

namespace gill::models {

using detail::str_cat;

// ---------------------------------------------------------------------------------------------- OPTConfig

namespace {

// OPTConfig's message (the tests and bad-input cases pin it); the file is named by from_file's context.
std::string opt_field_message(const util::FieldError& e) {
  return str_cat("field '", e.key, "' has the wrong type: ", e.value ? e.value->dump() : "null");
}

const char* const kActivations[] = {"relu", "gelu", "gelu_new", "gelu_pytorch_tanh", "quick_gelu", "silu", "swish"};

}  // namespace

OPTConfig OPTConfig::from_json(const nlohmann::json& j) {
  GILL_CHECK(j.is_object(), ErrorCode::kFormat, "an OPT config must be a JSON object");
  OPTConfig c;
  auto read = [&](const char* key, auto& out) { util::read_field(j, key, out, "", opt_field_message); };
  const std::pair<const char*, int64_t*> ints[] = {{"vocab_size", &c.vocab_size},
                                                   {"hidden_size", &c.hidden_size},
                                                   {"ffn_dim", &c.ffn_dim},
                                                   {"num_attention_heads", &c.num_attention_heads},
                                                   {"num_hidden_layers", &c.num_hidden_layers},
                                                   {"max_position_embeddings", &c.max_position_embeddings},
                                                   {"pad_token_id", &c.pad_token_id},
                                                   {"bos_token_id", &c.bos_token_id},
                                                   {"eos_token_id", &c.eos_token_id}};
  for (const auto& [key, dst] : ints) read(key, *dst);
  c.word_embed_proj_dim = c.hidden_size;
  read("word_embed_proj_dim", c.word_embed_proj_dim);
  const std::pair<const char*, bool*> flags[] = {{"do_layer_norm_before", &c.do_layer_norm_before},
                                                 {"_remove_final_layer_norm", &c.remove_final_layer_norm},
                                                 {"enable_bias", &c.enable_bias},
                                                 {"layer_norm_elementwise_affine", &c.layer_norm_elementwise_affine}};
  for (const auto& [key, dst] : flags) read(key, *dst);
  read("activation_function", c.activation_function);
  read("torch_dtype", c.torch_dtype);

  const std::pair<const char*, int64_t> sizes[] = {
      {"vocab_size", c.vocab_size},           {"hidden_size", c.hidden_size},
      {"ffn_dim", c.ffn_dim},                 {"num_attention_heads", c.num_attention_heads},
      {"num_hidden_layers", c.num_hidden_layers}, {"max_position_embeddings", c.max_position_embeddings},
      {"word_embed_proj_dim", c.word_embed_proj_dim}};
  for (const auto& [name, value] : sizes)
    GILL_CHECK(value > 0, ErrorCode::kInvalidArgument, "'", name, "' must be positive, got ", value);
  GILL_CHECK(c.hidden_size % c.num_attention_heads == 0, ErrorCode::kInvalidArgument, "hidden_size ",
             c.hidden_size, " is not divisible by num_attention_heads ", c.num_attention_heads);
  bool known = false;
  for (const char* a : kActivations) known = known || c.activation_function == a;
  GILL_CHECK(known, ErrorCode::kUnsupported, "unsupported activation_function '", c.activation_function,
             "' (expected relu, gelu, gelu_new, gelu_pytorch_tanh, quick_gelu or silu)");
  return c;
}

OPTConfig OPTConfig::from_file(const std::filesystem::path& path) {
  const nlohmann::json j = util::read_json_file(path);
  return detail::with_context(path.string(), [&] { return from_json(j); });
}

// ---------------------------------------------------------------------------------------------- modules

OPTAttentionImpl::OPTAttentionImpl(const OPTConfig& c, const ModuleOptions& opt)
    : n_heads(c.num_attention_heads), head_dim(c.head_dim()) {
  const int64_t d = c.hidden_size;
  k_proj = register_module("k_proj", Linear(d, d, c.enable_bias, opt));
  v_proj = register_module("v_proj", Linear(d, d, c.enable_bias, opt));
  q_proj = register_module("q_proj", Linear(d, d, c.enable_bias, opt));
  out_proj = register_module("out_proj", Linear(d, d, c.enable_bias, opt));
}

OPTDecoderLayerImpl::OPTDecoderLayerImpl(const OPTConfig& c, const ModuleOptions& opt) {
  const int64_t d = c.hidden_size;
  const bool affine = c.layer_norm_elementwise_affine;
  self_attn = register_module("self_attn", OPTAttention(c, opt));
  self_attn_layer_norm = register_module("self_attn_layer_norm", LayerNorm(d, 1e-5, affine, opt));
  fc1 = register_module("fc1", Linear(d, c.ffn_dim, c.enable_bias, opt));
  fc2 = register_module("fc2", Linear(c.ffn_dim, d, c.enable_bias, opt));
  final_layer_norm = register_module("final_layer_norm", LayerNorm(d, 1e-5, affine, opt));
}

OPTDecoderImpl::OPTDecoderImpl(const OPTConfig& c, const ModuleOptions& opt) {
  embed_tokens = register_module("embed_tokens", Embedding(c.vocab_size, c.word_embed_proj_dim, opt));
  // OPTLearnedPositionalEmbedding: 2 extra rows, positions are offset by 2.
  embed_positions = register_module("embed_positions", Embedding(c.max_position_embeddings + 2, c.hidden_size, opt));
  if (c.has_projections()) {
    project_out = register_module("project_out", Linear(c.hidden_size, c.word_embed_proj_dim, false, opt));
    project_in = register_module("project_in", Linear(c.word_embed_proj_dim, c.hidden_size, false, opt));
  }
  if (c.has_final_layer_norm())
    final_layer_norm =
        register_module("final_layer_norm", LayerNorm(c.hidden_size, 1e-5, c.layer_norm_elementwise_affine, opt));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layer_list.push_back(OPTDecoderLayer(c, opt));
    layers->push_back(layer_list.back());
  }
}

namespace {
// Registers the decoder under "model" -> "decoder" so named_parameters() reads like the HF state dict.
struct OPTModelImpl : torch::nn::Module {
  explicit OPTModelImpl(OPTDecoder d) { decoder = register_module("decoder", std::move(d)); }
  OPTDecoder decoder{nullptr};
};
TORCH_MODULE(OPTModel);

double lowest_of(torch::Dtype d) {
  switch (d) {
    case torch::kFloat16: return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
    case torch::kBFloat16: return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    case torch::kFloat64: return std::numeric_limits<double>::lowest();
    default: return static_cast<double>(std::numeric_limits<float>::lowest());
  }
}
}  // namespace

OPTForCausalLMImpl::OPTForCausalLMImpl(const OPTConfig& config, const ModuleOptions& opt)
    : config_(config), storage_dtype_(opt.dtype), compute_dtype_(opt.dtype), device_(opt.device), gemv_(opt.compute.gemv) {
  decoder_ = OPTDecoder(config, opt);
  register_module("model", OPTModel(decoder_));
}

void OPTForCausalLMImpl::set_compute_dtype(torch::Dtype dtype) {
  GILL_CHECK(torch::isFloatingType(dtype), ErrorCode::kInvalidArgument, "OPT: compute dtype must be floating");
  torch::NoGradGuard no_grad;
  compute_dtype_ = dtype;
  for (auto& p : named_parameters(true)) {
    auto t = p.value();
    if (t.dim() == 1 && t.scalar_type() != dtype) t.set_data(t.to(dtype));
  }
}

void OPTForCausalLMImpl::prefault() {
  const long page = ::sysconf(_SC_PAGESIZE);
  std::vector<torch::Tensor> params = parameters(true);
  at::parallel_for(0, static_cast<int64_t>(params.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto& t = params[i];
      if (!t.device().is_cpu() || t.nbytes() == 0) continue;
      auto addr = reinterpret_cast<uintptr_t>(t.data_ptr());
      const uintptr_t start = addr & ~static_cast<uintptr_t>(page - 1);
      const size_t len = addr + t.nbytes() - start;
      if (::madvise(reinterpret_cast<void*>(start), len, MADV_POPULATE_READ) != 0) {
        volatile const uint8_t* p = static_cast<const uint8_t*>(t.data_ptr());  // older kernels: touch pages
        uint8_t sink = 0;
        for (size_t off = 0; off < t.nbytes(); off += static_cast<size_t>(page)) sink ^= p[off];
        (void)sink;
      }
    }
  });
}

torch::Tensor OPTForCausalLMImpl::embedding_weight() { return decoder_->embed_tokens->weight; }

void OPTForCausalLMImpl::resize_token_embeddings(int64_t n_rows) {
  GILL_CHECK(n_rows > 0, ErrorCode::kInvalidArgument, "resize_token_embeddings: n_rows must be positive, got ", n_rows);
  torch::NoGradGuard no_grad;
  auto& w = decoder_->embed_tokens->weight;
  if (n_rows == w.size(0)) return;
  auto table = torch::zeros({n_rows, w.size(1)}, w.options());  // [n_rows, word_embed_proj_dim]
  const int64_t keep = std::min(n_rows, w.size(0));
  table.narrow(0, 0, keep).copy_(w.narrow(0, 0, keep));
  w.set_data(table);
  config_.vocab_size = n_rows;
}

void OPTForCausalLMImpl::set_token_embeddings(const std::vector<int64_t>& ids, const torch::Tensor& rows) {
  torch::NoGradGuard no_grad;
  auto& table = decoder_->embed_tokens->weight;
  GILL_CHECK(rows.dim() == 2 && rows.size(0) == static_cast<int64_t>(ids.size()) && rows.size(1) == table.size(1),
             ErrorCode::kShapeMismatch, "OPT: ", ids.size(), " embedding rows must be [", ids.size(), ", ",
             table.size(1), "], got ", detail::shape_str(rows.sizes().vec()));
  for (size_t k = 0; k < ids.size(); ++k) {
    GILL_CHECK(ids[k] >= 0 && ids[k] < table.size(0), ErrorCode::kInvalidArgument, "OPT: token id ", ids[k],
               " is outside the embedding table [0, ", table.size(0), ")");
    table[ids[k]].copy_(rows[static_cast<int64_t>(k)].to(table.scalar_type()));
  }
}

// ---------------------------------------------------------------------------------------------- math

torch::Tensor OPTForCausalLMImpl::linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) const {
  // bf16 weights on the CPU: gill's GEMV kernels for few rows, blocked fp32 GEMM (fp32 activations) or oneDNN's
  // bf16 GEMM (bf16 activations) for many.
  if (gill_kernels_ && w.scalar_type() == torch::kBFloat16 && x.device().is_cpu() &&
      (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16))
    return kernels::linear_bf16_weight(x, w, b, kernels::Bf16LinearPath::kAuto, gemv_);
  if (w.scalar_type() == x.scalar_type()) return torch::nn::functional::linear(x, w, b);
  return torch::nn::functional::linear(x, w.to(x.scalar_type()), b.defined() ? b.to(x.scalar_type()) : b);
}

torch::Tensor OPTForCausalLMImpl::linear(const torch::Tensor& x, const Linear& l) const {
  return linear(x, l->weight, l->bias);
}

torch::Tensor OPTForCausalLMImpl::layer_norm(const torch::Tensor& x, const LayerNorm& ln) const {
  // gill's (fp32 normalisation of bf16 activations), or libtorch's own kernel in the activations' dtype, as
  // transformers runs it (the plain-libtorch peer, use_gill_kernels(false)).
  if (gill_kernels_) return ops::layer_norm(ln, x);
  return torch::layer_norm(x, {ln->dim}, ln->weight, ln->bias, ln->eps);
}

torch::Tensor OPTForCausalLMImpl::activation(torch::Tensor x) const {
  const auto& a = config_.activation_function;
  if (a == "relu") return x.relu_();  // x is a fresh fc1 output
  if (a == "gelu") return torch::gelu(x);
  if (a == "gelu_new" || a == "gelu_pytorch_tanh") return torch::gelu(x, "tanh");
  if (a == "quick_gelu") return x * torch::sigmoid(1.702 * x);
  return torch::silu(x);  // silu / swish (validated in from_json)
}

// q scaled after the bias as its own op; scores + mask clamped at finfo.min; softmax upcast only for fp16.
torch::Tensor OPTForCausalLMImpl::attention(OPTAttentionImpl& a, const torch::Tensor& h, const torch::Tensor& mask,
                                            KVCache* cache, size_t layer) const {
  const int64_t B = h.size(0), T = h.size(1);
  const double scaling = std::pow(static_cast<double>(a.head_dim), -0.5);
  auto heads = [&](const torch::Tensor& t) {  // [B, T, D] -> [B, H, T, hd]
    return t.view({B, T, a.n_heads, a.head_dim}).transpose(1, 2);
  };
  auto q = heads(linear(h, a.q_proj) * scaling);
  auto k = heads(linear(h, a.k_proj));
  auto v = heads(linear(h, a.v_proj));
  if (cache) std::tie(k, v) = cache->append(layer, k, v);  // [B, H, S, hd]
  auto w = ops::matmul(q, k.transpose(-1, -2));           // [B, H, T, S]
  if (mask.defined()) w = torch::clamp_min(w + mask, lowest_of(w.scalar_type()));
  auto p = w.scalar_type() == torch::kFloat16 ? torch::softmax(w, -1, torch::kFloat32).to(torch::kFloat16)
                                              : torch::softmax(w, -1);
  auto o = ops::matmul(p, v).transpose(1, 2).reshape({B, T, a.n_heads * a.head_dim});  // [B, T, D]
  return linear(o, a.out_proj);
}

torch::Tensor OPTForCausalLMImpl::decoder_layer(OPTDecoderLayerImpl& l, const torch::Tensor& h0,
                                                const torch::Tensor& mask, KVCache* cache, size_t layer) const {
  const bool pre = config_.do_layer_norm_before;
  auto x = pre ? layer_norm(h0, l.self_attn_layer_norm) : h0;
  auto h = h0 + attention(*l.self_attn, x, mask, cache, layer);
  if (!pre) h = layer_norm(h, l.self_attn_layer_norm);
  x = pre ? layer_norm(h, l.final_layer_norm) : h;
  h = h + linear(activation(linear(x, l.fc1)), l.fc2);
  if (!pre) h = layer_norm(h, l.final_layer_norm);
  return h;
}

torch::Tensor OPTForCausalLMImpl::embed_tokens(const torch::Tensor& ids) {
  c10::InferenceMode guard;
  GILL_CHECK(ids.dim() == 2 && !ids.is_floating_point(), ErrorCode::kInvalidArgument,
             "OPT: token ids must be an integer tensor [B, T], got ", ids.toString(), " ",
             detail::shape_str(ids.sizes().vec()));
  const auto& table = decoder_->embed_tokens->weight;
  if (ids.numel() > 0) {
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    GILL_CHECK(lo >= 0 && hi < table.size(0), ErrorCode::kInvalidArgument, "OPT: token id ", lo < 0 ? lo : hi,
               " is outside the embedding table [0, ", table.size(0), ")");
  }
  return torch::embedding(table, ids.to(torch::kLong)).to(compute_dtype_);  // [B, T, word_embed_proj_dim]
}

OPTOutput OPTForCausalLMImpl::forward(const torch::Tensor& inputs_embeds, KVCache* cache, bool output_hidden_states) {
  OPTForwardOptions o;
  o.output_hidden_states = output_hidden_states;
  return forward(inputs_embeds, cache, o);
}

OPTOutput OPTForCausalLMImpl::forward_ids(const torch::Tensor& ids, KVCache* cache, const OPTForwardOptions& options) {
  return forward(embed_tokens(ids), cache, options);
}

OPTOutput OPTForCausalLMImpl::forward(const torch::Tensor& inputs_embeds, KVCache* cache,
                                      const OPTForwardOptions& options) {
  c10::InferenceMode guard;
  const auto& c = config_;
  GILL_CHECK(inputs_embeds.dim() == 3 && inputs_embeds.size(2) == c.word_embed_proj_dim, ErrorCode::kInvalidArgument,
             "OPT: inputs_embeds must be [B, T, ", c.word_embed_proj_dim, "], got ",
             detail::shape_str(inputs_embeds.sizes().vec()));
  const int64_t B = inputs_embeds.size(0), T = inputs_embeds.size(1);
  const int64_t P = cache ? cache->length() : 0, S = P + T;
  GILL_CHECK(T > 0, ErrorCode::kInvalidArgument, "OPT: empty input sequence");
  GILL_CHECK(S <= c.max_position_embeddings, ErrorCode::kInvalidArgument, "OPT: sequence of ", S,
             " positions (", P, " cached + ", T, " new) exceeds max_position_embeddings ", c.max_position_embeddings);
  const auto cd = compute_dtype_;
  const auto fopt = torch::TensorOptions().dtype(cd).device(inputs_embeds.device());

  // Positions (OPTLearnedPositionalEmbedding): cumsum(mask) * mask - 1, last T of them, + offset 2.
  torch::Tensor positions;  // [B or 1, T]
  const auto& am = options.attention_mask;
  if (am.defined()) {
    GILL_CHECK(am.dim() == 2 && am.size(0) == B && am.size(1) == S, ErrorCode::kInvalidArgument,
               "OPT: attention_mask must be [", B, ", ", S, "], got ", detail::shape_str(am.sizes().vec()));
    auto m = am.to(torch::kLong);
    positions = (torch::cumsum(m, 1) * m - 1).narrow(1, P, T);
  } else {
    positions = torch::arange(P, S, torch::TensorOptions().dtype(torch::kLong).device(inputs_embeds.device()))
                    .unsqueeze(0);
  }
  auto pos_embeds = torch::embedding(decoder_->embed_positions->weight, positions + 2).to(cd);  // [B|1, T, D]

  // Additive mask [B|1, 1, T, S]: causal (T > 1) plus padding, values 0 or finfo(cd).min (HF semantics).
  torch::Tensor mask;
  const double fmin = lowest_of(cd);
  if (T > 1) mask = torch::full({T, S}, fmin, fopt).triu(P + 1).view({1, 1, T, S});
  if (am.defined()) {
    auto inverted = 1.0 - am.to(cd).view({B, 1, 1, S}).expand({B, 1, T, S});
    auto pad = inverted.masked_fill(inverted.to(torch::kBool), fmin);
    mask = mask.defined() ? pad + mask : pad;
  }

  auto x = inputs_embeds.to(cd);
  if (decoder_->project_in) x = linear(x, decoder_->project_in);
  auto h = x + pos_embeds;  // [B, T, hidden]

  OPTOutput out;
  torch::Tensor pos_index;
  if (!options.hidden_positions.empty()) {
    std::vector<int64_t> idx;
    for (int64_t p : options.hidden_positions) {
      const int64_t q = p < 0 ? p + T : p;
      GILL_CHECK(q >= 0 && q < T, ErrorCode::kInvalidArgument, "OPT: hidden position ", p, " is outside [0, ", T, ")");
      idx.push_back(q);
    }
    pos_index = torch::tensor(idx, torch::TensorOptions().dtype(torch::kLong).device(h.device()));
  }
  auto record = [&](const torch::Tensor& t) {
    if (options.output_hidden_states) out.hidden_states.push_back(pos_index.defined() ? t.index_select(1, pos_index) : t);
  };
  for (size_t i = 0; i < decoder_->layer_list.size(); ++i) {
    record(h);
    h = decoder_layer(*decoder_->layer_list[i], h, mask, cache, i);
  }
  if (cache) cache->commit(T);
  if (decoder_->final_layer_norm) h = layer_norm(h, decoder_->final_layer_norm);
  if (decoder_->project_out) h = linear(h, decoder_->project_out);
  record(h);
  out.last_hidden = h;  // [B, T, word_embed_proj_dim]
  auto hl = options.last_logits_only ? h.narrow(1, T - 1, 1) : h;
  out.logits = linear(hl, decoder_->embed_tokens->weight, torch::Tensor()).to(torch::kFloat32);  // [B, T|1, V]
  return out;
}

// ---------------------------------------------------------------------------------------------- loading

io::LoadSpec opt_load_spec() {
  io::LoadSpec spec;
  spec.prefixes = {"model.decoder.", "decoder."};
  spec.allowed_extra = {"lm_head\\.weight"};  // tied to embed_tokens when stored
  return spec;
}

std::shared_ptr<CausalLM> load_opt_causal_lm(const std::filesystem::path& dir, const ModuleOptions& options) {
  return load_opt(dir, options).ptr();
}

OPTForCausalLM load_opt(const std::filesystem::path& dir, const ModuleOptions& opt) {
  return detail::with_context(str_cat("loading OPT from ", dir.string()), [&] {
    GILL_CHECK(std::filesystem::is_directory(dir), ErrorCode::kNotFound, "no such folder");
    auto config = OPTConfig::from_file(dir / "config.json");
    OPTForCausalLM model(config, opt);
    auto source = io::open_tensors(dir, opt.residency);
    io::load_module(*model->decoder(), *source, opt_load_spec(), opt.dtype, opt.device);
    model->set_compute_dtype(compute_dtype(opt));
    return model;
  });
}

}  // namespace gill::models
