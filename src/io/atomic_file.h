// Files written under a temporary name in the target folder and renamed into place on commit(), so an
// interrupted run never leaves a half-written output. An uncommitted AtomicFile removes its temporary.
#pragma once
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

namespace gill::io {

class AtomicFile {
 public:
  // Creates the parent folder when missing. Throws kIo naming the path.
  explicit AtomicFile(const std::filesystem::path& target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  // fsync-free flush + rename over the target. Throws kIo.
  void commit();
  const std::filesystem::path& temp_path() const { return temp_; }
  const std::filesystem::path& target() const { return target_; }

 private:
  std::filesystem::path target_, temp_;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
};

// Whole-file helpers.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);
std::string read_file(const std::filesystem::path& path);  // kNotFound / kIo

}  // namespace gill::io
