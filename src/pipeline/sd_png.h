// PNG output for generated images, with text chunks (prompt, seed, steps, scale, scheduler). Encoding is
// stb_image_write's; the text chunks are spliced in after IHDR (tEXt for Latin-1-safe ASCII, iTXt for UTF-8).
// The file is written atomically: an error leaves no half-written PNG.
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <gill/image.h>

namespace gill::pipeline {

using PngText = std::vector<std::pair<std::string, std::string>>;  // (keyword 1..79 ASCII chars, UTF-8 text)

// The PNG file bytes.
std::string encode_png(const Image& image, const PngText& text = {});
// Throws kInvalidArgument (empty image, bad keyword) or kIo (unwritable path) naming the path.
void write_png(const std::filesystem::path& path, const Image& image, const PngText& text = {});
// The text chunks of a PNG file's bytes (tEXt and uncompressed iTXt), in file order. Throws kFormat.
PngText read_png_text(const std::string& png_bytes);

}  // namespace gill::pipeline
