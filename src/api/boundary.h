// The API boundary: every public entry point runs its body through api_boundary(), so callers only ever see
// gill::Error. Library errors pass unchanged; libtorch's c10::Error (and any other std::exception) becomes a
// gill::Error that keeps the backend's text (without its C++ backtrace) and names the entry point.
#pragma once
#include <c10/util/Exception.h>

#include <new>
#include <stdexcept>
#include <string>

#include "util/error.h"

namespace gill::detail {

// Maps a backend exception to an ErrorCode: NotImplementedError -> kUnsupported, everything else kInternal.
inline ErrorCode code_for_c10(const c10::Error& e) {
  if (dynamic_cast<const c10::NotImplementedError*>(&e)) return ErrorCode::kUnsupported;
  return ErrorCode::kInternal;
}

template <typename Fn>
auto api_boundary(const char* entry, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    const bool oom = dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr;
    throw Error(code_for_c10(e), str_cat(entry, ": ", oom ? "out of memory: " : "", c10_message(e)));
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::kInternal, str_cat(entry, ": out of memory"));
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInternal, str_cat(entry, ": ", e.what()));
  }
}

}  // namespace gill::detail
