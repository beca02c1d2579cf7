#include "output_checks.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "cli_common.h"

namespace gill::cli {

namespace fs = std::filesystem;

namespace {

// The folder itself when it exists, else its nearest existing ancestor ("." for a relative path).
fs::path nearest_existing(const fs::path& p) {
  std::error_code ec;
  fs::path q = p;
  while (!q.empty() && !fs::exists(q, ec)) {
    const fs::path up = q.parent_path();
    if (up == q) break;
    q = up;
  }
  return q.empty() ? fs::path(".") : q;
}

// Empty when a new file can be created in `dir`, else the reason.
std::string probe_writable(const fs::path& dir) {
  std::random_device rd;
  const fs::path probe = dir / cat(".gill-write-probe-", ::getpid(), "-", rd() % 1000000);
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return std::strerror(errno);
  ::close(fd);
  ::unlink(probe.c_str());
  return {};
}

}  // namespace

void check_output_dir(const std::string& dir, const std::string& option) {
  const std::string what = cat(option, " ", dir);
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    require(fs::is_directory(dir, ec), ErrorCode::kIo, cat(what, ": exists and is not a folder"));
    const std::string why = probe_writable(dir);
    require(why.empty(), ErrorCode::kIo, cat(what, ": the output folder is not writable (", why, ")"));
    return;
  }
  const fs::path base = nearest_existing(fs::path(dir).parent_path());
  require(fs::is_directory(base, ec), ErrorCode::kIo,
          cat(what, ": cannot create the output folder: ", base.string(), " is not a folder"));
  const std::string why = probe_writable(base);
  require(why.empty(), ErrorCode::kIo,
          cat(what, ": cannot create the output folder: ", base.string(), " is not writable (", why, ")"));
}

void check_output_file(const std::string& path, const std::string& option, bool parents_created) {
  const std::string what = cat(option, " ", path);
  std::error_code ec;
  require(!fs::is_directory(path, ec), ErrorCode::kIo, cat(what, ": cannot write: it is a folder"));
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) parent = ".";
  if (!fs::exists(parent, ec)) {
    require(parents_created, ErrorCode::kIo, cat(what, ": cannot write: no such folder ", parent.string()));
    parent = nearest_existing(parent);
  }
  require(fs::is_directory(parent, ec), ErrorCode::kIo,
          cat(what, ": cannot write: ", parent.string(), " is not a folder"));
  const std::string why = probe_writable(parent);
  require(why.empty(), ErrorCode::kIo,
          cat(what, ": cannot write: folder ", parent.string(), " is not writable (", why, ")"));
}

}  // namespace gill::cli
