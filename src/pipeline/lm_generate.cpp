// The plain LM on the one decoding loop (decode_loop.h), and `gill run --lm`.
#include "pipeline/lm_generate.h"

#include <chrono>
#include <ostream>

#include "io/tensor_source.h"
#include "util/error.h"
#include "util/utf8.h"

#if __has_include("tokenizer/tokenizer.h")
#include "tokenizer/tokenizer.h"
#define GILL_HAVE_TOKENIZER 1
#endif

namespace gill::pipeline {

using detail::str_cat;

namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Position of the earliest stop (newline or stop string) in `text`, or npos.
size_t find_stop(const std::string& text, const GenerateOptions& o, std::string* reason) {
  size_t best = std::string::npos;
  if (o.stop_on_newline) {
    best = text.find('\n');
    if (best != std::string::npos) *reason = "newline";
  }
  for (const auto& s : o.stop_strings) {
    if (s.empty()) continue;
    const size_t p = text.find(s);
    if (p != std::string::npos && (best == std::string::npos || p < best)) {
      best = p;
      *reason = "stop_string";
    }
  }
  return best;
}

}  // namespace

namespace {

// The plain LM's rules on the decoding loop: the caller's logits hook, eos, newline and stop strings.
class LmStopPolicy : public DecodePolicy {
 public:
  explicit LmStopPolicy(const GenerateOptions& o) : o_(o) {}
  void adjust_logits(int64_t step, torch::Tensor& logits) override {
    if (o_.logits_hook) o_.logits_hook(step, logits);
  }
  std::string stop_reason(const std::vector<int64_t>& ids) override {
    if (ids.back() == o_.eos_token_id) return "eos";
    std::string reason;
    if (o_.decode && (o_.stop_on_newline || !o_.stop_strings.empty()))
      if (find_stop(o_.decode(ids), o_, &reason) != std::string::npos) return reason;
    return {};
  }

 private:
  const GenerateOptions& o_;
};

}  // namespace

GenerateResult generate(models::CausalLM& model, const torch::Tensor& prompt_embeds, const GenerateOptions& o,
                        torch::Generator& gen) {
  c10::InferenceMode guard;
  validate(o.sampling);
  GILL_CHECK(o.max_new_tokens >= 0, ErrorCode::kInvalidArgument, "max_new_tokens must be >= 0, got ", o.max_new_tokens);
  GILL_CHECK(prompt_embeds.dim() == 3 && prompt_embeds.size(0) == 1, ErrorCode::kInvalidArgument,
             "generate: prompt embeddings must be [1, T, D], got ", detail::shape_str(prompt_embeds.sizes().vec()));
  GILL_CHECK(o.decode || (!o.stop_on_newline && o.stop_strings.empty()), ErrorCode::kInvalidArgument,
             "generate: stopping on newline or strings needs a tokenizer to decode with");

  GenerateResult r;
  CachedLM lm(model, CachedLM::Options{o.use_cache, /*last_logits_only=*/true});
  auto t0 = std::chrono::steady_clock::now();
  auto out = lm.feed(prompt_embeds, o.prompt_hidden_states ? &r.prompt_hidden_states : nullptr);
  r.prefill_s = since(t0);

  LmStopPolicy policy(o);
  LoopOptions lo;
  lo.max_steps = o.max_new_tokens;
  lo.keep_step_logits = o.keep_step_logits;
  if (o.on_token) lo.on_step = [&](const std::vector<int64_t>& chosen) { return o.on_token(chosen.front()); };
  const Sampler sampler = [&](const torch::Tensor& logits) { return sample_next(logits, o.sampling, gen); };
  t0 = std::chrono::steady_clock::now();
  auto loop = run_decode_loop(lm, torch::Tensor(), out.logits[-1], policy, sampler, lo);
  r.decode_s = since(t0);
  r.ids = std::move(loop.ids);
  r.stop_reason = loop.stop_reason == "max_steps" ? "max_new_tokens" : loop.stop_reason;
  if (!loop.step_logits.empty()) r.step_logits = torch::stack(loop.step_logits);  // [n_steps, V]
  if (o.decode) {
    r.text = o.decode(r.ids);
    std::string reason;
    const size_t cut = find_stop(r.text, o, &reason);
    if (cut != std::string::npos) r.text.resize(cut);
  }
  return r;
}

torch::Dtype parse_lm_dtype(const std::string& name) {
  return io::parse_torch_dtype(name, {torch::kFloat32, torch::kBFloat16}, " for the LM");
}

