#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace gill::io {

std::shared_ptr<MappedFile> MappedFile::open(const std::filesystem::path& path) {
  using detail::str_cat;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    detail::fail(ErrorCode::kNotFound, str_cat(path.string(), ": no such file"));
  if (std::filesystem::is_directory(path, ec))
    detail::fail(ErrorCode::kInvalidArgument, str_cat(path.string(), ": is a directory, expected a file"));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) detail::fail(ErrorCode::kIo, str_cat(path.string(), ": cannot open: ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    detail::fail(ErrorCode::kIo, str_cat(path.string(), ": cannot stat: ", std::strerror(err)));
  }
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path.string();
  m->size_ = static_cast<size_t>(st.st_size);
  if (m->size_ > 0) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      detail::fail(ErrorCode::kIo, str_cat(path.string(), ": cannot mmap: ", std::strerror(err)));
    }
    m->data_ = static_cast<uint8_t*>(p);
  }
  ::close(fd);
  return m;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

}  // namespace gill::io
