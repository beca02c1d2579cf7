// Added / special tokens: the no-split set that is cut out of the text before BPE (transformers' Trie.split,
// leftmost-longest), with the whitespace stripping of the slow tokenize() of transformers 4.30.2.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace gill::tokenizer {

struct AddedToken {
  std::string content;
  int64_t id = -1;
  bool lstrip = false, rstrip = false;  // AddedToken flags
  bool plain_str = false;               // added as a plain str: 4.30 strips both neighbours
};

struct Segment {
  std::string_view text;  // a slice of the input (after stripping); for a token, its content
  int64_t id = -1;        // the added token's id, or -1 for ordinary text
};

class AddedVocab {
 public:
  void add(AddedToken token);  // replaces a token with the same content
  bool empty() const { return tokens_.empty(); }
  const AddedToken* find(const std::string& content) const;
  // Splits text into ordinary segments and added tokens; empty ordinary segments are dropped.
  std::vector<Segment> split(std::string_view text, AddedTokenStrip strip) const;

 private:
  std::vector<AddedToken> tokens_;
  std::array<std::vector<size_t>, 256> by_first_;  // token indices by first byte, longest first
};

}  // namespace gill::tokenizer
