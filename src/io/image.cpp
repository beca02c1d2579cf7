// Image decode/encode over stb_image / stb_image_write (Debian libstb provides the implementations).
// PNG chunk layout: PNG spec (ISO/IEC 15948) §5.3, tEXt §11.3.4.3, iTXt §11.3.4.5.
#include "io/image.h"

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include <array>
#include <cstring>

#include "io/atomic_file.h"
#include "util/error.h"

namespace gill::io {

using detail::str_cat;

uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t k = 0; k < 256; ++k) {
      uint32_t c = k;
      for (int j = 0; j < 8; ++j) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[k] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t k = 0; k < n; ++k) crc = table[(crc ^ data[k]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

namespace {
uint32_t be32(const stbi_uc* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}
// The container format by its magic bytes, or nullptr.
const char* sniff_format(const stbi_uc* b, size_t n) {
  if (n >= 8 && std::memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return "PNG";
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "JPEG";
  if (n >= 4 && std::memcmp(b, "GIF8", 4) == 0) return "GIF";
  if (n >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
  if (n >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6') return "PNM";
  return nullptr;
}
}  // namespace

Image load_image_from_memory(const void* data, size_t size, const std::string& name) {
  auto bad = [&](const std::string& what) {
    detail::fail(ErrorCode::kFormat, str_cat(name, ": cannot decode image: ", what));
  };
  if (size == 0) bad("empty file");
  if (size > static_cast<size_t>(INT32_MAX)) bad("file too large");
  const auto* bytes = static_cast<const stbi_uc*>(data);
  const int len = static_cast<int>(size);
  int w = 0, h = 0, ch = 0;
  if (!stbi_info_from_memory(bytes, len, &w, &h, &ch)) {
    // stb tries every format and reports the last failure ("unknown image type"); name the format we saw.
    const char* format = sniff_format(bytes, size);
    if (!format) bad("not a PNG, JPEG, GIF, BMP, TGA or PNM image");
    if (std::strcmp(format, "PNG") == 0 && size >= 24 && std::memcmp(bytes + 12, "IHDR", 4) == 0) {
      const int64_t pw = be32(bytes + 16), ph = be32(bytes + 20);
      if (pw == 0 || ph == 0) bad(str_cat("zero-sized image (", pw, "x", ph, ")"));
      // Each side first: two 32-bit sides multiply past int64 (found by fuzz_image under UBSan).
      if (pw > kMaxImagePixels || ph > kMaxImagePixels || pw * ph > kMaxImagePixels) bad(str_cat(pw, "x", ph, " pixels exceeds the limit of ", kMaxImagePixels, " pixels"));
    }
    bad(str_cat(format, " data is corrupt or truncated"));
  }
  if (w <= 0 || h <= 0) bad("zero-sized image");
  // The header was fine but the pixel data is not: say so, with stb's terse reason ("outofdata") in brackets.
  auto decode_failed = [&] {
    const char* format = sniff_format(bytes, size);
    const char* why = stbi_failure_reason();
    bad(str_cat(format ? format : "image", " data is corrupt or truncated (", why ? why : "decode failed", ")"));
  };
  if (static_cast<int64_t>(w) * h > kMaxImagePixels)
    bad(str_cat(w, "x", h, " pixels exceeds the limit of ", kMaxImagePixels, " pixels"));
  Image img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  const size_t npix = static_cast<size_t>(w) * h;
  if (stbi_is_16_bit_from_memory(bytes, len) && (ch == 1)) {
    // 16-bit grayscale: PIL's I;16 -> RGB clips to 255.
    int cw, chh, cc;
    stbi_us* p = stbi_load_16_from_memory(bytes, len, &cw, &chh, &cc, 1);
    if (!p) decode_failed();
    if (cw != w || chh != h) {
      stbi_image_free(p);
      bad("inconsistent dimensions");
    }
    for (size_t k = 0; k < npix; ++k) {
      const uint8_t v = p[k] > 255 ? 255 : static_cast<uint8_t>(p[k]);
      img.pixels[3 * k] = img.pixels[3 * k + 1] = img.pixels[3 * k + 2] = v;
    }
    stbi_image_free(p);
    return img;
  }
  // stb converts 16-bit to 8-bit by the high byte, expands palettes and grays to 3 channels, drops alpha.
  int cw, chh, cc;
  stbi_uc* p = stbi_load_from_memory(bytes, len, &cw, &chh, &cc, 3);
  if (!p) decode_failed();
  if (cw != w || chh != h) {
    stbi_image_free(p);
    bad("inconsistent dimensions");
  }
  std::memcpy(img.pixels.data(), p, img.pixels.size());
  stbi_image_free(p);
  return img;
}

Image load_image(const std::filesystem::path& path) {
  const std::string data = read_file(path);
  return load_image_from_memory(data.data(), data.size(), path.string());
}

namespace {

void put_be32(std::string& s, uint32_t v) {
  for (int k = 3; k >= 0; --k) s.push_back(static_cast<char>((v >> (8 * k)) & 0xFF));
}

std::string chunk(const std::string& type, const std::string& body) {
  std::string c;
  put_be32(c, static_cast<uint32_t>(body.size()));
  std::string tb = type + body;
  c += tb;
  put_be32(c, crc32(reinterpret_cast<const uint8_t*>(tb.data()), tb.size()));
  return c;
}

void append_bytes(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

}  // namespace

std::string encode_png(const Image& image, const std::vector<std::pair<std::string, std::string>>& text_chunks) {
  GILL_CHECK(!image.empty(), ErrorCode::kInvalidArgument, "cannot write an empty image");
  GILL_CHECK(image.pixels.size() == static_cast<size_t>(image.width) * image.height * 3, ErrorCode::kInvalidArgument,
             "image of ", image.width, "x", image.height, " has ", image.pixels.size(), " bytes, expected ",
             static_cast<size_t>(image.width) * image.height * 3);
  std::string png;
  if (!stbi_write_png_to_func(append_bytes, &png, image.width, image.height, 3, image.pixels.data(), image.width * 3))
    detail::fail(ErrorCode::kInternal, "PNG encoding failed");
  // Signature (8) + IHDR chunk (4 + 4 + 13 + 4) = 33 bytes; text chunks go right after.
  GILL_CHECK(png.size() > 33 && png.compare(12, 4, "IHDR") == 0, ErrorCode::kInternal, "unexpected PNG layout");
  std::string extra;
  for (const auto& [key, text] : text_chunks) {
    GILL_CHECK(!key.empty() && key.size() <= 79, ErrorCode::kInvalidArgument, "PNG text keyword '", key,
               "' must be 1-79 characters");
    bool ascii = true;
    for (unsigned char c : key) GILL_CHECK(c >= 32 && c < 127, ErrorCode::kInvalidArgument, "PNG text keyword '", key,
                                           "' must be printable ASCII");
    for (unsigned char c : text) ascii &= c < 128 && c != 0;
    if (ascii) {
      extra += chunk("tEXt", key + std::string(1, '\0') + text);
    } else {
      // iTXt: keyword \0, compression flag 0, method 0, empty language \0, empty translated keyword \0, UTF-8 text.
      extra += chunk("iTXt", key + std::string("\0\0\0\0\0", 5) + text);
    }
  }
  png.insert(33, extra);
  return png;
}

std::vector<std::pair<std::string, std::string>> read_png_text(const std::string& png) {
  GILL_CHECK(png.size() >= 8 && png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0, ErrorCode::kFormat, "not a PNG file");
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 8;
  while (pos + 12 <= png.size()) {
    const size_t len = be32(reinterpret_cast<const stbi_uc*>(png.data() + pos));
    GILL_CHECK(len <= png.size() - pos - 12, ErrorCode::kFormat, "PNG chunk at byte ", pos, " runs past the end");
    const std::string type = png.substr(pos + 4, 4);
    const std::string body = png.substr(pos + 8, len);
    pos += 12 + len;
    const size_t nul = body.find('\0');
    if (nul == std::string::npos) continue;
    if (type == "tEXt") {
      out.emplace_back(body.substr(0, nul), body.substr(nul + 1));
    } else if (type == "iTXt" && nul + 2 < body.size() && body[nul + 1] == 0) {
      // keyword \0 compression-flag method language \0 translated-keyword \0 text
      const size_t lang_end = body.find('\0', nul + 3);
      const size_t tkey_end = lang_end == std::string::npos ? lang_end : body.find('\0', lang_end + 1);
      if (tkey_end != std::string::npos) out.emplace_back(body.substr(0, nul), body.substr(tkey_end + 1));
    }
    if (type == "IEND") break;
  }
  return out;
}

void write_png(const std::filesystem::path& path, const Image& image,
               const std::vector<std::pair<std::string, std::string>>& text_chunks) {
  const std::string png = detail::with_context(path.string(), [&] { return encode_png(image, text_chunks); });
  write_file_atomic(path, png);
}

}  // namespace gill::io
