// Image decoding against PIL's Image.open(f).convert("RGB") (decoded arrays in tests/data/io/*.pil.npy, written
// by make_data.py with PIL 9.4), PNG writing with text chunks.
#include <gtest/gtest.h>

#include "io/atomic_file.h"
#include "io/image.h"
#include "io/npy.h"
#include "test_support.h"
#include "util/error.h"

using gill::test::io_data;
using gill::test::expect_error;

using namespace gill;
using gill::test::data_dir;

namespace {
// Measured: stb_image decodes both JPEG fixtures bit-identically to PIL 9.4 (libjpeg-turbo); allow a little
// for other libjpeg builds' IDCT/upsampling rounding.
constexpr int JPEG_MAXDIFF = 2;
torch::Tensor as_tensor(const Image& im) {
  return torch::from_blob(const_cast<uint8_t*>(im.pixels.data()), {im.height, im.width, 3}, torch::kUInt8).clone();
}
}  // namespace

TEST(Image, MatchesPilExactly) {
  for (const char* name : {"img_rgb.png", "img_rgba.png", "img_gray.png", "img_la.png", "img_palette.png",
                           "img_rgb.bmp", "img_rgb.tga", "img_rgb.ppm", "img_gray.pgm", "img_rgb.gif",
                           "img_gray16.png", "img_rgb16.png", "retrieval_000000.png"}) {
    SCOPED_TRACE(name);
    const Image im = io::load_image(io_data(name));
    const torch::Tensor expected = io::load_npy(io_data(std::string(name) + ".pil.npy"));
    ASSERT_EQ(im.height, expected.size(0));
    ASSERT_EQ(im.width, expected.size(1));
    EXPECT_TRUE(torch::equal(as_tensor(im), expected));
  }
}

TEST(Image, JpegCloseToPil) {
  // stb_image and libjpeg-turbo (PIL) differ in IDCT/upsampling: bounded, small differences.
  for (const char* name : {"img_rgb.jpg", "img_gray.jpg"}) {
    const Image im = io::load_image(io_data(name));
    auto expected = io::load_npy(io_data(std::string(name) + ".pil.npy"));
    auto diff = (as_tensor(im).to(torch::kInt32) - expected.to(torch::kInt32)).abs();
    const int maxdiff = diff.max().item<int>();
    std::printf("%s: max |stb - PIL| = %d\n", name, maxdiff);
    EXPECT_LE(maxdiff, JPEG_MAXDIFF) << name;
  }
}

TEST(Image, BadFiles) {
  auto p = io_data("img_corrupt.png");
  expect_error([&] { io::load_image(p); }, ErrorCode::kFormat, p.string() + ": cannot decode image: PNG data is corrupt or truncated");
  p = io_data("img_truncated.jpg");
  expect_error([&] { io::load_image(p); }, ErrorCode::kFormat, p.string() + ": cannot decode image: JPEG data is corrupt or truncated");
  p = io_data("img_empty.png");
  expect_error([&] { io::load_image(p); }, ErrorCode::kFormat, p.string() + ": cannot decode image: empty file");
  expect_error([&] { io::load_image(io_data("nope.png")); }, ErrorCode::kNotFound,
               io_data("nope.png").string() + ": no such file");
  // A PNG header claiming 20000 x 20000 pixels.
  std::string png = io::read_file(io_data("img_rgb.png"));
  for (int k = 0; k < 4; ++k) png[16 + k] = png[20 + k] = static_cast<char>((20000u >> (24 - 8 * k)) & 0xFF);
  expect_error([&] { io::load_image_from_memory(png.data(), png.size(), "big.png"); }, ErrorCode::kFormat,
               "big.png: cannot decode image: 20000x20000 pixels exceeds the limit of 100000000 pixels");
  // 0xFFFFFFFF x 0xFFFFFFFF: the product overflowed int64 (UBSan, fuzz_image) and the message said "corrupt".
  for (int k = 0; k < 4; ++k) png[16 + k] = png[20 + k] = static_cast<char>(0xFF);
  expect_error([&] { io::load_image_from_memory(png.data(), png.size(), "huge.png"); }, ErrorCode::kFormat,
               "huge.png: cannot decode image: 4294967295x4294967295 pixels exceeds the limit of 100000000 pixels");
}

TEST(Image, PngWriteWithTextRoundTrip) {
  const auto dir = gill::test::temp_dir("image_png");
  Image im = io::load_image(io_data("img_rgb.png"));
  const auto p = dir / "out.png";
  io::write_png(p, im, {{"prompt", "a cat"}, {"Comment", "caf\xc3\xa9"}});
  const Image back = io::load_image(p);
  EXPECT_EQ(back.pixels, im.pixels);
  const std::string bytes = io::read_file(p);
  EXPECT_NE(bytes.find(std::string("tEXtprompt\0a cat", 16)), std::string::npos);
  EXPECT_NE(bytes.find(std::string("iTXtComment\0\0\0\0\0caf\xc3\xa9", 21)), std::string::npos);
  const auto text = io::read_png_text(bytes);
  ASSERT_EQ(text.size(), 2u);
  EXPECT_EQ(text[0], (std::pair<std::string, std::string>{"prompt", "a cat"}));
  EXPECT_EQ(text[1], (std::pair<std::string, std::string>{"Comment", "caf\xc3\xa9"}));
  EXPECT_THROW(io::read_png_text("GIF89a"), Error);
  EXPECT_EQ(io::crc32(reinterpret_cast<const uint8_t*>("123456789"), 9), 0xCBF43926u);
  std::filesystem::remove_all(dir);
}

// The reference's reader (Pillow) sees the same text chunks and size; reported as skipped without Pillow.
TEST(Image, PngTextChunksReadByPillow) {
  if (std::system("/usr/bin/python3 -c 'import PIL' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with Pillow (PIL) absent: the Pillow read-back of the PNG text chunks is not run";
  const auto dir = gill::test::temp_dir("image_png_pil");
  const auto p = dir / "out.png";
  io::write_png(p, io::load_image(io_data("img_rgb.png")), {{"prompt", "a cat"}, {"Comment", "caf\xc3\xa9"}});
  const std::string cmd = "/usr/bin/python3 -c \"from PIL import Image; im = Image.open('" + p.string() +
                          "'); im.load(); assert im.text['prompt'] == 'a cat', im.text; "
                          "assert im.text['Comment'] == 'caf\\u00e9'; assert im.size == (5, 7)\"";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::filesystem::remove_all(dir);
}
