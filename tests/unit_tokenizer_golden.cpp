// Tokenizers against the golden ids of ../shared/tokenizer-data (Hugging Face tokenizers, see its README) and the
// fixture tokenizers against expected/summary.json › text (upstream transformers 4.30.2, no ftfy).
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_support.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/tokenizer.h"

using gill::test::read_jsonl;

namespace gill::tokenizer {
namespace {

namespace fs = std::filesystem;
using gill::test::shared_dir;
using Ids = std::vector<int64_t>;

fs::path data() { return shared_dir() / "tokenizer-data"; }

std::string show(const Ids& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

// Checks `field` of every line against fn(text); reports the first few mismatching lines.
template <typename Fn>
void check_golden(const fs::path& file, const std::string& field, Fn&& fn) {
  const auto lines = read_jsonl(file);
  ASSERT_GT(lines.size(), 400u) << file;
  int bad = 0, n = 0;
  for (const auto& j : lines) {
    if (!j.contains(field)) continue;
    ++n;
    const std::string text = j["text"].get<std::string>();
    const Ids want = j[field].get<Ids>();
    const Ids got = fn(text);
    if (got != want && ++bad <= 5)
      ADD_FAILURE() << file.filename().string() << " " << j["id"].get<std::string>() << " field " << field
                    << "\n  text: " << nlohmann::json(text).dump() << "\n  want: " << show(want)
                    << "\n  got:  " << show(got);
  }
  EXPECT_EQ(bad, 0) << bad << " of " << n << " lines differ in " << field;
  EXPECT_GT(n, 400);
}

TEST(TokenizerGolden, Gpt2) {
  GILL_REQUIRE_PATH(data());
  const auto tok = load_tokenizer(data() / "gpt2");
  EXPECT_EQ(tok->size(), 50257u);
  EXPECT_EQ(tok->eos_id(), 50256);
  check_golden(data() / "golden-gpt2.jsonl", "ids", [&](const std::string& t) { return tok->encode(t, true); });
}

TEST(TokenizerGolden, Opt) {
  GILL_REQUIRE_PATH(data());
  const auto tok = load_tokenizer(data() / "opt");
  EXPECT_EQ(tok->kind(), "gpt2");
  EXPECT_EQ(tok->size(), 50265u);
  EXPECT_EQ(tok->bos_id(), 2);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->pad_id(), 1);
  EXPECT_EQ(tok->encode("\n", false), Ids{50118});
  EXPECT_EQ(tok->encode("[IMG0]", false), (Ids{10975, 3755, 534, 288, 742}));
  EXPECT_EQ(tok->encode("", true), Ids{2});
  EXPECT_EQ(tok->encode("", false), Ids{});
  check_golden(data() / "golden-opt.jsonl", "ids", [&](const std::string& t) { return tok->encode(t, false); });
  check_golden(data() / "golden-opt.jsonl", "ids_bos", [&](const std::string& t) { return tok->encode(t, true); });
}

TEST(TokenizerGolden, OptGill) {
  GILL_REQUIRE_PATH(data());
  auto legacy = load_tokenizer(data() / "opt");  // transformers 4.30.2 (GILL's pin)
  const Ids img = add_gill_tokens(*legacy);
  EXPECT_EQ(img, (Ids{50266, 50267, 50268, 50269, 50270, 50271, 50272, 50273}));
  EXPECT_EQ(legacy->token_to_id("<|image|>"), 50265);
  EXPECT_EQ(legacy->size(), 50274u);
  EXPECT_EQ(legacy->encode("a [IMG0] b", false), (Ids{102, 50266, 428}));
  EXPECT_EQ(legacy->encode("[IMG0] [IMG1]", false), legacy->encode("[IMG0][IMG1]", false));
  check_golden(data() / "golden-opt-gill.jsonl", "ids_tf4292",
               [&](const std::string& t) { return legacy->encode(t, false); });
  LoadOptions modern_opts;
  modern_opts.strip = AddedTokenStrip::kModern;
  auto modern = load_tokenizer(data() / "opt", modern_opts);
  add_gill_tokens(*modern);
  EXPECT_EQ(modern->encode("a [IMG0] b", false), (Ids{102, 1437, 50266, 741}));
  check_golden(data() / "golden-opt-gill.jsonl", "ids", [&](const std::string& t) { return modern->encode(t, false); });
}

TEST(TokenizerGolden, ClipFast) {
  GILL_REQUIRE_PATH(data());
  const auto tok = load_tokenizer(data() / "clip");
  EXPECT_EQ(tok->kind(), "clip");
  EXPECT_EQ(tok->size(), 49408u);
  EXPECT_EQ(tok->bos_id(), 49406);
  EXPECT_EQ(tok->eos_id(), 49407);
  EXPECT_EQ(tok->pad_id(), 49407);
  EXPECT_EQ(tok->encode("a photo of a cat"), (Ids{49406, 320, 1125, 539, 320, 2368, 49407}));
  check_golden(data() / "golden-clip.jsonl", "ids", [&](const std::string& t) { return tok->encode(t); });
  check_golden(data() / "golden-clip.jsonl", "ids_sd77", [&](const std::string& t) { return encode_sd77(*tok, t); });
  const Ids empty = encode_sd77(*tok, "");
  ASSERT_EQ(empty.size(), 77u);
  EXPECT_EQ(empty[0], 49406);
  for (size_t i = 1; i < 77; ++i) EXPECT_EQ(empty[i], 49407);
}

TEST(TokenizerGolden, ClipNoFtfy) {
  GILL_REQUIRE_PATH(data());
  LoadOptions o;
  o.clip_mode = ClipMode::kNoFtfyPre431;
  const auto pre = load_tokenizer(data() / "clip", o);
  EXPECT_EQ(pre->encode("résumé café"), (Ids{49406, 15077, 4979, 49407}));
  EXPECT_EQ(pre->encode("You should've seen it!!"), (Ids{49406, 592, 1535, 262, 563, 2041, 585, 256, 256, 49407}));
  EXPECT_EQ(pre->encode("3.14 apples"), (Ids{49406, 274, 269, 272, 275, 14032, 49407}));
  check_golden(data() / "golden-clip.jsonl", "ids_noftfy_pre431", [&](const std::string& t) { return pre->encode(t); });
  o.clip_mode = ClipMode::kNoFtfy431;
  const auto post = load_tokenizer(data() / "clip", o);
  check_golden(data() / "golden-clip.jsonl", "ids_noftfy_431", [&](const std::string& t) { return post->encode(t); });
}

// Byte-level BPE is lossless: decode(encode(text)) is the text after clean_up_tokenization.
TEST(TokenizerGolden, OptDecodeRoundTrip) {
  GILL_REQUIRE_PATH(data());
  auto tok = load_tokenizer(data() / "opt");
  add_gill_tokens(*tok);
  int bad = 0;
  for (const auto& j : read_jsonl(data() / "corpus.jsonl")) {
    const std::string text = j["text"].get<std::string>();
    if (text.find("[IMG") != std::string::npos || text.find("<|image|>") != std::string::npos) continue;
    const std::string got = tok->decode(tok->encode(text, true), true);
    std::string want = clean_up_tokenization(text);
    // </s> and <pad> typed in the text are special ids: skip_special_tokens drops them.
    for (const std::string s : {"</s>", "<pad>"}) {
      for (size_t p; (p = want.find(s)) != std::string::npos;) want.erase(p, s.size());
    }
    if (got != want && ++bad <= 5) ADD_FAILURE() << "round trip of " << nlohmann::json(text).dump() << " gave "
                                                 << nlohmann::json(got).dump();
  }
  EXPECT_EQ(bad, 0);
}

// ---- fixture tokenizers (summary.json › text, computed by transformers 4.30.2 without ftfy) ------------------

fs::path fixtures() { return shared_dir() / "fixtures"; }

nlohmann::json summary_text() {
  std::ifstream f(fixtures() / "expected" / "summary.json");
  return nlohmann::json::parse(f)["text"];
}

void check_records(const Tokenizer& tok, const nlohmann::json& block, bool pipeline77) {
  ASSERT_EQ(tok.size(), block["len"].get<size_t>());
  for (const auto& r : block["records"]) {
    const std::string text = r["text"].get<std::string>();
    SCOPED_TRACE(nlohmann::json(text).dump());
    const Ids ids = r["input_ids"].get<Ids>();
    EXPECT_EQ(tok.encode(text, true), ids);
    EXPECT_EQ(tok.encode(text, false), r["input_ids_no_special"].get<Ids>());
    EXPECT_EQ(tok.decode(ids, false), r["decode"].get<std::string>());
    EXPECT_EQ(tok.decode(ids, true), r["decode_skip_special"].get<std::string>());
    if (pipeline77 && r.contains("input_ids_pipeline")) {
      EXPECT_EQ(encode_sd77(tok, text), r["input_ids_pipeline"].get<Ids>());
    }
  }
}

TEST(TokenizerFixtures, OptAndGill) {
  GILL_REQUIRE_PATH(fixtures() / "expected" / "summary.json");
  const auto text = summary_text();
  auto tok = load_tokenizer(fixtures() / "models" / "facebook" / "opt-tiny");
  check_records(*tok, text["opt_tokenizer"], false);
  const Ids img = add_gill_tokens(*tok);
  for (const auto& [k, v] : text["gill_tokenizer"]["added_tokens"].items()) EXPECT_EQ(tok->token_to_id(k), v.get<int64_t>());
  EXPECT_EQ(img.front(), 410);
  check_records(*tok, text["gill_tokenizer"], false);
}

TEST(TokenizerFixtures, ClipNoFtfy) {
  GILL_REQUIRE_PATH(fixtures() / "expected" / "summary.json");
  LoadOptions o;
  o.clip_mode = ClipMode::kNoFtfyPre431;
  const auto tok = load_tokenizer(fixtures() / "models" / "runwayml" / "stable-diffusion-tiny" / "tokenizer", o);
  check_records(*tok, summary_text()["clip_tokenizer"], true);
}

}  // namespace
}  // namespace gill::tokenizer
