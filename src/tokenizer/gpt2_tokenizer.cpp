// GPT-2 / OPT byte-level BPE: the slow GPT2Tokenizer of transformers 4.30.2 (tokenization_gpt2.py,
// tokenization_utils.py tokenize()/_decode), gill-spec §3.
#include <filesystem>

#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace gill::tokenizer {

namespace fs = std::filesystem;

namespace {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class Gpt2Tokenizer final : public BpeTokenizerBase {
 public:
  Gpt2Tokenizer(const fs::path& dir, const std::string& flavor, const LoadOptions& options) : regex_(kGpt2Pattern) {
    strip_ = options.strip;
    const bool openai_names = !fs::exists(dir / "vocab.json") && fs::exists(dir / "encoder.json");
    const fs::path vocab_path = dir / (openai_names ? "encoder.json" : "vocab.json");
    const fs::path merges_path = dir / (openai_names ? "vocab.bpe" : "merges.txt");
    GILL_CHECK(fs::exists(vocab_path), ErrorCode::kNotFound, "missing ", vocab_path.string());
    GILL_CHECK(fs::exists(merges_path), ErrorCode::kNotFound, "missing ", merges_path.string());
    const auto vocab = read_vocab_json(vocab_path);
    const auto merges = read_merges(merges_path);
    const bool has_config = fs::exists(dir / "tokenizer_config.json");
    SpecialConfig config = read_special_config(dir);
    // GPT2Tokenizer's constructor defaults; OPT's published config overrides them (bos = eos = unk = </s>).
    std::vector<std::pair<std::string, std::string>> defaults;
    if (flavor == "opt" && !has_config) {
      defaults = {{"bos_token", "</s>"}, {"eos_token", "</s>"}, {"unk_token", "</s>"}, {"pad_token", "<pad>"}};
      config.add_bos_token = true;
    } else {
      defaults = {{"bos_token", "<|endoftext|>"}, {"eos_token", "<|endoftext|>"}, {"unk_token", "<|endoftext|>"}};
    }
    add_bos_ = config.add_bos_token;
    init(vocab, config, defaults);
    bpe_ = std::make_unique<Bpe>(vocab, merges, "", unk_);
  }

  std::string kind() const override { return "gpt2"; }

  std::vector<int64_t> encode(const std::string& input, bool add_special_tokens) const override {
    const std::string text = uni::decode_replace(input);
    std::vector<int64_t> ids;
    ids.reserve(text.size() / 3 + 2);
    if (add_special_tokens && add_bos_ && bos_ >= 0) ids.push_back(bos_);
    for (const Segment& seg : no_split_.split(text, strip_)) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
        continue;
      }
      regex_.for_each(seg.text, [&](std::string_view piece) { bpe_->encode_word(piece, ids); });
    }
    return ids;
  }

  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override {
    return clean_up_tokenization(decode_chunks(ids, skip_special_tokens, &group_to_string));
  }

 private:
  // GPT2Tokenizer.convert_tokens_to_string with errors="replace".
  static std::string group_to_string(const std::string& tokens) { return uni::decode_replace(unmap_bytes(tokens)); }

  Regex regex_;
  std::unique_ptr<Bpe> bpe_;
  bool add_bos_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> make_gpt2_tokenizer(const fs::path& dir, const std::string& flavor,
                                               const LoadOptions& options) {
  return std::make_unique<Gpt2Tokenizer>(dir, flavor, options);
}

}  // namespace gill::tokenizer
