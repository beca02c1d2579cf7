// Images: decode (stb_image: JPEG, PNG, BMP, TGA, GIF first frame, PSD, PNM) to 8-bit RGB the way PIL's
// Image.open(f).convert("RGB") does, and write PNG with text chunks.
//
// Conversion rules (PIL 9.x/10.x behaviour): grayscale -> R=G=B; palette -> palette colours; alpha dropped, never
// composited; 16-bit RGB(A) and LA -> the high byte of each sample (PIL's "RGB;16B" unpacker); 16-bit grayscale
// (PIL mode I;16) -> the value clipped to 255 (PIL's I;16 -> L/RGB conversion clips, it does not rescale).
// No EXIF orientation is applied (PIL's open/convert does not either). CMYK JPEGs are not supported by stb.
#pragma once
#include <gill/image.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace gill::io {

// Largest decoded image accepted (pixels): PIL raises DecompressionBombError beyond 2 x 89.5 MP; we stop at 100 MP.
constexpr int64_t kMaxImagePixels = 100'000'000;

// Throws kNotFound (missing), kFormat (corrupt, truncated, empty, unknown format, over kMaxImagePixels) naming
// the file (or `name` for memory).
Image load_image(const std::filesystem::path& path);
Image load_image_from_memory(const void* data, size_t size, const std::string& name = "<memory>");

// Encodes RGB PNG bytes with the given text chunks (tEXt for Latin-1 text, iTXt for UTF-8 beyond ASCII)
// placed right after IHDR.
std::string encode_png(const Image& image, const std::vector<std::pair<std::string, std::string>>& text_chunks = {});
// Writes encode_png(...) atomically (temp + rename). kInvalidArgument for an empty image or bad keyword, kIo.
void write_png(const std::filesystem::path& path, const Image& image,
               const std::vector<std::pair<std::string, std::string>>& text_chunks = {});

// The tEXt and uncompressed iTXt chunks of PNG bytes, in file order. kFormat for bytes that are not a PNG or
// whose chunks run past the end.
std::vector<std::pair<std::string, std::string>> read_png_text(const std::string& png);

// CRC-32 (ISO 3309 / PNG), for chunk writing.
uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc = 0);

}  // namespace gill::io
