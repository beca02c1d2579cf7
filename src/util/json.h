// Reading numbers out of JSON without undefined behaviour. nlohmann's get<int>() of a JSON float is a plain C++
// cast, undefined when the value is out of range ("steps_offset": 1.5e118), and get<float>() of a large double is
// too; get<int>() of a large JSON integer silently wraps. json_get<T>() is get<T>() with those cases checked.
#pragma once
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "util/error.h"

namespace gill::util {

// Text as JSON: kFormat "WHERE: invalid JSON: ..." (nlohmann's message).
inline nlohmann::json parse_json_text(const std::string& text, const std::string& where) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    detail::fail(ErrorCode::kFormat, detail::str_cat(where, ": invalid JSON: ", e.what()));
  }
}

// The one reader of a JSON file (configs, model_args.json, tokenizer files): kNotFound `missing` when it cannot
// be opened (default "PATH: no such file"), kFormat "PATH: invalid JSON: ...".
inline nlohmann::json read_json_file(const std::filesystem::path& path, const std::string& missing = "") {
  std::ifstream in(path, std::ios::binary);
  if (!in.good())
    detail::fail(ErrorCode::kNotFound, missing.empty() ? detail::str_cat(path.string(), ": no such file") : missing);
  std::ostringstream text;
  text << in.rdbuf();
  return parse_json_text(text.str(), path.string());
}

namespace json_detail {
template <typename T>
struct is_vector : std::false_type {};
template <typename U>
struct is_vector<std::vector<U>> : std::true_type {};

[[noreturn]] inline void out_of_range(const nlohmann::json& v, const char* type) {
  throw nlohmann::json::type_error::create(302, "number " + v.dump() + " is not a valid " + type, &v);
}
}  // namespace json_detail

// v as T. An integer T takes JSON integers in its range and JSON floats that are integral and in range (1.0 -> 1);
// a float T takes any number whose magnitude fits; vectors convert element by element; other types are get<T>().
// Anything else throws nlohmann::json::type_error, as get<T>() does for a value of the wrong type, so callers that
// turn those into messages naming the key keep doing so.
template <typename T>
T json_get(const nlohmann::json& v) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    using L = std::numeric_limits<T>;
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u <= static_cast<uint64_t>(L::max())) return static_cast<T>(u);
    } else if (v.is_number_integer()) {
      const int64_t i = v.get<int64_t>();
      if ((std::is_signed_v<T> || i >= 0) && i >= static_cast<int64_t>(L::min()) &&
          (i < 0 || static_cast<uint64_t>(i) <= static_cast<uint64_t>(L::max())))
        return static_cast<T>(i);
    } else if (v.is_number_float()) {
      const double d = v.get<double>();
      // L::max() + 1 is a power of two, so this bound is exact in double.
      const double lo = static_cast<double>(L::min()), hi_excl = static_cast<double>(L::max() / 2 + 1) * 2.0;
      if (std::isfinite(d) && d == std::floor(d) && d >= lo && d < hi_excl) return static_cast<T>(d);
    } else {
      return v.get<T>();  // throws type_error naming the JSON type
    }
    json_detail::out_of_range(v, std::is_signed_v<T> ? "signed integer of this size" : "unsigned integer of this size");
  } else if constexpr (std::is_floating_point_v<T>) {
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<T>::max()))
        json_detail::out_of_range(v, "float");
      return static_cast<T>(d);
    }
    return v.get<T>();  // integers convert exactly or by rounding (defined); other types throw type_error
  } else if constexpr (json_detail::is_vector<T>::value) {
    if (!v.is_array()) return v.get<T>();  // throws type_error
    T out;
    out.reserve(v.size());
    for (const auto& x : v) out.push_back(json_get<typename T::value_type>(x));
    return out;
  } else {
    return v.get<T>();
  }
}

// Config readers: out = json_get<T>(j[key]) when the key is present and not null; otherwise out keeps its default.
template <typename T>
void json_get_if(const nlohmann::json& j, const char* key, T& out) {
  if (j.contains(key) && !j.at(key).is_null()) out = json_get<T>(j.at(key));
}

namespace json_detail {
template <typename T>
const char* kind_of() {
  if constexpr (std::is_same_v<T, bool>)
    return "true or false";
  else if constexpr (std::is_integral_v<T>)
    return "an integer";
  else if constexpr (std::is_floating_point_v<T>)
    return "a number";
  else if constexpr (std::is_same_v<T, std::string>)
    return "a string";
  else if constexpr (is_vector<T>::value)
    return "a list";
  else
    return "a value of another type";
}
template <typename T>
bool has_kind(const nlohmann::json& v) {
  if constexpr (std::is_same_v<T, bool>)
    return v.is_boolean();
  else if constexpr (std::is_arithmetic_v<T>)
    return v.is_number();  // json_get decides integral floats and ranges
  else if constexpr (std::is_same_v<T, std::string>)
    return v.is_string();
  else if constexpr (is_vector<T>::value)
    return v.is_array();
  else
    return true;
}
}  // namespace json_detail

