#pragma once
#include <c10/util/Exception.h>

#include <exception>

namespace gill::detail {

// Strip libtorch's C++ backtrace from a c10::Error message, keep the first line(s) of text.
std::string c10_message(const c10::Error& e);

template <typename Fn>
auto with_context(const std::string& context, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error& e) {
    throw e.with_context(context);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::kInternal, context + ": " + c10_message(e));
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::kInternal, context + ": out of memory");
  }
}

}  // namespace gill::detail
