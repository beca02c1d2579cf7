// gill::read_image / gill::write_png: image files through io::load_image (decode) and stb_image_write (PNG).
#include <gill/gill.h>
#include <stb_image_write.h>

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

void write_png(const Image& image, const std::string& path) {
  GILL_CHECK(!image.empty(), ErrorCode::kInvalidArgument, path, ": cannot write an empty image");
  GILL_CHECK(image.pixels.size() == static_cast<size_t>(image.width) * image.height * 3, ErrorCode::kInvalidArgument,
             path, ": image has ", image.pixels.size(), " bytes, expected ", image.width, "x", image.height, "x3");
  // Encode into memory first (stb is C: nothing may throw through it), then write atomically.
  std::string png;
  auto sink = [](void* ctx, void* data, int n) { static_cast<std::string*>(ctx)->append(static_cast<char*>(data), n); };
  if (!stbi_write_png_to_func(sink, &png, image.width, image.height, 3, image.pixels.data(), image.width * 3))
    detail::fail(ErrorCode::kIo, str_cat(path, ": PNG encoding failed"));
  io::write_file_atomic(path, png);
}

}  // namespace gill
