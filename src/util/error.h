// Internal error helpers: GILL_CHECK, context wrapping, c10::Error translation.
#pragma once
#include <gill/error.h>

#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace gill::detail {

template <typename... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

[[noreturn]] inline void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

// Runs fn; any gill::Error gets `context: ` prepended, any c10::Error / std::exception becomes a
// gill::Error (kInternal) carrying its text and the context.
template <typename Fn>
auto with_context(const std::string& context, Fn&& fn) -> decltype(fn());

std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace gill::detail

#define GILL_CHECK(cond, code, ...)                                                  \
  do {                                                                               \
    if (!(cond)) ::gill::detail::fail((code), ::gill::detail::str_cat(__VA_ARGS__)); \
  } while (0)

#include "util/error_inl.h"
