// CLIP preprocessing: Pillow 9.4 resampling bit-exact, transformers 4.30 CLIPImageProcessor pixel values within
// 1e-6 (they come out identical), config parsing and bad inputs by message.
// Data: tests/data/clip/ (SOURCE.md): fixture copies and Pillow-generated cases.
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "models/clip_image_processor.h"
#include "models/pil_resize_window.h"
#include "test_support.h"
#include "util/error.h"

using gill::test::expect_error;

namespace gill::test {
namespace {

using models::CLIPImageProcessorConfig;
using nlohmann::json;

std::filesystem::path clip_data() { return data_dir() / "clip"; }

json load_cases() {
  std::ifstream in(clip_data() / "cases.json");
  return json::parse(in);
}

// The procedural image of make_clip_data.py (pattern()), bit for bit.
torch::Tensor make_pattern(int w, int h, uint64_t seed, int channels = 3) {
  auto t = torch::empty({h, w, channels}, torch::kUInt8);
  uint8_t* p = t.data_ptr<uint8_t>();
  for (uint64_t y = 0; y < uint64_t(h); ++y)
    for (uint64_t x = 0; x < uint64_t(w); ++x)
      for (uint64_t c = 0; c < uint64_t(channels); ++c) {
        uint64_t v = (x * 73856093ull ^ y * 19349663ull ^ c * 83492791ull ^ seed * 2654435761ull) & 0xFFFFFFFFull;
        v ^= v >> 13;
        v = (v * 0x5BD1E995ull) & 0xFFFFFFFFull;
        v ^= v >> 15;
        const uint64_t grad = (x * (3 + c) + y * (5 + 2 * c) + seed * 11) & 255;
        *p++ = static_cast<uint8_t>(((v >> 8) & 3) == 0 ? (v & 255) : grad);
      }
  return t;
}

CLIPImageProcessorConfig config_32() {
  return CLIPImageProcessorConfig::from_file(clip_data() / "fixture/clip-vit-tiny/preprocessor_config.json");
}

TEST(ClipPreprocess, ConfigFromPublishedFile) {
  const auto c = config_32();
  EXPECT_EQ(c.size, 32);
  EXPECT_EQ(c.crop_height, 32);
  EXPECT_EQ(c.crop_width, 32);
  EXPECT_TRUE(c.do_resize && c.do_center_crop && c.do_rescale && c.do_normalize);
  EXPECT_EQ(c.rescale_factor, 1.0 / 255.0);
  EXPECT_EQ(c.resample, 3);
  EXPECT_EQ(c.image_mean[0], 0.48145466);
  EXPECT_EQ(c.image_std[2], 0.27577711);
}

TEST(ClipPreprocess, ConfigDictForm) {
  const auto c = CLIPImageProcessorConfig::from_json(json::parse(
      R"({"size": {"shortest_edge": 224}, "crop_size": {"height": 200, "width": 210}, "do_rescale": false,
          "rescale_factor": 0.5, "resample": 2})"));
  EXPECT_EQ(c.size, 224);
  EXPECT_EQ(c.crop_height, 200);
  EXPECT_EQ(c.crop_width, 210);
  EXPECT_FALSE(c.do_rescale);
  EXPECT_EQ(c.rescale_factor, 0.5);
  EXPECT_EQ(c.resample, 2);
}

TEST(ClipPreprocess, ConfigErrors) {
  auto parse = [](const char* s) { return [s] { CLIPImageProcessorConfig::from_json(json::parse(s), "pp.json"); }; };
  expect_error(parse(R"({"size": {"height": 224, "width": 224}})"), ErrorCode::kUnsupported,
               R"(pp.json: "size" must have "shortest_edge" for CLIP, got {"height":224,"width":224})");
  expect_error(parse(R"({"size": "224"})"), ErrorCode::kFormat, R"(pp.json: "size" must be an integer, got "224")");
  expect_error(parse(R"({"image_mean": [0.5, 0.5]})"), ErrorCode::kFormat,
               R"(pp.json: "image_mean" must be 3 numbers, got [0.5,0.5])");
  expect_error(parse(R"({"resample": 0})"), ErrorCode::kUnsupported,
               "pp.json: resample 0 is not supported (1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING)");
  expect_error(parse(R"({"crop_size": 0})"), ErrorCode::kFormat,
               "pp.json: size and crop_size must be positive (size 224, crop 0x0)");
  expect_error(parse(R"({"do_resize": 1})"), ErrorCode::kFormat, R"(pp.json: "do_resize" must be true or false, got 1)");
  const auto missing = clip_data() / "no_such_preprocessor_config.json";
  expect_error([&] { CLIPImageProcessorConfig::from_file(missing); }, ErrorCode::kNotFound,
               missing.string() + ": cannot open the preprocessor config");
}

// Pillow's Image.resize on procedural images: every filter, up/down/mixed scales, 1-pixel edges. Exact.
TEST(ClipPreprocess, ResizeMatchesPillowExactly) {
  const auto cases = load_cases();
  io::SafetensorsFile expected(clip_data() / "clip_cases.safetensors");
  int i = 0;
  for (const auto& c : cases["resize"]) {
    const auto src = models::image_from_hwc_uint8(make_pattern(c["in_w"], c["in_h"], c["seed"]));
    const auto out = models::pil_resize(src, c["out_w"], c["out_h"], static_cast<models::PilFilter>(int(c["filter"])));
    const auto exp = expected.get("resize." + std::to_string(i));
    const auto got = models::image_to_hwc_uint8(out);
    ASSERT_EQ(got.sizes(), exp.sizes()) << c.dump();
    const int64_t n_diff = got.ne(exp).sum().item<int64_t>();
    EXPECT_EQ(n_diff, 0) << "case " << i << " " << c.dump() << ": max |diff| "
                         << (got.to(torch::kInt32) - exp.to(torch::kInt32)).abs().max().item<int>();
    ++i;
  }
  EXPECT_EQ(i, 15);
}

TEST(ClipPreprocess, ResizeOutputSizeTruncates) {
  const auto cases = load_cases();
  ASSERT_EQ(cases["resize_output_size"].size(), 10u);
  for (const auto& c : cases["resize_output_size"]) {
    const auto [h, w] = models::clip_resize_output_size(c["h"], c["w"], c["size"]);
    EXPECT_EQ(h, int(c["out"][0])) << c.dump();
    EXPECT_EQ(w, int(c["out"][1])) << c.dump();
  }
}

// The reference's own numbers: the fixture's two inputs (45x37 resized + cropped, 32x32 as is).
TEST(ClipPreprocess, FixturePixelValues) {
  io::SafetensorsFile fx(clip_data() / "fixture/expected_clip.safetensors");
  const auto cfg = config_32();
  std::vector<Image> images{models::image_from_hwc_uint8(fx.get("inputs.clip_input_0.png.rgb_uint8")),
                            models::image_from_hwc_uint8(fx.get("inputs.clip_input_1.png.rgb_uint8"))};
  EXPECT_EQ(images[0].width, 45);
  EXPECT_EQ(images[0].height, 37);
  const auto pv = models::clip_preprocess_batch(images, cfg);
  EXPECT_TRUE(tensors_close(pv, fx.get("pixel_values"), 0, 1e-6, "pixel_values"));
  EXPECT_TRUE(pv.equal(fx.get("pixel_values"))) << "not bit-identical";
}

// Aspect ratios, upscaling, short side already at size, crops larger than the resized image (zero padding).
TEST(ClipPreprocess, PixelValuesMatchReferenceTranscription) {
  io::SafetensorsFile expected(clip_data() / "clip_cases.safetensors");
  int i = 0;
  const auto cases = load_cases();
  for (const auto& c : cases["preprocess"]) {
    auto cfg = config_32();
    cfg.size = c["size"];
    cfg.crop_height = c["crop_h"];
    cfg.crop_width = c["crop_w"];
    const auto img = models::image_from_hwc_uint8(make_pattern(c["w"], c["h"], c["seed"]));
    const auto pv = models::clip_preprocess(img, cfg);
    const auto exp = expected.get("preprocess." + std::to_string(i));
    EXPECT_TRUE(tensors_close(pv, exp, 0, 1e-6, "preprocess case " + c.dump()));
    ++i;
  }
  EXPECT_EQ(i, 10);
}

// Grayscale, RGBA, LA, palette and 16-bit inputs after PIL's convert("RGB") (what the image loader returns).
TEST(ClipPreprocess, ConvertedModesMatchReference) {
  io::SafetensorsFile expected(clip_data() / "clip_cases.safetensors");
  const auto cfg = config_32();
  const auto cases = load_cases();
  ASSERT_EQ(cases["png"].size(), 6u);
  for (const auto& c : cases["png"]) {
    const std::string key = c["key"];
    const auto img = models::image_from_hwc_uint8(expected.get("png." + key + ".rgb"));
    EXPECT_TRUE(tensors_close(models::clip_preprocess(img, cfg), expected.get("png." + key + ".pixel_values"), 0,
                              1e-6, key));
  }
}

TEST(ClipPreprocess, SameSizeResizeIsACopy) {
  const auto img = models::image_from_hwc_uint8(make_pattern(9, 7, 1));
  const auto out = models::pil_resize_bicubic(img, 9, 7);
  EXPECT_EQ(out.pixels, img.pixels);
}

TEST(ClipPreprocess, ResizeWindowIsTheCropOfTheFullResize) {
  // Every filter, up and down and unchanged on each axis, windows at the edges and inside: bit-identical.
  const models::PilFilter filters[] = {models::PilFilter::kBox, models::PilFilter::kBilinear,
                                       models::PilFilter::kHamming, models::PilFilter::kBicubic,
                                       models::PilFilter::kLanczos};
  const int sizes[][4] = {{37, 23, 64, 40}, {37, 23, 11, 9}, {37, 23, 37, 50}, {37, 23, 80, 23}, {5, 90, 17, 13}};
  uint64_t rng = 12345;
  auto next = [&](int n) {
    return static_cast<int>((rng = rng * 6364136223846793005ull + 1442695040888963407ull) >> 33) % n;
  };
  int checked = 0;
  for (const auto f : filters)
    for (const auto& sz : sizes) {
      const auto img = models::image_from_hwc_uint8(make_pattern(sz[0], sz[1], uint64_t(sz[2])));
      const int nw = sz[2], nh = sz[3];
      const auto full = models::pil_resize(img, nw, nh, f);
      for (int trial = 0; trial < 6; ++trial) {
        const int w = trial == 0 ? nw : 1 + next(nw), h = trial == 0 ? nh : 1 + next(nh);
        const int x0 = trial == 1 ? 0 : (trial == 2 ? nw - w : next(nw - w + 1));
        const int y0 = trial == 1 ? nh - h : (trial == 2 ? 0 : next(nh - h + 1));
        const auto win = models::pil_resize_window(img, nw, nh, f, x0, y0, w, h);
        ASSERT_EQ(win.width, w);
        ASSERT_EQ(win.height, h);
        for (int y = 0; y < h; ++y)
          for (int x = 0; x < w * 3; ++x)
            ASSERT_EQ(win.pixels[(size_t(y) * w) * 3 + x], full.pixels[(size_t(y0 + y) * nw + x0) * 3 + x])
                << "filter " << int(f) << " " << sz[0] << "x" << sz[1] << " -> " << nw << "x" << nh << " window " << w
                << "x" << h << " at " << x0 << "," << y0;
        ++checked;
      }
    }
  EXPECT_EQ(checked, 150);
  expect_error(
      [&] {
        models::pil_resize_window(models::image_from_hwc_uint8(make_pattern(9, 7, 1)), 20, 10,
                                  models::PilFilter::kBicubic, 15, 0, 6, 10);
      },
      ErrorCode::kInvalidArgument, "pil_resize: window 6x10 at (15, 0) is not inside the 20x10 output");
}

TEST(ClipPreprocess, ExtremeAspectRatioResizesOnlyTheCrop) {
  // 60000x1: the full shortest-edge resize would be 13,440,000x224 (3 * 10^9 bytes, over pil_resize's limit); the
  // crop keeps 224x224 of it, and only that is computed. A flat colour stays flat through the bicubic filter.
  Image img{60000, 1, std::vector<uint8_t>(60000 * 3)};
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>(100 + i % 3);
  const CLIPImageProcessorConfig cfg;
  const auto t = models::clip_preprocess(img, cfg);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, 224, 224}));
  for (int c = 0; c < 3; ++c) {
    const float want =
        static_cast<float>((static_cast<float>((100 + c) / 255.0) - static_cast<float>(cfg.image_mean[c])) /
                           static_cast<float>(cfg.image_std[c]));
    EXPECT_EQ(t[c].min().item<float>(), want) << c;
    EXPECT_EQ(t[c].max().item<float>(), want) << c;
  }
}

