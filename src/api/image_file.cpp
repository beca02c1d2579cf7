// gill::read_image / gill::write_png: image files through stb_image (decode) and stb_image_write (PNG).
#include <gill/gill.h>
#include <stb_image.h>
#include <stb_image_write.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "io/atomic_file.h"
#include "util/error.h"

namespace gill {

using detail::str_cat;

Image read_image(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    detail::fail(ErrorCode::kNotFound, str_cat(path, ": no such image file"));
  const std::string bytes = io::read_file(path);
  int w = 0, h = 0, channels = 0;
  stbi_uc* data = stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), static_cast<int>(bytes.size()),
                                        &w, &h, &channels, 3);
  if (!data) detail::fail(ErrorCode::kFormat, str_cat(path, ": cannot decode image: ", stbi_failure_reason()));
  Image im;
  im.width = w;
  im.height = h;
  im.pixels.assign(data, data + static_cast<size_t>(w) * h * 3);
  stbi_image_free(data);
  return im;
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
