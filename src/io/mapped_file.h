// A read-only view of a whole file: mapped (mmap MAP_PRIVATE, so tensors over it are copy-on-write), or read into
// anonymous memory (Residency::kMemory: no file-backed pages, transparent huge pages where the kernel allows them).
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace gill::io {

// Where the bytes of a weights file live while a model uses them.
//   kMap: mmap'd file pages (zero-copy, shared with the page cache; the fastest load, and a warm load costs no copy).
//   kMemory: read once into private anonymous memory, advised for transparent huge pages (MADV_HUGEPAGE). Reads of
//     such memory run faster than of file-backed 4 KiB pages (decode is bandwidth-bound), at the cost of one copy at
//     load. The file's pages are dropped from the page cache as they are read (POSIX_FADV_DONTNEED), so the
//     machine does not hold the weights twice; the next load reads the disk again.
enum class Residency { kMap, kMemory };
const char* residency_name(Residency r);  // "mmap" | "memory"

class MappedFile {
 public:
  // Throws kNotFound (missing), kIo (cannot open/map/read, or the file shrank while read).
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path, Residency residency = Residency::kMap);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  Residency residency() const { return residency_; }

 private:
  MappedFile() = default;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* map_base_ = nullptr;  // what munmap releases (kMemory over-allocates to align data_ to 2 MiB)
  size_t map_len_ = 0;
  Residency residency_ = Residency::kMap;
  std::string path_;
};

}  // namespace gill::io