// What the config-field reader found wrong with a field, for the message of the config that reads it.
struct FieldError {
  enum Problem { kMissing, kWrongType, kOutOfRange } problem;
  const std::string& key;
  const nlohmann::json* value;  // null when missing
  const std::string& where;     // the file or config being read
  std::string what;             // nlohmann's message ("[json.exception.type_error.302] type must be ...")
  const char* kind;             // what the field must be: an integer, a number, true or false, a string, a list
  bool integer;                 // an integer field (a JSON float there is refused when not integral)
  bool list;                    // a list field
};
// A config's messages: FieldError -> the kFormat message.
using FieldMessage = std::string (*)(const FieldError&);

// gill's messages (CLIP, the CLIP preprocessor): `WHERE: "KEY" must be KIND, got VALUE` for a value of another
// JSON type (or a non-integral number for an integer); `WHERE: "KEY" = VALUE is out of range` (a list:
// `... has an element of the wrong type or out of range`); `WHERE: "KEY" is missing`.
inline std::string gill_field_message(const FieldError& e) {
  using detail::str_cat;
  if (e.problem == FieldError::kMissing) return str_cat(e.where, ": \"", e.key, "\" is missing");
  const nlohmann::json& v = *e.value;
  const bool fraction = e.integer && v.is_number_float() &&
                        !(std::isfinite(v.get<double>()) && v.get<double>() == std::floor(v.get<double>()));
  if (e.problem == FieldError::kWrongType || fraction)
    return str_cat(e.where, ": \"", e.key, "\" must be ", e.kind, ", got ", v.dump());
  return str_cat(e.where, ": \"", e.key, "\" = ", v.dump(),
                 e.list ? " has an element of the wrong type or out of range" : " is out of range");
}

// The one config-field reader: `v` (the value of `key`) as T by json_get (integers take integral JSON floats,
// Python writes 1.0); a value of another JSON type (kWrongType) or one json_get refuses (kOutOfRange: out of T's
// range, a fraction for an integer, a bad list element) is kFormat with `message`'s text.
template <typename T>
T read_value(const nlohmann::json& v, const std::string& key, const std::string& where,
             FieldMessage message = gill_field_message) {
  constexpr bool integer = std::is_integral_v<T> && !std::is_same_v<T, bool>;
  constexpr bool list = json_detail::is_vector<T>::value;
  if (!json_detail::has_kind<T>(v)) {
    const char* want = std::is_same_v<T, bool>          ? "boolean"
                       : std::is_arithmetic_v<T>        ? "number"
                       : std::is_same_v<T, std::string> ? "string"
                                                        : "array";
    const std::string what =
        nlohmann::json::type_error::create(302, std::string("type must be ") + want + ", but is " + v.type_name(), &v)
            .what();
    detail::fail(ErrorCode::kFormat, message({FieldError::kWrongType, key, &v, where, what,
                                              json_detail::kind_of<T>(), integer, list}));
  }
  try {
    return json_get<T>(v);
  } catch (const nlohmann::json::exception& e) {
    detail::fail(ErrorCode::kFormat,
                 message({FieldError::kOutOfRange, key, &v, where, e.what(), json_detail::kind_of<T>(), integer, list}));
  }
}
// read_value of j[key] into out when the key is present and not null (returns true); otherwise out keeps its
// default (false).
template <typename T>
bool read_field(const nlohmann::json& j, const char* key, T& out, const std::string& where,
                FieldMessage message = gill_field_message) {
  if (!j.contains(key) || j.at(key).is_null()) return false;
  out = read_value<T>(j.at(key), key, where, message);
  return true;
}
// read_value of j[key], which must be present (kFormat kMissing otherwise).
template <typename T>
T require_field(const nlohmann::json& j, const char* key, const std::string& where,
                FieldMessage message = gill_field_message) {
  if (!j.contains(key)) {
    const std::string k = key;
    detail::fail(ErrorCode::kFormat, message({FieldError::kMissing, k, nullptr, where, "", json_detail::kind_of<T>(),
                                              std::is_integral_v<T> && !std::is_same_v<T, bool>,
                                              json_detail::is_vector<T>::value}));
  }
  return read_value<T>(j.at(key), key, where, message);
}

}  // namespace gill::util
