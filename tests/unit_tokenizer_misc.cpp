// Tokenizers without the shared data: UTF-8 handling, errors, the tiny BPE trainer, SentencePiece through the
// shim (against Debian's spm_encode), and `gill tokenize`.
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <nlohmann/json.hpp>

#include <gill/error.h>
#include "test_support.h"
#include "tokenizer/bpe.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/sanitizer.h"

namespace gill::tokenizer {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<int64_t>;

// Python: bytes.decode("utf-8", errors="replace") gives one U+FFFD per maximal ill-formed subpart.
TEST(TokenizerUnicode, DecodeReplaceMatchesPython) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(uni::decode_replace("abc"), "abc");
  EXPECT_EQ(uni::decode_replace("a\x80" "b"), "a" + r + "b");
  EXPECT_EQ(uni::decode_replace("\xE2\x82"), r);                 // truncated 3-byte sequence: one replacement
  EXPECT_EQ(uni::decode_replace("\xE2\x82" "a"), r + "a");
  EXPECT_EQ(uni::decode_replace("\xF0\x9F\x98"), r);
  EXPECT_EQ(uni::decode_replace("\xC0\xAF"), r + r);             // overlong: each byte
  EXPECT_EQ(uni::decode_replace("\xED\xA0\x80"), r + r + r);     // surrogate: each byte
  EXPECT_EQ(uni::decode_replace("\xF4\x90\x80\x80"), r + r + r + r);
  EXPECT_EQ(uni::decode_replace("\xFF\xFE"), r + r);
  EXPECT_EQ(uni::decode_replace("\xE2\x82\xAC"), "\xE2\x82\xAC");
}

TEST(TokenizerUnicode, PythonStripAndLowercase) {
  EXPECT_EQ(uni::py_strip(" \t\x1c a b \xE3\x80\x80"), "a b");  // \x1c and U+3000 are str.isspace()
  EXPECT_EQ(uni::lowercase("ÀB\xCE\xA3"), "àb\xCF\x83");           // Σ -> σ without context
  EXPECT_EQ(uni::nfc("e\xCC\x81"), "\xC3\xA9");
}

class TinyTokenizers : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(gill::test::temp_dir("tok_tiny"));
    write_tiny_opt_tokenizer(*dir_ / "opt", 400);
    write_tiny_clip_tokenizer(*dir_ / "clip", 600);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path* dir_;
};
fs::path* TinyTokenizers::dir_ = nullptr;

TEST_F(TinyTokenizers, OptLayoutAndRoundTrip) {
  const auto tok = load_tokenizer(*dir_ / "opt");
  EXPECT_EQ(tok->kind(), "gpt2");
  EXPECT_EQ(tok->size(), 400u);
  EXPECT_EQ(tok->token_to_id("<s>"), 0);
  EXPECT_EQ(tok->token_to_id("<pad>"), 1);
  EXPECT_EQ(tok->token_to_id("</s>"), 2);
  EXPECT_EQ(tok->token_to_id("<unk>"), 3);
  EXPECT_EQ(tok->token_to_id("!"), 4);
  EXPECT_EQ(tok->bos_id(), 2);
  const Ids ids = tok->encode("The lighthouse keeper", true);
  EXPECT_EQ(ids.front(), 2);
  EXPECT_LT(ids.size(), 12u);  // merges learnt from the text compress it
  EXPECT_EQ(tok->decode(ids, true), "The lighthouse keeper");
  EXPECT_EQ(tok->decode(ids, false), "</s>The lighthouse keeper");
  const std::string odd = "Zebra 12345 ñandú 😀\n\n  x";
  EXPECT_EQ(tok->decode(tok->encode(odd, false), true), odd);
  // Deterministic: a second run writes identical files.
  const fs::path again = *dir_ / "opt2";
  write_tiny_opt_tokenizer(again, 400);
  for (const char* f : {"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"}) {
    std::ifstream a(*dir_ / "opt" / f), b(again / f);
    std::string sa((std::istreambuf_iterator<char>(a)), {}), sb((std::istreambuf_iterator<char>(b)), {});
    EXPECT_EQ(sa, sb) << f;
  }
}

