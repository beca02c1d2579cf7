// Shared pieces of the libFuzzer targets. The readers under test take paths, so an input is written to a file in a
// per-process scratch folder (on /dev/shm when there is one) first. The contract checked everywhere: any input
// either works or throws gill::Error. Any other exception escapes the target and libFuzzer reports it as a crash,
// as it does for sanitizer reports, aborts and timeouts.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace gill::fuzz {

inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path base = std::filesystem::is_directory("/dev/shm")
                                           ? std::filesystem::path("/dev/shm")
                                           : std::filesystem::temp_directory_path();
    auto d = base / ("gill-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

// Writes data to scratch_dir()/name (replacing it) and returns the path.
inline std::filesystem::path write_input(const std::string& name, const uint8_t* data, size_t size) {
  const auto p = scratch_dir() / name;
  std::ofstream(p, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return p;
}

// Elements a target may materialise from one tensor (the reader's own limits are far larger).
constexpr int64_t kMaxTouchElements = int64_t(1) << 20;

}  // namespace gill::fuzz
