// Shared base of the two byte-level BPE tokenizers (GPT-2/OPT and CLIP): vocabulary, special and added tokens,
// the PCRE2 pre-tokeniser, and the pieces of transformers 4.30.2's slow decode().
#pragma once
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer.h"

namespace gill::tokenizer {

// A compiled PCRE2 pattern (UTF + UCP, JIT when available) used like Python's regex.findall.
class Regex {
 public:
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Calls fn(match) for every non-overlapping match of valid UTF-8 `text`, left to right.
  template <typename Fn>
  void for_each(std::string_view text, Fn&& fn) const;

 private:
  // End of the first match at or after `start` (npos when none); its start in *mstart. md: match data.
  size_t match_at(std::string_view text, size_t start, void* md, size_t* mstart) const;
  void* new_match_data() const;
  static void free_match_data(void* md);
  void* code_ = nullptr;  // pcre2_code (8-bit), kept opaque so users need no PCRE2 headers
  bool jit_ = false;
};

template <typename Fn>
void Regex::for_each(std::string_view text, Fn&& fn) const {
  void* md = new_match_data();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t ms = 0;
    const size_t me = match_at(text, pos, md, &ms);
    if (me == std::string::npos) break;
    if (me > ms) fn(text.substr(ms, me - ms));
    pos = me > ms ? me : ms + 1;
  }
  free_match_data(md);
}

// Special-token roles and flags read from tokenizer_config.json and special_tokens_map.json.
struct SpecialConfig {
  std::string tokenizer_class;
  bool add_bos_token = false;
  std::vector<std::pair<std::string, AddedToken>> roles;  // role name ("bos_token", ...) -> token
  std::vector<AddedToken> added;                          // added_tokens.json, ids >= vocab size
  const AddedToken* role(const std::string& name) const;
};
SpecialConfig read_special_config(const std::filesystem::path& dir);

// transformers' clean_up_tokenization (4.30.2).
std::string clean_up_tokenization(std::string text);

class BpeTokenizerBase : public Tokenizer {
 public:
  std::optional<int64_t> token_to_id(const std::string& token) const override;
  std::string id_to_token(int64_t id) const override;
  size_t size() const override { return id_to_tok_.size(); }
  int64_t bos_id() const override { return bos_; }
  int64_t eos_id() const override { return eos_; }
  int64_t pad_id() const override { return pad_; }
  std::vector<int64_t> special_ids() const override { return {special_.begin(), special_.end()}; }
  int64_t add_token(const std::string& token, bool special) override;

 protected:
  // Loads the vocabulary and the configured special / added tokens; `defaults` gives roles the folder omits.
  void init(const std::vector<std::pair<std::string, int64_t>>& vocab, const SpecialConfig& config,
            const std::vector<std::pair<std::string, std::string>>& defaults);
  int64_t role_id(const SpecialConfig& config, const std::string& role) const;
  // Python's `bytes(byte_decoder[c] for c in s)`; characters outside the alphabet pass through as UTF-8.
  static std::string unmap_bytes(std::string_view s);
  // _decode of 4.30.2 up to the clean-up: skip specials, group ordinary tokens, join the chunks with spaces.
  std::string decode_chunks(const std::vector<int64_t>& ids, bool skip_special,
                            std::string (*group_to_string)(const std::string&)) const;

  std::vector<std::string> id_to_tok_;  // every id < size(): base vocabulary, then added tokens
  std::unordered_map<std::string, int64_t> tok_to_id_;
  size_t base_size_ = 0;  // ids >= base_size_ are added tokens (added_tokens_encoder)
  AddedVocab no_split_;
  std::set<int64_t> special_;
  int64_t bos_ = -1, eos_ = -1, pad_ = -1, unk_ = -1;
  AddedTokenStrip strip_ = AddedTokenStrip::kLegacy430;
};

std::unique_ptr<Tokenizer> make_gpt2_tokenizer(const std::filesystem::path& dir, const std::string& flavor,
                                               const LoadOptions& options);
std::unique_ptr<Tokenizer> make_clip_tokenizer(const std::filesystem::path& dir, const LoadOptions& options);
std::unique_ptr<Tokenizer> make_sp_tokenizer(const std::filesystem::path& dir, const LoadOptions& options);

}  // namespace gill::tokenizer