TEST(ClipPreprocess, BadInputs) {
  Image empty;
  expect_error([&] { models::clip_preprocess(empty, config_32()); }, ErrorCode::kInvalidArgument,
               "clip_preprocess: empty image (0x0)");
  Image short_buf{4, 4, std::vector<uint8_t>(10)};
  expect_error([&] { models::clip_preprocess(short_buf, config_32()); }, ErrorCode::kInvalidArgument,
               "clip_preprocess: image of 4x4 has 10 bytes, expected 48 (RGB8)");
  const auto img = models::image_from_hwc_uint8(make_pattern(9, 7, 1));
  expect_error([&] { models::pil_resize_bicubic(img, 0, 5); }, ErrorCode::kInvalidArgument,
               "pil_resize: height and width must be > 0 (got 0x5)");
  expect_error([&] { models::pil_resize(img, 3, 5, models::PilFilter::kNearest); }, ErrorCode::kUnsupported,
               "resampling filter 0 (NEAREST) is not supported; use BICUBIC (3)");
  expect_error([&] { models::pil_resize_bicubic(img, 1 << 16, 1 << 13); }, ErrorCode::kInvalidArgument,
               "pil_resize: 9x7 -> 65536x8192 exceeds the limit of 268435456 pixels");
  expect_error([&] { models::image_from_hwc_uint8(torch::zeros({2, 2, 4}, torch::kUInt8)); },
               ErrorCode::kInvalidArgument, "expected a [H, W, 3] uint8 tensor, got [2, 2, 4] Byte");
}

}  // namespace
}  // namespace gill::test