TEST_F(TinyTokenizers, ClipLayoutAndPadding) {
  const auto tok = load_tokenizer(*dir_ / "clip");
  EXPECT_EQ(tok->kind(), "clip");
  EXPECT_EQ(tok->size(), 600u);
  EXPECT_EQ(tok->bos_id(), 598);
  EXPECT_EQ(tok->eos_id(), 599);
  EXPECT_EQ(tok->pad_id(), 599);
  EXPECT_EQ(tok->token_to_id("a</w>"), *tok->token_to_id("a") + 256);
  const Ids ids = tok->encode("The  Lighthouse\tkeeper!");
  EXPECT_EQ(ids.front(), 598);
  EXPECT_EQ(ids.back(), 599);
  EXPECT_EQ(tok->decode(ids, true), "the lighthouse keeper!");
  const Ids padded = encode_sd77(*tok, std::string(500, 'x') + " end");
  ASSERT_EQ(padded.size(), 77u);
  EXPECT_EQ(padded.front(), 598);
  EXPECT_EQ(padded.back(), 599);
}

TEST_F(TinyTokenizers, InvalidUtf8IsReplacedNeverCrashes) {
  const auto tok = load_tokenizer(*dir_ / "opt");
  const std::string bad = "ok \xFF\xC3 \xE2\x82 end\x80";
  const Ids ids = tok->encode(bad, false);
  // Same ids as the U+FFFD-replaced text (Python would never see the invalid bytes).
  EXPECT_EQ(ids, tok->encode(uni::decode_replace(bad), false));
  EXPECT_EQ(tok->decode(ids, true), uni::decode_replace(bad));
  // A lone byte token that is not valid UTF-8 on its own decodes to U+FFFD.
  const Ids byte = {*tok->token_to_id(byte_to_unicode()[0xE2])};
  EXPECT_EQ(tok->decode(byte, true), "\xEF\xBF\xBD");
  const auto clip = load_tokenizer(*dir_ / "clip");
  EXPECT_EQ(clip->decode(clip->encode(bad), true).find('\xFF'), std::string::npos);
}

TEST_F(TinyTokenizers, Errors) {
  const auto tok = load_tokenizer(*dir_ / "opt");
  try {
    tok->decode({5, 400}, true);
    FAIL() << "expected an error";
  } catch (const gill::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_STREQ(e.what(), "token id 400 is out of range [0, 400)");
  }
  try {
    load_tokenizer(*dir_ / "missing");
    FAIL() << "expected an error";
  } catch (const gill::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  try {
    load_tokenizer(*dir_ / "opt", "bpe");
    FAIL() << "expected an error";
  } catch (const gill::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown tokenizer kind 'bpe'"), std::string::npos) << e.what();
  }
}

TEST_F(TinyTokenizers, GillTokensOnTinyVocab) {
  auto tok = load_tokenizer(*dir_ / "opt");
  const Ids img = add_gill_tokens(*tok);
  EXPECT_EQ(tok->token_to_id("<|image|>"), 400);
  EXPECT_EQ(img, (Ids{401, 402, 403, 404, 405, 406, 407, 408}));
  EXPECT_EQ(tok->size(), 409u);
  const Ids ids = tok->encode("a [IMG0] b<|image|>", false);
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(ids[1], 401);
  EXPECT_EQ(ids[3], 400);
  EXPECT_EQ(tok->decode(ids, true), "a [IMG0] b");
  EXPECT_EQ(tok->decode(ids, false), "a [IMG0] b <|image|>");
}

// ---- SentencePiece through the shim ---------------------------------------------------------------------

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
  ::pclose(p);
  return out;
}

