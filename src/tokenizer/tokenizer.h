// Tokenizers, exact to the Hugging Face reference: byte-level BPE (GPT-2 / OPT, slow GPT2Tokenizer of
// transformers 4.30.2), CLIP BPE (CLIPTokenizerFast, or the slow no-ftfy fallbacks), and SentencePiece (through
// the dlopen()ed libgill_spm shim). Torch-free. Text is UTF-8; invalid UTF-8 in encode() input is replaced by
// U+FFFD per Python's bytes.decode("utf-8", errors="replace") before tokenising (Python strings cannot hold
// invalid UTF-8, so this is the only faithful choice); decode() output is always valid UTF-8.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gill::tokenizer {

// How whitespace next to added tokens is treated.
enum class AddedTokenStrip {
  kLegacy430,  // transformers <= 4.33 slow tokenize(): tokens added as plain str strip both neighbours (GILL's env)
  kModern,     // transformers >= 4.34 / fast: only the AddedToken lstrip/rstrip flags (all false here)
};

// CLIP text normalisation.
enum class ClipMode {
  kFast,         // CLIPTokenizerFast = slow-with-ftfy on ftfy-clean text: NFC, \s+ -> ' ', lowercase (golden `ids`)
  kNoFtfyPre431, // slow CLIPTokenizer without ftfy, transformers < 4.31 (GILL's 4.30.2): BasicTokenizer fallback
  kNoFtfy431,    // slow CLIPTokenizer without ftfy, transformers >= 4.31
};

struct LoadOptions {
  std::string kind = "auto";  // auto | opt | gpt2 | clip | sp
  AddedTokenStrip strip = AddedTokenStrip::kLegacy430;
  ClipMode clip_mode = ClipMode::kFast;
};

class Tokenizer {
 public:
  virtual ~Tokenizer();
  virtual std::string kind() const = 0;  // "gpt2" (byte-level BPE, OPT too), "clip" or "sp"
  // tokenizer(text, add_special_tokens=...).input_ids, no truncation or padding.
  virtual std::vector<int64_t> encode(const std::string& text, bool add_special_tokens = true) const = 0;
  // tokenizer.decode(ids, skip_special_tokens=...) with clean_up_tokenization_spaces=True (4.30.2 defaults).
  // Throws kInvalidArgument for an id outside [0, size()).
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const = 0;
  virtual std::optional<int64_t> token_to_id(const std::string& token) const = 0;
  virtual std::string id_to_token(int64_t id) const = 0;  // throws kInvalidArgument when out of range
  virtual size_t size() const = 0;                       // len(tokenizer), added tokens included
  virtual int64_t bos_id() const = 0;                    // -1 when the tokenizer has none
  virtual int64_t eos_id() const = 0;
  virtual int64_t pad_id() const = 0;
  virtual std::vector<int64_t> special_ids() const = 0;  // all_special_ids (what skip_special_tokens drops)
  // add_special_tokens({role: token}) when special, add_tokens(token) otherwise; the token is passed as a plain
  // str, as GILL does. Returns its id (the existing one when already known). Not thread-safe with encode().
  virtual int64_t add_token(const std::string& token, bool special) = 0;
};

// Loads a tokenizer folder (vocab.json + merges.txt [+ special_tokens_map.json, tokenizer_config.json,
// added_tokens.json], GPT-2's encoder.json + vocab.bpe, or tokenizer.model). kind "auto" reads
// tokenizer_config.json's tokenizer_class, else looks at the files present.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir, const std::string& kind = "auto");
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir, const LoadOptions& options);

// GILL's load_gill: add_special_tokens({"cls_token": "<|image|>"}), then add_tokens("[IMG0]".."[IMG7]").
// Returns the ids of [IMG0]..[IMG7] (50266..50273 on the real OPT vocabulary).
std::vector<int64_t> add_gill_tokens(Tokenizer& tok);

// SD pipelines' tokenizer(text, padding="max_length", max_length=77, truncation=True): [bos] + the first
// max_length-2 content ids + [eos], right-padded with pad_id() to max_length.
std::vector<int64_t> encode_padded(const Tokenizer& tok, const std::string& text, size_t max_length = 77);
inline std::vector<int64_t> encode_sd77(const Tokenizer& tok, const std::string& text) {
  return encode_padded(tok, text, 77);
}

// Where the SentencePiece shim (libgill_spm.so) is looked for, in order: $GILL_SPM_LIB, next to the running
// executable, ../lib and ../lib/gill from it, the build tree it was built in. Returns the first that exists.
std::optional<std::filesystem::path> find_spm_shim();

}  // namespace gill::tokenizer
