#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace gill::io {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kReadChunk = size_t(64) << 20;

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

[[noreturn]] void io_fail(const std::filesystem::path& path, const char* what, int err) {
  detail::fail(ErrorCode::kIo, detail::str_cat(path.string(), ": ", what, ": ", std::strerror(err)));
}
}  // namespace

const char* residency_name(Residency r) {
  return r == Residency::kMemory ? "memory" : "mmap";
}

std::shared_ptr<MappedFile> MappedFile::open(const std::filesystem::path& path, Residency residency) {
  using detail::str_cat;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) detail::fail(ErrorCode::kNotFound, str_cat(path.string(), ": no such file"));
  if (std::filesystem::is_directory(path, ec))
    detail::fail(ErrorCode::kInvalidArgument, str_cat(path.string(), ": is a directory, expected a file"));
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) io_fail(path, "cannot open", errno);
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) io_fail(path, "cannot stat", errno);
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path.string();
  m->size_ = static_cast<size_t>(st.st_size);
  m->residency_ = residency;
  if (m->size_ == 0) return m;
  if (residency == Residency::kMap) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, f.fd, 0);
    if (p == MAP_FAILED) io_fail(path, "cannot mmap", errno);
    m->map_base_ = p;
    m->map_len_ = m->size_;
    m->data_ = static_cast<uint8_t*>(p);
    return m;
  }
  // kMemory: anonymous memory aligned to a huge page so that the kernel can back it with 2 MiB pages.
  const size_t len = (m->size_ + kHugePage - 1) / kHugePage * kHugePage;
  void* p =
      ::mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) io_fail(path, str_cat("cannot allocate ", m->size_, " bytes to read it into").c_str(), errno);
  m->map_base_ = p;
  m->map_len_ = len + kHugePage;
  const auto base = reinterpret_cast<uintptr_t>(p);
  auto* data = reinterpret_cast<uint8_t*>((base + kHugePage - 1) & ~(kHugePage - 1));
  m->data_ = data;
  (void)::madvise(data, len, MADV_HUGEPAGE);  // advice only: kernels without THP keep 4 KiB pages
  for (size_t off = 0; off < m->size_;) {
    const size_t want = std::min(kReadChunk, m->size_ - off);
    const ssize_t n = ::pread(f.fd, data + off, want, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) io_fail(path, str_cat("read failed at byte ", off).c_str(), errno);
    if (n == 0)
      detail::fail(ErrorCode::kIo, str_cat(path.string(), ": file ended at byte ", off, " while reading ", m->size_,
                                           " bytes (changed on disk?)"));
    (void)::posix_fadvise(f.fd, static_cast<off_t>(off), n, POSIX_FADV_DONTNEED);  // one copy, not two
    off += static_cast<size_t>(n);
  }
  return m;
}

MappedFile::~MappedFile() {
  if (map_base_) ::munmap(map_base_, map_len_);
}

}  // namespace gill::io
