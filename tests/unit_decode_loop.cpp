// The one decoding loop, the one greedy rule, the one text streamer, and the LM seam (decoder registry, the
// "auto" dtype from tensor bytes), with a scripted CausalLM double: no weights.
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "io/tensor_dump.h"
#include "io/tensor_source.h"
#include "models/causal_lm.h"
#include "pipeline/gill_decode.h"
#include "pipeline/gill_model.h"
#include "pipeline/lm_generate.h"
#include "test_support.h"
#include "util/error.h"
#include "util/utf8.h"

using namespace gill;
using namespace gill::pipeline;
using gill::test::expect_error;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

// A decoder behind the CausalLM seam: vocabulary of 16 (ids 8..15 are [IMG0..7], 5 is "\n"), one-hot embeddings,
// hidden = the input embedding, and next-token logits from a table keyed by the input token.
class ScriptedCausalLM : public models::CausalLM {
 public:
  static constexpr int64_t V = 16;
  std::map<int64_t, std::vector<float>> next_logits;  // input token -> logits row (default: zeros)
  int64_t max_pos = 64;
  int64_t n_forward = 0;

  models::CausalLMOutput forward(const torch::Tensor& embeds, models::KVCache* cache,
                                 const models::CausalLMForwardOptions& o) override {
    const int64_t past = cache ? cache->length() : 0, T = embeds.size(1);
    GILL_CHECK(past + T <= max_pos, ErrorCode::kInvalidArgument, "scripted: ", past + T, " > ", max_pos);
    ++n_forward;
    auto logits = torch::zeros({1, T, V});
    for (int64_t i = 0; i < T; ++i) {
      auto it = next_logits.find(embeds[0][i].argmax().item<int64_t>());
      if (it != next_logits.end()) logits[0][i] = torch::tensor(it->second);
    }
    if (cache) cache->commit(T);
    models::CausalLMOutput out;
    out.last_hidden = embeds.clone();
    out.logits = o.last_logits_only ? logits.narrow(1, T - 1, 1) : logits;
    if (o.output_hidden_states) out.hidden_states = {embeds, embeds};
    return out;
  }
  torch::Tensor embed_tokens(const torch::Tensor& ids) override {
    return torch::one_hot(ids.to(torch::kLong), V).to(torch::kFloat32);  // [B, T, V]
  }
  int64_t embed_dim() const override { return V; }
  int64_t max_positions() const override { return max_pos; }
  int64_t eos_token_id() const override { return 2; }
  torch::Dtype storage_dtype() const override { return torch::kFloat32; }
  void resize_token_embeddings(int64_t) override {}
  void set_token_embeddings(const std::vector<int64_t>&, const torch::Tensor&) override {}
};

std::vector<float> logits_row(std::map<int64_t, float> vals) {
  std::vector<float> r(ScriptedCausalLM::V, 0.f);
  for (auto [k, v] : vals) r[static_cast<size_t>(k)] = v;
  return r;
}

// Python's bytes.decode("utf-8", errors="replace"), as the tokenizers decode: each maximal invalid subpart (a
// lead byte with the continuation bytes that follow it, up to its length) becomes one U+FFFD.
std::string replace_invalid_utf8(std::string s) {
  for (size_t at = 0;;) {
    const size_t rel = gill::detail::first_invalid_utf8(std::string_view(s).substr(at));
    if (rel == std::string::npos) return s;
    const size_t bad = at + rel;
    const auto b = static_cast<unsigned char>(s[bad]);
    const size_t want = (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
    size_t n = 1;
    while (n < want && bad + n < s.size() && (static_cast<unsigned char>(s[bad + n]) & 0xC0) == 0x80) ++n;
    s.replace(bad, n, "\xEF\xBF\xBD");
    at = bad + 3;
  }
}

GillTokenIds scripted_ids() {
  return {{8, 9, 10, 11, 12, 13, 14, 15}, 5};
}

// Greedy through `gill run --lm`'s loop and through the GILL loop, from the same prompt.
std::pair<std::vector<int64_t>, std::vector<int64_t>> both_loops(ScriptedCausalLM& m, int64_t n) {
  pipeline::GenerateOptions g;
  g.max_new_tokens = n;
  auto gen = make_generator(g.sampling);
  auto lm_ids = generate(m, m.embed_tokens(torch::tensor({{0}})), g, gen).ids;
  CachedLM cached(m);
  DecodeOptions d;
  d.n_words = n;
  auto gill_ids = decode(cached, m.embed_tokens(torch::tensor({{0}})), d, scripted_ids(), greedy_pick).ids;
  return {lm_ids, gill_ids};
}

}  // namespace

