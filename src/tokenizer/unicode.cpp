#include "tokenizer/unicode.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <vector>

#include "util/error.h"

namespace gill::tokenizer::uni {

namespace {

// Length of the well-formed sequence started by lead byte b (0 = not a lead byte), and the allowed range of the
// second byte (Unicode Table 3-7).
struct Lead {
  int len;
  uint8_t lo, hi;
};
Lead lead_info(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b < 0xC2) return {0, 0, 0};
  if (b < 0xE0) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b < 0xF0) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b < 0xF4) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// Length of the valid sequence at s[i], or -(bytes of the maximal ill-formed subpart) when invalid.
int check_at(std::string_view s, size_t i) {
  const auto b = static_cast<uint8_t>(s[i]);
  const Lead l = lead_info(b);
  if (l.len == 0) return -1;
  if (l.len == 1) return 1;
  for (int k = 1; k < l.len; ++k) {
    if (i + k >= s.size()) return -k;
    const auto c = static_cast<uint8_t>(s[i + k]);
    const uint8_t lo = k == 1 ? l.lo : 0x80, hi = k == 1 ? l.hi : 0xBF;
    if (c < lo || c > hi) return -k;
  }
  return l.len;
}

std::u16string to_u16(const std::string& s) {
  std::u16string out(s.size() + 1, u'\0');
  int32_t len = 0;
  UErrorCode st = U_ZERO_ERROR;
  u_strFromUTF8(reinterpret_cast<UChar*>(out.data()), static_cast<int32_t>(out.size()), &len, s.data(),
                static_cast<int32_t>(s.size()), &st);
  GILL_CHECK(U_SUCCESS(st), ErrorCode::kInternal, "ICU u_strFromUTF8 failed: ", u_errorName(st));
  out.resize(len);
  return out;
}

std::string to_u8(const std::u16string& s) {
  std::string out(s.size() * 3 + 1, '\0');
  int32_t len = 0;
  UErrorCode st = U_ZERO_ERROR;
  u_strToUTF8(out.data(), static_cast<int32_t>(out.size()), &len, reinterpret_cast<const UChar*>(s.data()),
              static_cast<int32_t>(s.size()), &st);
  GILL_CHECK(U_SUCCESS(st), ErrorCode::kInternal, "ICU u_strToUTF8 failed: ", u_errorName(st));
  out.resize(len);
  return out;
}

bool is_ascii(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

std::string normalize(const std::string& s, const UNormalizer2* n) {
  if (is_ascii(s)) return s;
  const std::u16string in = to_u16(s);
  UErrorCode st = U_ZERO_ERROR;
  const int32_t need = unorm2_normalize(n, reinterpret_cast<const UChar*>(in.data()), static_cast<int32_t>(in.size()),
                                        nullptr, 0, &st);
  std::u16string out(need, u'\0');
  st = U_ZERO_ERROR;
  unorm2_normalize(n, reinterpret_cast<const UChar*>(in.data()), static_cast<int32_t>(in.size()),
                   reinterpret_cast<UChar*>(out.data()), need, &st);
  GILL_CHECK(U_SUCCESS(st), ErrorCode::kInternal, "ICU normalisation failed: ", u_errorName(st));
  return to_u8(out);
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const int n = check_at(s, i);
    if (n < 0) return false;
    i += n;
  }
  return true;
}

std::string decode_replace(std::string_view bytes) {
  if (is_valid_utf8(bytes)) return std::string(bytes);
  std::string out;
  out.reserve(bytes.size() + 8);
  for (size_t i = 0; i < bytes.size();) {
    const int n = check_at(bytes, i);
    if (n > 0) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i += -n;
    }
  }
  return out;
}

char32_t next_cp(std::string_view s, size_t& i) {
  const auto b = static_cast<uint8_t>(s[i]);
  if (b < 0x80) {
    ++i;
    return b;
  }
  int len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
  char32_t cp = b & (0xFF >> (len + 1));  // lead-byte payload: 5, 4 or 3 bits
  for (int k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
  i += len;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string nfc(const std::string& s) {
  UErrorCode st = U_ZERO_ERROR;
  const UNormalizer2* n = unorm2_getNFCInstance(&st);
  GILL_CHECK(U_SUCCESS(st), ErrorCode::kInternal, "ICU NFC unavailable: ", u_errorName(st));
  return normalize(s, n);
}

std::string nfd(const std::string& s) {
  UErrorCode st = U_ZERO_ERROR;
  const UNormalizer2* n = unorm2_getNFDInstance(&st);
  GILL_CHECK(U_SUCCESS(st), ErrorCode::kInternal, "ICU NFD unavailable: ", u_errorName(st));
  return normalize(s, n);
}

std::string lowercase(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<uint8_t>(s[i]);
    if (b < 0x80) {
      out.push_back(static_cast<char>(b >= 'A' && b <= 'Z' ? b + 32 : b));
      ++i;
      continue;
    }
    const char32_t cp = next_cp(s, i);
    UChar src[2];
    int32_t src_len = 0;
    U16_APPEND_UNSAFE(src, src_len, cp);
    UChar dst[8];
    UErrorCode st = U_ZERO_ERROR;
    const int32_t n = u_strToLower(dst, 8, src, src_len, "", &st);
    if (U_FAILURE(st)) {
      append_utf8(out, cp);
      continue;
    }
    for (int32_t k = 0; k < n;) {
      UChar32 c;
      U16_NEXT(dst, k, n, c);
      append_utf8(out, static_cast<char32_t>(c));
    }
  }
  return out;
}

bool is_white_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_WHITE_SPACE);
}

bool is_python_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  if (u_charType(static_cast<UChar32>(c)) == U_SPACE_SEPARATOR) return true;
  const auto d = u_charDirection(static_cast<UChar32>(c));
  return d == U_WHITE_SPACE_NEUTRAL || d == U_BLOCK_SEPARATOR || d == U_SEGMENT_SEPARATOR;
}

bool is_punctuation(char32_t c) {
  const auto m = U_GET_GC_MASK(static_cast<UChar32>(c));
  return (m & U_GC_P_MASK) != 0;
}

bool is_control_other(char32_t c) {
  const auto t = u_charType(static_cast<UChar32>(c));
  return t == U_CONTROL_CHAR || t == U_FORMAT_CHAR || t == U_PRIVATE_USE_CHAR || t == U_SURROGATE;
}

bool is_nonspacing_mark(char32_t c) { return u_charType(static_cast<UChar32>(c)) == U_NON_SPACING_MARK; }

bool is_cjk_ideograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

std::string_view py_lstrip(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!is_python_space(next_cp(s, j))) break;
    i = j;
  }
  return s.substr(i);
}

std::string_view py_rstrip(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
    size_t j = start;
    if (!is_python_space(next_cp(s, j))) break;
    end = start;
  }
  return s.substr(0, end);
}

}  // namespace gill::tokenizer::uni
