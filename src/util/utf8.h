// UTF-8 validation for text that enters the engine (prompts, stop strings). The tokenizers themselves replace
// invalid bytes by U+FFFD (as Python's errors="replace" would); the API refuses such text instead, like the
// reference, whose str arguments cannot hold invalid UTF-8 (argv bytes become surrogates that the tokenizer's
// text.encode("utf-8") rejects).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace gill::detail {

// Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or std::string_view::npos when `text` is valid.
size_t first_invalid_utf8(std::string_view text);

// Throws kInvalidArgument "WHAT is not valid UTF-8 (byte 0xff at offset 3)" when `text` is not valid UTF-8.
void require_utf8(std::string_view text, const std::string& what);

}  // namespace gill::detail
