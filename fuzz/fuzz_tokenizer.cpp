// libFuzzer target for the tokenizers: arbitrary bytes are encoded by a tiny OPT (with GILL's tokens) or CLIP
// tokenizer (in each of its modes), decoded back, and also read as id lists. Nothing may crash; decode() output
// must be valid UTF-8 and ids must stay in range. Run: tools/fuzz.sh tokenizer SECONDS.
#include <gill/error.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/bpe_train.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

using gill::tokenizer::Tokenizer;
std::vector<std::unique_ptr<Tokenizer>>* g_toks = nullptr;

void check(const Tokenizer& tok, const std::string& text) {
  const auto ids = tok.encode(text, true);
  for (const int64_t id : ids)
    if (id < 0 || id >= static_cast<int64_t>(tok.size())) std::abort();
  for (const bool skip : {true, false})
    if (!gill::tokenizer::uni::is_valid_utf8(tok.decode(ids, skip))) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("gill_fuzz_tok_" + std::to_string(::getpid()));
  gill::tokenizer::write_tiny_opt_tokenizer(dir / "opt", 420);
  gill::tokenizer::write_tiny_clip_tokenizer(dir / "clip", 640);
  g_toks = new std::vector<std::unique_ptr<Tokenizer>>();
  auto opt = gill::tokenizer::load_tokenizer(dir / "opt");
  gill::tokenizer::add_gill_tokens(*opt);
  g_toks->push_back(std::move(opt));
  for (auto mode : {gill::tokenizer::ClipMode::kFast, gill::tokenizer::ClipMode::kNoFtfyPre431,
                    gill::tokenizer::ClipMode::kNoFtfy431}) {
    gill::tokenizer::LoadOptions o;
    o.clip_mode = mode;
    g_toks->push_back(gill::tokenizer::load_tokenizer(dir / "clip", o));
  }
  fs::remove_all(dir);
  return 0;
}

// The first byte picks the tokenizer (one per run: four per run made each run four times as slow under ASan, for
// the same coverage); the rest is the text, and read two bytes at a time, the id list.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto& tok = *(*g_toks)[data[0] % g_toks->size()];
  ++data;
  --size;
  const std::string text(reinterpret_cast<const char*>(data), size);
  check(tok, text);
  std::vector<int64_t> ids;
  for (size_t i = 0; i + 1 < size; i += 2) ids.push_back((data[i] | (data[i + 1] << 8)) % (tok.size() + 2));
  try {
    if (!gill::tokenizer::uni::is_valid_utf8(tok.decode(ids, size % 2 == 0))) std::abort();
  } catch (const gill::Error& e) {
    if (e.code() != gill::ErrorCode::kInvalidArgument) std::abort();  // only out-of-range ids may throw
  }
  return 0;
}
