// gill::Tokenizer — the tokenizers behind gill (no torch here): OPT/GPT-2 byte-level BPE, CLIP BPE and
// SentencePiece, loaded from a Hugging Face tokenizer folder. `gill tokenize` is a thin wrapper over this class.
#pragma once
#include <gill/error.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gill {

struct TokenizerOptions {
  std::string kind = "auto";        // auto | opt | gpt2 | clip | sp (auto: tokenizer_config.json, else the files)
  std::string clip_mode = "fast";   // CLIP normalisation: fast (CLIPTokenizerFast) | noftfy-pre431 (GILL's
                                    // transformers 4.30.2 without ftfy) | noftfy-431
  bool modern_added_tokens = false; // keep whitespace around added tokens (transformers >= 4.34), not 4.30.2's strip
  bool gill_tokens = false;         // add GILL's <|image|> and [IMG0]..[IMG7] as load_gill does
};

class Tokenizer {
 public:
  // Throws kNotFound / kFormat naming the file; kInvalidArgument naming the TokenizerOptions field.
  explicit Tokenizer(const std::string& dir, const TokenizerOptions& options = {});
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  std::vector<int64_t> encode(const std::string& text, bool add_special_tokens = true) const;
  // Stable Diffusion's form: at most 75 content tokens, BOS/EOS, padded to 77.
  std::vector<int64_t> encode_sd77(const std::string& text) const;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gill
