// ZIP central-directory reader (PKWARE APPNOTE.TXT, sections 4.3.7, 4.3.12, 4.3.14-16, 4.5.3 zip64 extra field).
#include "io/zip.h"

#include "util/error.h"

namespace gill::io {

using detail::str_cat;

namespace {

uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int k = 0; k < n; ++k) v |= uint64_t(p[k]) << (8 * k);
  return v;
}

}  // namespace

ZipArchive::ZipArchive(std::shared_ptr<MappedFile> file) : file_(std::move(file)) {
  const uint8_t* d = file_->data();
  const uint64_t n = file_->size();
  const std::string& path = file_->path();
  auto bad = [&](const std::string& what) { detail::fail(ErrorCode::kFormat, str_cat(path, ": ", what)); };
  if (n < 22) bad("not a zip archive (too short)");
  // End of central directory: the last signature within 64 KiB + 22 bytes of the end.
  int64_t eocd = -1;
  const uint64_t lo = n > 65557 ? n - 65557 : 0;
  for (uint64_t p = n - 22 + 1; p-- > lo;)
    if (le(d + p, 4) == 0x06054b50) {
      eocd = static_cast<int64_t>(p);
      break;
    }
  if (eocd < 0) bad("not a zip archive (no end of central directory; truncated?)");
  uint64_t count = le(d + eocd + 10, 2), cd_size = le(d + eocd + 12, 4), cd_off = le(d + eocd + 16, 4);
  if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_off == 0xFFFFFFFF) {
    // zip64 end of central directory locator just before the EOCD.
    if (eocd < 20 || le(d + eocd - 20, 4) != 0x07064b50) bad("zip64 archive without a zip64 locator");
    const uint64_t z = le(d + eocd - 20 + 8, 8);
    if (n < 56 || z > n - 56 || le(d + z, 4) != 0x06064b50)
      bad("zip64 end of central directory is missing or truncated");
    count = le(d + z + 32, 8);
    cd_size = le(d + z + 40, 8);
    cd_off = le(d + z + 48, 8);
  }
  if (cd_off > n || cd_size > n - cd_off) bad("central directory lies outside the file (truncated?)");
  uint64_t p = cd_off;
  for (uint64_t k = 0; k < count; ++k) {
    if (p + 46 > cd_off + cd_size || le(d + p, 4) != 0x02014b50) bad("corrupt central directory");
    Entry e;
    e.method = static_cast<uint16_t>(le(d + p + 10, 2));
    uint64_t csize = le(d + p + 20, 4), usize = le(d + p + 24, 4);
    const uint64_t name_len = le(d + p + 28, 2), extra_len = le(d + p + 30, 2), comment_len = le(d + p + 32, 2);
    uint64_t local = le(d + p + 42, 4);
    if (p + 46 + name_len + extra_len + comment_len > cd_off + cd_size) bad("corrupt central directory");
    std::string name(reinterpret_cast<const char*>(d + p + 46), name_len);
    // zip64 extended information: the 0xFFFFFFFF fields, in order.
    const uint8_t* x = d + p + 46 + name_len;
    for (uint64_t q = 0; q + 4 <= extra_len;) {
      const uint64_t id = le(x + q, 2), len = le(x + q + 2, 2);
      if (q + 4 + len > extra_len) break;
      if (id == 1) {
        uint64_t r = q + 4;
        auto next = [&](uint64_t& field) {
          if (field != 0xFFFFFFFF) return;
          if (r + 8 > q + 4 + len) bad(str_cat("entry '", name, "': short zip64 extra field"));
          field = le(x + r, 8);
          r += 8;
        };
        next(usize);
        next(csize);
        next(local);
      }
      q += 4 + len;
    }
    if (local > n - 30 || le(d + local, 4) != 0x04034b50) bad(str_cat("entry '", name, "': bad local header"));
    e.offset = local + 30 + le(d + local + 26, 2) + le(d + local + 28, 2);
    e.size = e.method == 0 ? usize : csize;
    if (e.method == 0 && csize != usize) bad(str_cat("entry '", name, "': stored sizes disagree"));
    if (e.offset > n || e.size > n - e.offset)
      bad(str_cat("entry '", name, "' extends past the end of the file (truncated?)"));
    entries_[name] = e;
    p += 46 + name_len + extra_len + comment_len;
  }
}

const ZipArchive::Entry* ZipArchive::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

std::string_view ZipArchive::data(const std::string& name) const {
  const Entry* e = find(name);
  if (!e) detail::fail(ErrorCode::kNotFound, str_cat(file_->path(), ": no entry '", name, "' in the archive"));
  if (e->method != 0)
    detail::fail(ErrorCode::kUnsupported, str_cat(file_->path(), ": entry '", name, "' is compressed (method ",
                                                  e->method, "); only stored entries (method 0) are supported"));
  return {reinterpret_cast<const char*>(file_->data() + e->offset), static_cast<size_t>(e->size)};
}

}  // namespace gill::io
