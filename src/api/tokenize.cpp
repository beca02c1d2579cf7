// gill::Tokenizer (include/gill/tokenizer.h) over tokenizer::load_tokenizer.
#include <gill/tokenizer.h>

#include "api/boundary.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace gill {

struct Tokenizer::Impl {
  std::unique_ptr<tokenizer::Tokenizer> tok;
};

Tokenizer::Tokenizer(const std::string& dir, const TokenizerOptions& options) {
  detail::api_boundary("gill::Tokenizer", [&] {
    tokenizer::LoadOptions lo;
    lo.kind = options.kind;
    lo.strip =
        options.modern_added_tokens ? tokenizer::AddedTokenStrip::kModern : tokenizer::AddedTokenStrip::kLegacy430;
    if (options.clip_mode == "fast") {
      lo.clip_mode = tokenizer::ClipMode::kFast;
    } else if (options.clip_mode == "noftfy-pre431") {
      lo.clip_mode = tokenizer::ClipMode::kNoFtfyPre431;
    } else if (options.clip_mode == "noftfy-431") {
      lo.clip_mode = tokenizer::ClipMode::kNoFtfy431;
    } else {
      detail::fail(ErrorCode::kInvalidArgument, detail::str_cat("TokenizerOptions.clip_mode = \"", options.clip_mode,
                                                                "\": must be one of fast, noftfy-pre431, noftfy-431"));
    }
    auto impl = std::make_unique<Impl>();
    impl->tok = tokenizer::load_tokenizer(dir, lo);
    if (options.gill_tokens) tokenizer::add_gill_tokens(*impl->tok);
    impl_ = std::move(impl);
  });
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_special_tokens) const {
  return detail::api_boundary("gill::Tokenizer::encode", [&] { return impl_->tok->encode(text, add_special_tokens); });
}

std::vector<int64_t> Tokenizer::encode_sd77(const std::string& text) const {
  return detail::api_boundary("gill::Tokenizer::encode_sd77",
                              [&] { return tokenizer::encode_sd77(*impl_->tok, text); });
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  return detail::api_boundary("gill::Tokenizer::decode", [&] { return impl_->tok->decode(ids, skip_special_tokens); });
}

}  // namespace gill
