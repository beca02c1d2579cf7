// PNG chunk layout: ISO/IEC 15948 (PNG spec) §5.3 (length, type, data, CRC-32 over type+data), §11.3.4 (tEXt, iTXt).
#include "pipeline/sd_png.h"

#include <stb_image_write.h>

#include <array>
#include <cstring>

#include "io/atomic_file.h"
#include "util/error.h"

namespace gill::pipeline {

using detail::str_cat;

namespace {

uint32_t crc32(const std::string& bytes) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : bytes) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

void put_u32(std::string& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xFF));
}

uint32_t get_u32(const std::string& s, size_t pos) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[pos + i]);
  return v;
}

std::string chunk(const std::string& type, const std::string& data) {
  std::string out;
  put_u32(out, static_cast<uint32_t>(data.size()));
  const std::string body = type + data;
  out += body;
  put_u32(out, crc32(body));
  return out;
}

bool printable_ascii(const std::string& s) {
  for (unsigned char c : s)
    if (c > 126 || (c < 32 && c != '\n')) return false;
  return true;
}

void stb_append(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

}  // namespace

std::string encode_png(const Image& image, const PngText& text) {
  GILL_CHECK(!image.empty(), ErrorCode::kInvalidArgument, "cannot write an empty image");
  GILL_CHECK(image.pixels.size() == static_cast<size_t>(image.width) * image.height * 3, ErrorCode::kInvalidArgument,
             "image has ", image.pixels.size(), " bytes, expected ", image.width, "x", image.height, "x3");
  std::string png;
  const int ok = stbi_write_png_to_func(stb_append, &png, image.width, image.height, 3, image.pixels.data(),
                                        image.width * 3);
  GILL_CHECK(ok != 0 && png.size() > 33, ErrorCode::kInternal, "PNG encoding failed");
  std::string chunks;
  for (const auto& [key, value] : text) {
    GILL_CHECK(!key.empty() && key.size() <= 79 && printable_ascii(key) && key.find('\n') == std::string::npos,
               ErrorCode::kInvalidArgument, "invalid PNG text keyword '", key, "'");
    if (printable_ascii(value)) {
      chunks += chunk("tEXt", key + '\0' + value);
    } else {
      // iTXt: keyword\0, compression flag 0, method 0, language tag "" \0, translated keyword "" \0, UTF-8 text
      chunks += chunk("iTXt", key + std::string("\0\0\0\0\0", 5) + value);
    }
  }
  // Signature (8) + IHDR (4 + 4 + 13 + 4 = 25): the text goes right after IHDR.
  png.insert(33, chunks);
  return png;
}

void write_png(const std::filesystem::path& path, const Image& image, const PngText& text) {
  const std::string bytes = encode_png(image, text);
  detail::with_context(str_cat("writing ", path.string()), [&] {
    io::AtomicFile f(path);
    f.write(bytes);
    f.commit();
    return 0;
  });
}

PngText read_png_text(const std::string& s) {
  static const char kSig[] = "\x89PNG\r\n\x1a\n";
  GILL_CHECK(s.size() >= 8 && std::memcmp(s.data(), kSig, 8) == 0, ErrorCode::kFormat, "not a PNG file");
  PngText out;
  size_t pos = 8;
  while (pos + 12 <= s.size()) {
    const uint32_t len = get_u32(s, pos);
    GILL_CHECK(pos + 12 + len <= s.size(), ErrorCode::kFormat, "truncated PNG chunk at offset ", pos);
    const std::string type = s.substr(pos + 4, 4);
    const std::string data = s.substr(pos + 8, len);
    if (type == "tEXt") {
      const size_t z = data.find('\0');
      if (z != std::string::npos) out.emplace_back(data.substr(0, z), data.substr(z + 1));
    } else if (type == "iTXt") {
      const size_t z = data.find('\0');
      if (z != std::string::npos && z + 2 < data.size() && data[z + 1] == 0) {
        size_t p = z + 3;                      // skip compression flag and method
        p = data.find('\0', p);                // language tag
        if (p != std::string::npos) p = data.find('\0', p + 1);  // translated keyword
        if (p != std::string::npos) out.emplace_back(data.substr(0, z), data.substr(p + 1));
      }
    }
    if (type == "IEND") break;
    pos += 12 + len;
  }
  return out;
}

}  // namespace gill::pipeline
