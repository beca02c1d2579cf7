// gill::Error — the one exception type the library throws. No torch here.
#pragma once
#include <stdexcept>
#include <string>

namespace gill {

enum class ErrorCode {
  kInvalidArgument = 1,  // a bad option, flag value or API argument
  kNotFound,             // a file, folder, key or tensor that is not there
  kFormat,               // a file that exists but is malformed (truncated, bad header, bad JSON, ...)
  kShapeMismatch,        // config and weights disagree, wrong tensor shape
  kUnsupported,          // valid input that this build does not handle (legacy torch format, dtype, ...)
  kSecurity,             // a pickle that asks for something outside the allow-list
  kIo,                   // reading or writing failed (permissions, disk full, ...)
  kCancelled,            // a callback asked to stop
  kInternal,             // a bug in gill or a backend error (c10::Error) we could not classify
};

const char* error_code_name(ErrorCode code);

// Process exit code the CLI uses for an error code (2..10; 1 is left for uncaught surprises).
int exit_code_for(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

  // A copy of this error with "context: " prepended, same code ("loading UNet from DIR: ...").
  Error with_context(const std::string& context) const { return Error(code_, context + ": " + what()); }

 private:
  ErrorCode code_;
};

}  // namespace gill
