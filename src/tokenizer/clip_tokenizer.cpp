// CLIP BPE: CLIPTokenizerFast (= slow CLIPTokenizer with ftfy on ftfy-clean text) and the slow tokenizer's
// no-ftfy BasicTokenizer fallbacks of transformers < 4.31 (GILL's 4.30.2) and >= 4.31
// (tokenization_clip.py, tokenization_bert.py BasicTokenizer; HF tokenizers' BertNormalizer/BertPreTokenizer).
#include <filesystem>

#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace gill::tokenizer {

namespace fs = std::filesystem;

namespace {

const char* const kClipPattern =
    R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)";
constexpr size_t kClipMaxMerges = 49152 - 256 - 2;  // bpe_merges[1 : 49152-256-2+1]

bool is_bert_punct(char32_t c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) ||
         (c >= 0x80 && uni::is_punctuation(c));
}

// BertNormalizer: clean_text, handle_chinese_chars, then optionally strip accents and lowercase.
std::string bert_normalize(std::string_view s, bool strip_accents, bool lowercase) {
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    const char32_t c = uni::next_cp(s, i);
    if (c == 0 || c == 0xFFFD) continue;
    if (c == '\t' || c == '\n' || c == '\r') {
      out.push_back(' ');
      continue;
    }
    if (c < 0x80 ? (c < 0x20 || c == 0x7F) : uni::is_control_other(c)) continue;
    if (uni::is_white_space(c)) {
      out.push_back(' ');
    } else if (c >= 0x3400 && uni::is_cjk_ideograph(c)) {
      out.push_back(' ');
      uni::append_utf8(out, c);
      out.push_back(' ');
    } else {
      uni::append_utf8(out, c);
    }
  }
  if (strip_accents) {
    const std::string d = uni::nfd(out);
    out.clear();
    for (size_t i = 0; i < d.size();) {
      const size_t start = i;
      const char32_t c = uni::next_cp(d, i);
      if (c >= 0x300 && uni::is_nonspacing_mark(c)) continue;
      out.append(d, start, i - start);
    }
  }
  return lowercase ? uni::lowercase(out) : out;
}

// Splits on White_Space; when isolate_punct, every punctuation character is its own word (BertPreTokenizer).
template <typename Fn>
void split_words(std::string_view s, bool isolate_punct, Fn&& fn) {
  size_t start = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t at = i;
    const char32_t c = uni::next_cp(s, i);
    if (uni::is_white_space(c)) {
      if (at > start) fn(s.substr(start, at - start));
      start = i;
    } else if (isolate_punct && is_bert_punct(c)) {
      if (at > start) fn(s.substr(start, at - start));
      fn(s.substr(at, i - at));
      start = i;
    }
  }
  if (start < s.size()) fn(s.substr(start));
}

class ClipTokenizer final : public BpeTokenizerBase {
 public:
  ClipTokenizer(const fs::path& dir, const LoadOptions& options) : regex_(kClipPattern), mode_(options.clip_mode) {
    strip_ = options.strip;
    GILL_CHECK(fs::exists(dir / "vocab.json"), ErrorCode::kNotFound, "missing ", (dir / "vocab.json").string());
    GILL_CHECK(fs::exists(dir / "merges.txt"), ErrorCode::kNotFound, "missing ", (dir / "merges.txt").string());
    const auto vocab = read_vocab_json(dir / "vocab.json");
    auto merges = read_merges(dir / "merges.txt");
    if (merges.size() > kClipMaxMerges) merges.resize(kClipMaxMerges);
    const SpecialConfig config = read_special_config(dir);
    init(vocab, config,
         {{"bos_token", "<|startoftext|>"}, {"eos_token", "<|endoftext|>"}, {"unk_token", "<|endoftext|>"},
          {"pad_token", "<|endoftext|>"}});
    bpe_ = std::make_unique<Bpe>(vocab, merges, "</w>", unk_);
  }

  std::string kind() const override { return "clip"; }

  std::vector<int64_t> encode(const std::string& input, bool add_special_tokens) const override {
    std::string text = uni::decode_replace(input);
    std::vector<int64_t> ids;
    if (add_special_tokens) ids.push_back(bos_);
    auto bpe_words = [&](std::string_view word) {
      regex_.for_each(word, [&](std::string_view piece) { bpe_->encode_word(piece, ids); });
    };
    if (mode_ == ClipMode::kFast) {
      text = fast_normalize(text);
    } else if (mode_ == ClipMode::kNoFtfy431) {
      text = uni::lowercase(uni::nfc(bert_normalize(text, false, false)));
    }
    for (const Segment& seg : no_split_.split(text, strip_)) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
      } else if (mode_ == ClipMode::kNoFtfyPre431) {
        const std::string norm = bert_normalize(seg.text, true, true);
        split_words(norm, true, bpe_words);
      } else {
        split_words(seg.text, false, bpe_words);
      }
    }
    if (add_special_tokens) ids.push_back(eos_);
    return ids;
  }

  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override {
    return clean_up_tokenization(decode_chunks(ids, skip_special_tokens, &group_to_string));
  }

 private:
  // NFC, every run of White_Space to one space, lowercase.
  static std::string fast_normalize(const std::string& in) {
    const std::string s = uni::nfc(in);
    std::string out;
    out.reserve(s.size());
    bool in_space = false;
    for (size_t i = 0; i < s.size();) {
      const size_t at = i;
      const char32_t c = uni::next_cp(s, i);
      if (uni::is_white_space(c)) {
        if (!in_space) out.push_back(' ');
        in_space = true;
      } else {
        out.append(s, at, i - at);
        in_space = false;
      }
    }
    return uni::lowercase(out);
  }

  // CLIPTokenizer.convert_tokens_to_string: bytes, decode(errors="replace"), "</w>" -> " ", strip().
  static std::string group_to_string(const std::string& tokens) {
    const std::string text = uni::decode_replace(unmap_bytes(tokens));
    std::string out;
    out.reserve(text.size());
    size_t pos = 0;
    for (size_t hit; (hit = text.find("</w>", pos)) != std::string::npos; pos = hit + 4) {
      out.append(text, pos, hit - pos);
      out.push_back(' ');
    }
    out.append(text, pos, std::string::npos);
    return std::string(uni::py_strip(out));
  }

  Regex regex_;
  ClipMode mode_;
  std::unique_ptr<Bpe> bpe_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_clip_tokenizer(const fs::path& dir, const LoadOptions& options) {
  return std::make_unique<ClipTokenizer>(dir, options);
}

}  // namespace gill::tokenizer
