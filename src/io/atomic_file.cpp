#include "io/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "util/error.h"

namespace gill::io {

using detail::str_cat;
namespace fs = std::filesystem;

AtomicFile::AtomicFile(const fs::path& target) : target_(target) {
  std::error_code ec;
  fs::path parent = target.parent_path();
  if (!parent.empty() && !fs::exists(parent, ec)) {
    fs::create_directories(parent, ec);
    if (ec)
      detail::fail(ErrorCode::kIo,
                   str_cat(target.string(), ": cannot create its folder ", parent.string(), ": ", ec.message()));
  }
  if (!parent.empty() && !fs::is_directory(parent, ec))
    detail::fail(ErrorCode::kIo, str_cat(target.string(), ": cannot write: ", parent.string(), " is not a folder"));
  std::random_device rd;
  temp_ = target;
  temp_ += str_cat(".tmp-", ::getpid(), "-", rd() % 1000000);
  f_ = std::fopen(temp_.c_str(), "wb");
  if (!f_) detail::fail(ErrorCode::kIo, str_cat(target.string(), ": cannot write: ", std::strerror(errno)));
}

AtomicFile::~AtomicFile() {
  if (f_) std::fclose(f_);
  if (!committed_) {
    std::error_code ec;
    fs::remove(temp_, ec);
  }
}

void AtomicFile::write(const void* data, size_t n) {
  if (n == 0) return;
  if (std::fwrite(data, 1, n, f_) != n)
    detail::fail(ErrorCode::kIo, str_cat(target_.string(), ": write failed: ", std::strerror(errno)));
}

void AtomicFile::commit() {
  if (std::fflush(f_) != 0 || std::ferror(f_))
    detail::fail(ErrorCode::kIo, str_cat(target_.string(), ": write failed: ", std::strerror(errno)));
  std::fclose(f_);
  f_ = nullptr;
  std::error_code ec;
  fs::rename(temp_, target_, ec);
  if (ec) detail::fail(ErrorCode::kIo, str_cat(target_.string(), ": cannot rename into place: ", ec.message()));
  committed_ = true;
}

void write_file_atomic(const fs::path& path, std::string_view content) {
  AtomicFile f(path);
  f.write(content);
  f.commit();
}

std::string read_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) detail::fail(ErrorCode::kNotFound, str_cat(path.string(), ": no such file"));
  if (fs::is_directory(path, ec)) detail::fail(ErrorCode::kInvalidArgument, str_cat(path.string(), ": is a folder"));
  std::ifstream in(path, std::ios::binary);
  if (!in) detail::fail(ErrorCode::kIo, str_cat(path.string(), ": cannot open: ", std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace gill::io
