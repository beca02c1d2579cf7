// UTF-8 and Unicode helpers for the tokenizers (ICU for character properties and normalisation).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace gill::tokenizer::uni {

bool is_valid_utf8(std::string_view s);
// Python's bytes.decode("utf-8", errors="replace"): one U+FFFD per maximal ill-formed subpart. Valid input is
// returned unchanged.
std::string decode_replace(std::string_view bytes);
// Next code point of valid UTF-8 at s[i]; advances i.
char32_t next_cp(std::string_view s, size_t& i);
void append_utf8(std::string& out, char32_t cp);

std::string nfc(const std::string& s);
std::string nfd(const std::string& s);
// Full lower-case mapping applied one code point at a time (Rust char::to_lowercase, as the HF tokenizers
// Lowercase normaliser does: no context, so a final capital sigma becomes U+03C3).
std::string lowercase(const std::string& s);

bool is_white_space(char32_t c);   // Unicode White_Space (Rust char::is_whitespace, regex \s)
bool is_python_space(char32_t c);  // Python str.isspace(): category Zs or bidi class WS, B, S
bool is_punctuation(char32_t c);   // general category P*
bool is_control_other(char32_t c); // categories Cc, Cf, Co, Cs
bool is_nonspacing_mark(char32_t c);  // category Mn
bool is_cjk_ideograph(char32_t c); // BERT's _is_chinese_char ranges

// Python str.lstrip() / str.rstrip() with no argument.
std::string_view py_lstrip(std::string_view s);
std::string_view py_rstrip(std::string_view s);
inline std::string_view py_strip(std::string_view s) { return py_rstrip(py_lstrip(s)); }

}  // namespace gill::tokenizer::uni
