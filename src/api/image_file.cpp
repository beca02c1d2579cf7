// gill::read_image / gill::write_png / files: io::load_image (decode), io::write_png (the one PNG writer) and
// io/atomic_file.
#include <gill/gill.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "io/atomic_file.h"
#include "io/image.h"
#include "util/error.h"

namespace gill {

using detail::str_cat;

// Decodes like io::load_image (PIL's convert("RGB"), the pixel limit, messages that say what is wrong), so
// `gill run --image` and an Engine given the file path see the same pixels.
Image read_image(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    detail::fail(ErrorCode::kInvalidArgument, str_cat(path, ": is a folder, not an image file"));
  if (!std::filesystem::exists(path, ec)) detail::fail(ErrorCode::kNotFound, str_cat(path, ": no such image file"));
  return io::load_image(path);
}

void write_png(const Image& image, const std::string& path,
               const std::vector<std::pair<std::string, std::string>>& text) {
  GILL_CHECK(!image.empty(), ErrorCode::kInvalidArgument, path, ": cannot write an empty image");
  GILL_CHECK(image.pixels.size() == static_cast<size_t>(image.width) * image.height * 3, ErrorCode::kInvalidArgument,
             path, ": image has ", image.pixels.size(), " bytes, expected ", image.width, "x", image.height, "x3");
  io::write_png(path, image, text);
}

std::string read_file(const std::string& path) { return io::read_file(path); }

void write_file_atomic(const std::string& path, const std::string& bytes) { io::write_file_atomic(path, bytes); }

}  // namespace gill
