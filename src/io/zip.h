// A read-only view of a ZIP archive over a memory-mapped file: the central directory (zip64 included), entries
// stored uncompressed (method 0, what torch.save writes) as byte ranges of the mapping. APPNOTE.TXT 4.3.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "io/mapped_file.h"

namespace gill::io {

class ZipArchive {
 public:
  struct Entry {
    uint64_t offset = 0;  // of the data in the file
    uint64_t size = 0;
    uint16_t method = 0;
  };
  // Throws kFormat (not a zip, truncated, entries outside the file) naming the file.
  explicit ZipArchive(std::shared_ptr<MappedFile> file);
  const std::map<std::string, Entry>& entries() const { return entries_; }
  const Entry* find(const std::string& name) const;
  // The bytes of a stored entry; kUnsupported for compressed entries (names the method), kNotFound when absent.
  std::string_view data(const std::string& name) const;
  const std::shared_ptr<MappedFile>& file() const { return file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, Entry> entries_;
};

}  // namespace gill::io