// The one greedy rule is torch.argmax's (transformers v4.30.2 greedy_search and the GILL reference call it):
// NaN is the maximum, the first of equal maxima wins. Compared with libtorch's own argmax on the same rows.
TEST(GreedyRule, IsTorchArgmax) {
  const std::vector<std::vector<float>> rows = {
      {1, 3, 3, 2},          {-kInf, kNaN, -1},     {kNaN, 5, kNaN}, {kNaN, kNaN},
      {-kInf, -kInf, -kInf}, {0, kInf, kInf, kNaN}, {2, kInf, 7},    {-1}};
  for (const auto& r : rows) {
    auto t = torch::tensor(r);
    EXPECT_EQ(greedy_pick(t), torch::argmax(t).item<int64_t>()) << t;
  }
  EXPECT_EQ(greedy_pick(torch::tensor({-kInf, kNaN, -1.f})), 1);
  EXPECT_EQ(greedy_pick(torch::tensor({kNaN, kNaN})), 0);
  auto gen = at::detail::createCPUGenerator(3);
  for (int k = 0; k < 50; ++k) {
    auto t = torch::randn({257}, gen).round();  // ties
    if (k % 2) t.masked_fill_(torch::rand({257}, gen) < 0.02, kNaN);
    EXPECT_EQ(greedy_pick(t), torch::argmax(t).item<int64_t>()) << "row " << k;
  }
  expect_error([] { greedy_pick(torch::zeros({0})); }, ErrorCode::kInvalidArgument,
               "cannot pick a token from empty logits");
}

// `gill run --lm` and the GILL turn run one loop: the same ids from the same model, and the same NaN rule.
TEST(DecodeLoop, LmAndGillShareTheLoopAndTheGreedyRule) {
  ScriptedCausalLM m;
  m.next_logits[0] = logits_row({{3, 1.f}, {4, 1.f}});            // tie: the first index wins
  m.next_logits[3] = logits_row({{6, kNaN}, {7, 9.f}});           // NaN is the maximum
  m.next_logits[6] = logits_row({{1, kNaN}, {4, kNaN}, {7, 1}});  // the first NaN
  auto [lm_ids, gill_ids] = both_loops(m, 4);
  EXPECT_EQ(lm_ids, (std::vector<int64_t>{3, 6, 1, 0}));
  EXPECT_EQ(gill_ids, lm_ids);
  // GILL's rules are a policy on top: [IMG1..7] are banned even when NaN, [IMG0] forces the whole block.
  m.next_logits[0] = logits_row({{9, kNaN}, {8, 5.f}});
  m.next_logits[15] = logits_row({{4, 1.f}});
  auto [lm_ids2, gill_ids2] = both_loops(m, 2);
  EXPECT_EQ(lm_ids2, (std::vector<int64_t>{9, 0}));  // the plain LM has no [IMG] rules
  EXPECT_EQ(gill_ids2, (std::vector<int64_t>{8, 9, 10, 11, 12, 13, 14, 15, 4}));
}

