#include "util/utf8.h"

#include <cstdint>

#include "util/error.h"

namespace gill::detail {

size_t first_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte (RFC 3629 table)
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // no overlong forms
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;  // <= U+10FFFF
    } else {
      return i;
    }
    if (n - i < len) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    i += len;
  }
  return std::string_view::npos;
}

void require_utf8(std::string_view text, const std::string& what) {
  const size_t at = first_invalid_utf8(text);
  if (at == std::string_view::npos) return;
  static const char* hex = "0123456789abcdef";
  const auto b = static_cast<uint8_t>(text[at]);
  fail(ErrorCode::kInvalidArgument,
       str_cat(what, " is not valid UTF-8 (byte 0x", hex[b >> 4], hex[b & 15], " at offset ", at, ")"));
}

}  // namespace gill::detail