LmRunResult run_lm(const LmRunOptions& opt, const std::function<bool(const std::string&)>& on_text,
                   io::TensorDump* dump) {
  c10::InferenceMode guard;
  LmRunResult res;
  const torch::Dtype dtype = parse_lm_dtype(opt.dtype);
  detail::require_utf8(opt.prompt, "the prompt");
  for (const auto& s : opt.stop_strings) detail::require_utf8(s, "the stop string '" + s + "'");
  auto t0 = std::chrono::steady_clock::now();
  auto model = models::load_causal_lm(opt.lm_dir, models::ModuleOptions{dtype, torch::kCPU, opt.compute, opt.residency});
  res.load_s = since(t0);

  std::function<std::string(const std::vector<int64_t>&)> decode;
#ifdef GILL_HAVE_TOKENIZER
  std::shared_ptr<tokenizer::Tokenizer> tok;
  const bool has_tok = std::filesystem::exists(opt.lm_dir / "vocab.json");
  if (has_tok) {
    tok = tokenizer::load_tokenizer(opt.lm_dir);
    decode = [tok](const std::vector<int64_t>& ids) { return tok->decode(ids, true); };
  }
#endif
  if (!opt.prompt_ids.empty()) {
    res.prompt_ids = opt.prompt_ids;
  } else {
#ifdef GILL_HAVE_TOKENIZER
    GILL_CHECK(tok, ErrorCode::kNotFound, opt.lm_dir.string(),
               ": no tokenizer files (vocab.json, merges.txt) to encode the prompt; pass token ids instead");
    res.prompt_ids = tok->encode(opt.prompt, /*add_special_tokens=*/true);
#else
    detail::fail(ErrorCode::kUnsupported, "this build has no tokenizer: pass the prompt as token ids");
#endif
  }
  GILL_CHECK(!res.prompt_ids.empty(), ErrorCode::kInvalidArgument, "the prompt is empty");

  GenerateOptions g;
  g.max_new_tokens = opt.max_new_tokens;
  g.sampling = opt.sampling;
  g.eos_token_id = opt.stop_on_eos ? model->eos_token_id() : -1;
  g.stop_on_newline = opt.stop_on_newline;
  g.stop_strings = opt.stop_strings;
  g.use_cache = opt.use_cache;
  g.keep_step_logits = dump != nullptr;
  g.prompt_hidden_states = dump != nullptr && opt.dump_hidden;
  g.decode = decode;
  std::vector<std::string> stops = opt.stop_strings;
  if (opt.stop_on_newline) stops.emplace_back("\n");
  TextStreamer streamer(decode, {}, stops);
  if (on_text) {
    g.on_token = [&](int64_t id) {
      const std::string piece = decode ? streamer.push(id) : std::to_string(id) + " ";
      return piece.empty() || on_text(piece);
    };
  }
  auto ids = torch::tensor(res.prompt_ids, torch::kLong).view({1, -1});  // [1, T]
  auto gen = make_generator(opt.sampling);
  auto r = generate(*model, model->embed_tokens(ids), g, gen);
  res.new_ids = r.ids;
  res.stop_reason = r.stop_reason;
  res.prefill_s = r.prefill_s;
  res.decode_s = r.decode_s;
  if (decode) {
    res.text = r.text;
    if (on_text) {
      const std::string rest = streamer.finish(r.text);
      if (!rest.empty()) on_text(rest);
    }
  } else {
    for (size_t i = 0; i < r.ids.size(); ++i) res.text += (i ? " " : "") + std::to_string(r.ids[i]);
  }

  if (dump) {
    dump->add("lm.input_ids", ids);
    dump->add("lm.output_ids", torch::tensor(r.ids, torch::kLong));
    if (r.step_logits.defined()) dump->add("lm.logits", r.step_logits);
    if (!r.prompt_hidden_states.empty()) {
      bool same = true;
      for (const auto& h : r.prompt_hidden_states) same = same && h.sizes() == r.prompt_hidden_states[0].sizes();
      if (same) {
        std::vector<torch::Tensor> hs;
        for (const auto& h : r.prompt_hidden_states) hs.push_back(h.select(0, 0));
        dump->add("lm.hidden_states", torch::stack(hs).to(torch::kFloat32));  // [n_layers + 1, T, D]
      } else {  // project_out changes the last width: one entry per layer
        for (size_t i = 0; i < r.prompt_hidden_states.size(); ++i)
          dump->add(str_cat("lm.hidden_states.", i), r.prompt_hidden_states[i].select(0, 0).to(torch::kFloat32));
      }
    }
  }
  return res;
}

}  // namespace gill::pipeline