// The plain LM's stop rules are the loop's policy: eos (kept), the context limit, and the cache-less recomputation
// gives the same ids with one full forward per step.
TEST(DecodeLoop, LmStopRulesAndRecomputation) {
  ScriptedCausalLM m;
  m.next_logits[0] = logits_row({{3, 1.f}});
  m.next_logits[3] = logits_row({{2, 1.f}});  // eos
  pipeline::GenerateOptions g;
  g.max_new_tokens = 8;
  auto gen = make_generator(g.sampling);
  auto r = generate(m, m.embed_tokens(torch::tensor({{0}})), g, gen);
  EXPECT_EQ(r.ids, (std::vector<int64_t>{3, 2, 0, 3, 2, 0, 3, 2}));
  EXPECT_EQ(r.stop_reason, "max_new_tokens");  // eos_token_id is -1 unless asked for
  g.eos_token_id = 2;
  r = generate(m, m.embed_tokens(torch::tensor({{0}})), g, gen);
  EXPECT_EQ(r.ids, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(r.stop_reason, "eos");
  g.use_cache = false;
  m.n_forward = 0;
  r = generate(m, m.embed_tokens(torch::tensor({{0}})), g, gen);
  EXPECT_EQ(r.ids, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(m.n_forward, 2);  // the prompt, then the sequence with the first new token
  g.eos_token_id = -1;
  m.max_pos = 3;  // prompt + 2 fed tokens
  r = generate(m, m.embed_tokens(torch::tensor({{0}})), g, gen);
  EXPECT_EQ(r.ids.size(), 3u);
  EXPECT_EQ(r.stop_reason, "max_positions");
}

// The one streamer: up to the last space, everything after a flush id or "\n", never a split UTF-8 character or
// a trailing U+FFFD that later bytes may complete; the pieces together are the final text.
TEST(TextStreamer, Utf8SafeFlushIdsAndNewline) {
  const std::vector<std::string> vocab = {"a", " b", "\xE2", "\x82", "\xAC", "[IMG0]", "\n", " c"};
  // Decodes like the tokenizers: bytes joined, an incomplete sequence at the end replaced by U+FFFD.
  auto decode = [&](const std::vector<int64_t>& ids) {
    std::string s;
    for (auto i : ids) s += vocab[static_cast<size_t>(i)];
    return replace_invalid_utf8(s);
  };
  TextStreamer st(decode, {5});
  std::vector<std::string> pieces;
  for (int64_t id : {0, 1, 2, 3, 5, 4, 6, 7}) pieces.push_back(st.push(id));
  // Up to the last space, then [IMG0] flushes (the broken E2 82 before it is final: one U+FFFD), a lone
  // continuation byte waits, "\n" flushes, " c" waits for finish().
  EXPECT_EQ(pieces, (std::vector<std::string>{"", "a", "", "", " b\xEF\xBF\xBD[IMG0]", "", "\xEF\xBF\xBD\n", ""}));
  const std::string final_text = decode({0, 1, 2, 3, 5, 4, 6, 7});
  std::string all;
  for (const auto& p : pieces) {
    EXPECT_EQ(gill::detail::first_invalid_utf8(p), std::string::npos) << p;
    all += p;
  }
  all += st.finish(final_text);
  EXPECT_EQ(all, final_text);
  // A multi-byte character split over tokens is emitted whole once complete.
  TextStreamer euro(decode, {5});
  EXPECT_EQ(euro.push(0), "");
  EXPECT_EQ(euro.push(2), "");
  EXPECT_EQ(euro.push(3), "");
  EXPECT_EQ(euro.push(4), "");
  EXPECT_EQ(euro.push(5), "a\xE2\x82\xAC[IMG0]");
}

// The LM seam: config.json's model_type picks the decoder; an unknown one is refused by name.
TEST(DecoderRegistry, RefusesAnUnknownModelTypeByName) {
  const auto dir = test::temp_dir("registry");
  EXPECT_EQ(models::causal_lm_model_types(), (std::vector<std::string>{"opt"}));
  std::ofstream(dir / "config.json") << R"({"model_type": "llama", "hidden_size": 64})";
  expect_error([&] { models::load_causal_lm(dir, {}); }, ErrorCode::kUnsupported,
               (dir / "config.json").string() + ": model_type 'llama' has no decoder in gill (known: opt)");
  std::ofstream(dir / "config.json", std::ios::trunc) << R"({"hidden_size": 64})";
  expect_error([&] { models::load_causal_lm(dir, {}); }, ErrorCode::kFormat,
               (dir / "config.json").string() + ": no string 'model_type' (it names the decoder; known: opt)");
  expect_error([&] { models::load_causal_lm(dir / "nowhere", {}); }, ErrorCode::kNotFound,
               "loading the LM from " + (dir / "nowhere").string() + ": no such folder");
  std::filesystem::remove_all(dir);
}

// "auto" storage comes from the bytes of the folder's tensors, not from a decoder's config keys: a config.json
// claiming a huge OPT changes nothing, and integer buffers are not parameters.
TEST(AutoDtype, ComesFromTensorBytes) {
  const auto dir = test::temp_dir("auto_dtype");
  std::ofstream(dir / "config.json")
      << R"({"model_type": "opt", "hidden_size": 65536, "num_hidden_layers": 4096, "vocab_size": 1000000})";
  io::TensorDump d;
  d.add("model.decoder.embed_tokens.weight", torch::zeros({10, 10}, torch::kFloat16));  // 100 parameters
  d.add("model.decoder.final_layer_norm.weight", torch::zeros({5}, torch::kBFloat16));  // 5
  d.add("position_ids", torch::zeros({1, 7}, torch::kInt64));                           // not a parameter
  d.write(dir / "model.safetensors");
  const int64_t bytes = models::fp32_parameter_bytes(dir);
  EXPECT_EQ(bytes, 105 * 4);
  EXPECT_EQ(auto_storage_dtype(bytes, 2.0 * bytes), torch::kFloat32);       // exactly half: fp32
  EXPECT_EQ(auto_storage_dtype(bytes, 2.0 * bytes - 1), torch::kBFloat16);  // more than half: bf16
  EXPECT_EQ(auto_storage_dtype(dir), torch::kFloat32);                      // 420 bytes on this machine
  EXPECT_EQ(auto_storage_dtype(dir / "nowhere"), torch::kFloat32);          // the loader reports a missing folder
  std::filesystem::remove_all(dir);
}

// "auto" is decided in one place for the Engine and `gill run --lm` (LmOptions): the tensor-bytes rule, by name.
TEST(AutoDtype, ResolvedByTheOneRule) {
  const auto dir = test::temp_dir("auto_dtype_resolve");
  io::TensorDump d;
  d.add("model.decoder.embed_tokens.weight", torch::zeros({4, 4}));
  d.write(dir / "model.safetensors");
  EXPECT_EQ(resolve_storage_dtype("auto", dir), io::torch_dtype_name(auto_storage_dtype(dir)));
  EXPECT_EQ(resolve_storage_dtype("auto", dir), "fp32");  // 64 bytes on this machine
  EXPECT_EQ(resolve_storage_dtype("bf16", dir), "bf16");
  EXPECT_EQ(resolve_storage_dtype("int4", dir), "int4");  // left for the parser to name
  std::filesystem::remove_all(dir);
}

// A stored lm_head.weight is the input embedding (tied): counted once, as the loader uses it; with
// "tie_word_embeddings": false it is a parameter of its own.
TEST(AutoDtype, TiedLmHeadCountsOnce) {
  const auto dir = test::temp_dir("auto_dtype_tied");
  io::TensorDump d;
  d.add("model.decoder.embed_tokens.weight", torch::zeros({10, 6}));  // 60 parameters
  d.add("lm_head.weight", torch::zeros({10, 6}));                     // the same 60, tied
  d.add("model.decoder.final_layer_norm.weight", torch::zeros({6}));  // 6
  d.write(dir / "model.safetensors");
  std::ofstream(dir / "config.json") << R"({"model_type": "opt"})";
  EXPECT_EQ(models::fp32_parameter_bytes(dir), 66 * 4);
  std::ofstream(dir / "config.json") << R"({"model_type": "opt", "tie_word_embeddings": true})";
  EXPECT_EQ(models::fp32_parameter_bytes(dir), 66 * 4);
  std::ofstream(dir / "config.json") << R"({"model_type": "opt", "tie_word_embeddings": false})";
  EXPECT_EQ(models::fp32_parameter_bytes(dir), 126 * 4);
  std::filesystem::remove_all(dir);
}