TEST(TokenizerSentencePiece, MatchesSpmEncode) {
#if GILL_ASAN
  GTEST_SKIP() << "the SentencePiece shim needs RTLD_DEEPBIND, which AddressSanitizer does not support";
#endif
  if (std::system("command -v spm_train >/dev/null 2>&1 && command -v spm_encode >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "spm_train / spm_encode not installed (Debian package sentencepiece)";
  ASSERT_TRUE(find_spm_shim().has_value()) << "libgill_spm.so not found";
  const fs::path dir = gill::test::temp_dir("tok_spm");
  {
    std::ofstream f(dir / "train.txt");
    f << english_sample_text();
  }
  const std::string train = "spm_train --input=" + (dir / "train.txt").string() + " --model_prefix=" +
                            (dir / "tokenizer").string() +
                            " --vocab_size=300 --model_type=bpe --character_coverage=1.0 --minloglevel=2 >/dev/null 2>&1";
  ASSERT_EQ(std::system(train.c_str()), 0) << train;
  const auto tok = load_tokenizer(dir, "sp");
  EXPECT_EQ(tok->kind(), "sp");
  EXPECT_EQ(tok->size(), 300u);
  const std::vector<std::string> lines = {"The lighthouse keeper walked down to the harbour.",
                                          "Visitors often ask who she was, and why!", "zebra 42 quixotic"};
  {
    std::ofstream f(dir / "in.txt");
    for (const auto& l : lines) f << l << "\n";
  }
  const std::string ref = run("spm_encode --model=" + (dir / "tokenizer.model").string() +
                              " --output_format=id < " + (dir / "in.txt").string());
  std::istringstream rs(ref);
  std::string ref_line;
  for (const auto& l : lines) {
    ASSERT_TRUE(std::getline(rs, ref_line));
    std::istringstream ids_s(ref_line);
    Ids want;
    for (int64_t v; ids_s >> v;) want.push_back(v);
    EXPECT_EQ(tok->encode(l, false), want) << l;
    // Characters the 300-piece model never saw ('!', 'z', digits) decode as SentencePiece's unknown mark.
    if (&l == &lines[0]) EXPECT_EQ(tok->decode(tok->encode(l, true), true), l);
    else EXPECT_NE(tok->decode(tok->encode(l, true), true).find("\xE2\x81\x87"), std::string::npos) << l;
  }
  const Ids with_bos = tok->encode("hello", true);
  EXPECT_EQ(with_bos.front(), tok->bos_id());
  auto added = load_tokenizer(dir, "sp");
  const int64_t img = added->add_token("[IMG0]", false);
  EXPECT_EQ(img, 300);
  const Ids ids = added->encode("a [IMG0] b", false);
  EXPECT_NE(std::find(ids.begin(), ids.end(), 300), ids.end());
  fs::remove_all(dir);
}

// ---- gill tokenize --------------------------------------------------------------------------------------

TEST_F(TinyTokenizers, CliEncodeDecode) {
  const auto tok = load_tokenizer(*dir_ / "opt");
  const auto r = gill::test::run_cli({"tokenize", "--tokenizer", (*dir_ / "opt").string()},
                                     "{\"text\": \"The keeper\"}\n{\"text\": \"\"}\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string want =
      nlohmann::json{{"ids", tok->encode("The keeper", true)}}.dump() + "\n" + "{\"ids\":[2]}\n";
  EXPECT_EQ(r.out, want);
  const auto d = gill::test::run_cli({"tokenize", "--tokenizer", (*dir_ / "opt").string(), "--decode"},
                                     nlohmann::json{{"ids", tok->encode("The keeper", true)}}.dump() + "\n");
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_EQ(d.out, "{\"text\":\"The keeper\"}\n");
  const auto p = gill::test::run_cli({"tokenize", "--tokenizer", (*dir_ / "clip").string(), "--pad-77"},
                                     "{\"text\": \"a\"}\n");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_EQ(nlohmann::json::parse(p.out)["ids"].size(), 77u);
}

TEST_F(TinyTokenizers, CliBadJsonLine) {
  const auto r = gill::test::run_cli({"tokenize", "--tokenizer", (*dir_ / "opt").string()},
                                     "{\"text\": \"ok\"}\n{\"text\": oops}\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("stdin line 2: invalid JSON"), std::string::npos) << r.err;
  const auto w = gill::test::run_cli({"tokenize", "--tokenizer", (*dir_ / "opt").string()}, "{\"ids\": [1]}\n");
  EXPECT_NE(w.exit_code, 0);
  EXPECT_NE(w.err.find("stdin line 1: expected {\"text\": \"...\"}"), std::string::npos) << w.err;
}

}  // namespace
}  // namespace gill::tokenizer

namespace gill::tokenizer {
namespace {

// The reference's bpe() (transformers' GPT2Tokenizer.bpe), quadratic and string-based: repeatedly the lowest-
// ranked adjacent pair, every occurrence merged left to right. Bpe's heap-based loop must give the same symbols.
std::vector<std::string> reference_bpe(std::vector<std::string> word,
                                       const std::map<std::pair<std::string, std::string>, size_t>& ranks) {
  while (word.size() > 1) {
    size_t best = SIZE_MAX;
    std::pair<std::string, std::string> pair;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = ranks.find({word[i], word[i + 1]});
      if (it != ranks.end() && it->second < best) best = it->second, pair = it->first;
    }
    if (best == SIZE_MAX) break;
    std::vector<std::string> next;
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == pair.first && word[i + 1] == pair.second) {
        next.push_back(pair.first + pair.second);
        i += 2;
      } else {
        next.push_back(word[i++]);
      }
    }
    word.swap(next);
  }
  return word;
}

TEST(TokenizerBpe, HeapMergeLoopEqualsTheReferenceLoop) {
  // A vocabulary over a 3-letter alphabet where repeated and overlapping pairs are common ("aaa", "abab").
  std::vector<std::pair<std::string, std::string>> merges = {
      {"a", "a"}, {"a", "b"}, {"b", "a"}, {"aa", "a"}, {"ab", "ab"}, {"c", "a"}, {"aa", "aa"}, {"b", "b"},
      {"ba", "b"}, {"ca", "aa"}, {"abab", "a"}, {"bb", "a"}, {"a", "c"}, {"aaa", "c"}, {"ac", "ab"}};
  std::vector<std::pair<std::string, int64_t>> vocab = {{"a", 0}, {"b", 1}, {"c", 2}};
  std::map<std::pair<std::string, std::string>, size_t> ranks;
  for (size_t r = 0; r < merges.size(); ++r) {
    ranks.emplace(merges[r], r);
    vocab.emplace_back(merges[r].first + merges[r].second, static_cast<int64_t>(vocab.size()));
  }
  std::map<std::string, int64_t> id_of(vocab.begin(), vocab.end());
  // Byte-level: these ASCII letters map to themselves in bytes_to_unicode.
  const Bpe bpe(vocab, merges, "", -1);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 3000; ++trial) {
    const size_t len = 1 + rng() % (trial < 2900 ? 24 : 3000);
    std::string text;
    std::vector<std::string> chars;
    for (size_t i = 0; i < len; ++i) {
      const char c = "aaabbc"[rng() % 6];
      text.push_back(c);
      chars.emplace_back(1, c);
    }
    Ids want;
    for (const auto& s : reference_bpe(chars, ranks)) want.push_back(id_of.at(s));
    Ids got;
    bpe.encode_word(text, got);
    ASSERT_EQ(got, want) << "word '" << text << "'";
  }
}

// A 200 kB word without spaces (base64 blobs, minified data): encodes (the old quadratic loop took minutes) and
// decodes back to itself.
TEST_F(TinyTokenizers, VeryLongWordRoundTrips) {
  auto tok = load_tokenizer(*dir_ / "opt");
  std::string text;
  std::mt19937 rng(3);
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 200000; ++i) text.push_back(alphabet[rng() % alphabet.size()]);
  const Ids ids = tok->encode(text, false);
  EXPECT_LT(ids.size(), text.size());
  EXPECT_EQ(tok->decode(ids, true), text);
}

}  // namespace
}  // namespace gill::tokenizer
