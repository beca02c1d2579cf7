// Byte-level BPE core shared by the GPT-2/OPT and CLIP tokenizers: the bytes_to_unicode alphabet, vocab.json /
// merges.txt readers, and the rank-ordered merge loop with a word cache.
// Ported from GPT-2's encoder.py / transformers' tokenization_gpt2.py and tokenization_clip.py (bpe()).
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gill::tokenizer {

// GPT-2 bytes_to_unicode(): UTF-8 of the code point each byte maps to.
const std::array<std::string, 256>& byte_to_unicode();
// The inverse: code point -> byte, or -1 when the code point is not in the alphabet.
int unicode_to_byte(char32_t cp);

// vocab.json ({token: id}); throws kFormat / kNotFound with the path.
std::vector<std::pair<std::string, int64_t>> read_vocab_json(const std::filesystem::path& path);
// merges.txt: drops a leading "#version" line and blank lines; each line is "a b".
std::vector<std::pair<std::string, std::string>> read_merges(const std::filesystem::path& path);
std::string read_text_file(const std::filesystem::path& path);

class Bpe {
 public:
  // end_of_word_suffix: "" (GPT-2) or "</w>" (CLIP), appended to the last symbol of each word before merging.
  Bpe(const std::vector<std::pair<std::string, int64_t>>& vocab,
      const std::vector<std::pair<std::string, std::string>>& merges, std::string end_of_word_suffix, int64_t unk_id);

  // Appends the ids of one pre-token (raw UTF-8 bytes, mapped through bytes_to_unicode here).
  void encode_word(std::string_view bytes, std::vector<int64_t>& out) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  // (left symbol, right symbol) -> merge, open addressing with linear probing in one flat array: the lookup in
  // the merge loop (and each insert at load) touches one cache line, where std::unordered_map chased 2-3
  // pointers (the symbol and merge tables were 60 % of a 50k-merge vocabulary's load time).
  class MergeTable {
   public:
    void reserve(size_t n);
    void insert_or_assign(uint64_t key, Merge m);  // a later duplicate wins, as in dict(zip(...))
    const Merge* find(uint64_t key) const;

   private:
    struct Slot {
      uint64_t key;
      Merge merge;
    };
    static constexpr uint64_t kEmpty = ~uint64_t(0);  // never a key: symbols are non-negative int32
    void grow();
    std::vector<Slot> slots_;
    size_t size_ = 0;
    size_t mask_ = 0;
  };
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  void merge_loop(std::vector<int32_t>& word) const;

  std::string suffix_;
  int64_t unk_id_;
  std::vector<int64_t> sym_vocab_;  // symbol -> vocab id (unk when not in the vocab)
  std::array<int32_t, 256> byte_sym_{}, byte_sym_eow_{};
  MergeTable merges_;
  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache_;
};

}  // namespace gill::tokenizer
