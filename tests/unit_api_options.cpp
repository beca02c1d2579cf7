// The public API's option validation (exact messages), version, the c10::Error -> gill::Error boundary, image
// files, and progress formatting.
#include <gill/gill.h>
#include <gill/version.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "api/boundary.h"
#include "test_support.h"
#include <gill/progress.h>

namespace gill::test {
namespace {

template <typename Fn>
std::string message_of(Fn&& fn, ErrorCode expected = ErrorCode::kInvalidArgument) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), expected) << e.what();
    return e.what();
  }
  return "(no error)";
}

TEST(ApiOptions, DefaultsAreTheReferences) {
  GenerateOptions g;
  EXPECT_NO_THROW(g.validate());
  EXPECT_EQ(g.num_words, 32);
  EXPECT_EQ(g.min_word_tokens, 0);
  EXPECT_EQ(g.ret_scale_factor, 1.0f);
  EXPECT_EQ(g.gen_scale_factor, 1.0f);
  EXPECT_EQ(g.temperature, 0.0f);
  EXPECT_EQ(g.top_p, 1.0f);
  EXPECT_EQ(g.max_num_rets, 1);
  EXPECT_EQ(g.steps, 50);
  EXPECT_EQ(g.guidance_scale, 7.5f);
  EXPECT_EQ(g.scheduler, "pndm");
  EXPECT_FALSE(g.always_generate);
}

TEST(ApiOptions, GenerateMessagesNameTheField) {
  auto msg = [](auto set) {
    GenerateOptions g;
    set(g);
    return message_of([&] { g.validate(); });
  };
  EXPECT_EQ(msg([](GenerateOptions& g) { g.num_words = 0; }), "GenerateOptions.num_words = 0: must be in [1, 1048576]");
  EXPECT_EQ(msg([](GenerateOptions& g) { g.min_word_tokens = -1; }),
            "GenerateOptions.min_word_tokens = -1: must be in [0, 1048576]");
  EXPECT_EQ(msg([](GenerateOptions& g) { g.ret_scale_factor = -0.5f; }),
            "GenerateOptions.ret_scale_factor = -0.5: must be a finite number >= 0");
  EXPECT_EQ(msg([](GenerateOptions& g) { g.gen_scale_factor = NAN; }),
            "GenerateOptions.gen_scale_factor = nan: must be a finite number >= 0");
  EXPECT_EQ(msg([](GenerateOptions& g) { g.temperature = -1; }),
            "GenerateOptions.temperature = -1: must be a finite number >= 0");
  EXPECT_EQ(msg([](GenerateOptions& g) { g.top_p = 0; }), "GenerateOptions.top_p = 0: must be in (0, 1]");
  EXPECT_EQ(msg([](GenerateOptions& g) { g.top_p = 1.5f; }), "GenerateOptions.top_p = 1.5: must be in (0, 1]");
  EXPECT_EQ(msg([](GenerateOptions& g) { g.max_num_rets = 0; }),
            "GenerateOptions.max_num_rets = 0: must be in [1, 1048576]");
  EXPECT_EQ(msg([](GenerateOptions& g) { g.steps = 0; }), "GenerateOptions.steps = 0: must be in [1, 1000]");
  EXPECT_EQ(msg([](GenerateOptions& g) { g.guidance_scale = INFINITY; }),
            "GenerateOptions.guidance_scale = inf: must be a finite number >= 0");
  EXPECT_EQ(msg([](GenerateOptions& g) { g.scheduler = "lms"; }),
            "GenerateOptions.scheduler = \"lms\": must be one of pndm, ddim, euler, dpm++2m");
}

TEST(ApiOptions, EngineMessagesNameTheField) {
  auto msg = [](auto set) {
    EngineOptions e;
    e.weights_root = "weights";
    set(e);
    return message_of([&] { e.validate(); });
  };
  EXPECT_EQ(msg([](EngineOptions&) {}), "(no error)");
  EXPECT_EQ(msg([](EngineOptions& e) { e.device = "tpu"; }), "EngineOptions.device = \"tpu\": must be cpu, cuda or cuda:N");
  EXPECT_EQ(msg([](EngineOptions& e) { e.device = "cuda:"; }), "EngineOptions.device = \"cuda:\": must be cpu, cuda or cuda:N");
  EXPECT_EQ(msg([](EngineOptions& e) { e.device = "cuda:1"; }), "(no error)");
  EXPECT_EQ(msg([](EngineOptions& e) { e.dtype = "int8"; }),
            "EngineOptions.dtype = \"int8\": must be one of auto, fp32, bf16, fp16");
  EXPECT_EQ(msg([](EngineOptions& e) { e.threads = -2; }), "EngineOptions.threads = -2: must be in [0, 4096]");
  EXPECT_EQ(msg([](EngineOptions& e) { e.weights_root.clear(); }),
            "EngineOptions.lm_dir = \"\": give weights_root or the LLM folder");
  EXPECT_EQ(msg([](EngineOptions& e) {
              e.weights_root.clear();
              e.lm_dir = "a";
              e.clip_dir = "b";
              e.gill_dir = "c";
            }),
            "EngineOptions.sd_dir = \"\": give weights_root or the Stable Diffusion folder (or set load_sd = false)");
  EXPECT_EQ(msg([](EngineOptions& e) {
              e.weights_root.clear();
              e.lm_dir = "a";
              e.clip_dir = "b";
              e.gill_dir = "c";
              e.load_sd = false;
            }),
            "(no error)");
}

TEST(ApiVersion, MatchesTheHeader) {
  EXPECT_STREQ(version(), GILL_VERSION_STRING);
  EXPECT_EQ(std::string(version()),
            std::to_string(GILL_VERSION_MAJOR) + "." + std::to_string(GILL_VERSION_MINOR) + "." +
                std::to_string(GILL_VERSION_PATCH));
}

TEST(ApiBoundary, TranslatesBackendErrors) {
  EXPECT_EQ(detail::api_boundary("generate", [] { return 7; }), 7);
  // A gill::Error passes unchanged.
  EXPECT_EQ(message_of([] { detail::api_boundary("generate", [] { throw Error(ErrorCode::kNotFound, "x: gone"); }); },
                       ErrorCode::kNotFound),
            "x: gone");
  // c10::Error keeps its text, loses its backtrace, names the entry point.
  const std::string m = message_of(
      [] { detail::api_boundary("generate", [] { (void)torch::ones({2, 3}).matmul(torch::ones({2, 3})); }); },
      ErrorCode::kInternal);
  EXPECT_EQ(m.rfind("generate: mat1 and mat2 shapes cannot be multiplied (2x3 and 2x3)", 0), 0u) << m;
  EXPECT_EQ(m.find("Exception raised from"), std::string::npos) << m;
  EXPECT_EQ(message_of([] { detail::api_boundary("load", [] { throw std::bad_alloc(); }); }, ErrorCode::kInternal),
            "load: out of memory");
  EXPECT_EQ(message_of([] { detail::api_boundary("load", [] { throw std::runtime_error("odd"); }); },
                       ErrorCode::kInternal),
            "load: odd");
}

TEST(ApiImages, PngRoundTripAndErrors) {
  const auto dir = temp_dir("img");
  Image im;
  im.width = 5;
  im.height = 2;
  for (int i = 0; i < 30; ++i) im.pixels.push_back(static_cast<uint8_t>(i * 8));
  write_png(im, (dir / "a.png").string());
  const Image back = read_image((dir / "a.png").string());
  EXPECT_EQ(back.width, 5);
  EXPECT_EQ(back.height, 2);
  EXPECT_EQ(back.pixels, im.pixels);
  EXPECT_EQ(message_of([&] { read_image((dir / "none.png").string()); }, ErrorCode::kNotFound),
            (dir / "none.png").string() + ": no such image file");
  { std::ofstream((dir / "bad.png").string()) << "not a png"; }
  EXPECT_EQ(message_of([&] { read_image((dir / "bad.png").string()); }, ErrorCode::kFormat).rfind(
                (dir / "bad.png").string() + ": cannot decode image: ", 0),
            0u);
  Image wrong = im;
  wrong.pixels.pop_back();
  EXPECT_EQ(message_of([&] { write_png(wrong, (dir / "w.png").string()); }),
            (dir / "w.png").string() + ": image has 29 bytes, expected 5x2x3");
  std::filesystem::remove_all(dir);
}

TEST(Progress, Formatting) {
  EXPECT_EQ(format_duration(42), "00:42");
  EXPECT_EQ(format_duration(3725), "1:02:05");
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(format_progress("denoise", 25, 50, 10.0, "it", "", 10), "denoise  50%|#####     | 25/50 [00:10<00:10, 2.50 it/s]");
  EXPECT_EQ(format_progress("batch", 1, 4, 20.0, "item", "id=a", 0), "batch  25% 1/4 [00:20<01:00, 20.00 s/item] id=a");
  EXPECT_EQ(format_progress("load", 3, 0, 1.5, "tensor", "", 10), "load 3 tensor [00:02, 2.00 tensor/s]");
  EXPECT_EQ(format_progress("x", 0, 10, 0.0, "it", "", 0), "x   0% 0/10 [00:00<?, ? it/s]");
}

TEST(Progress, LinesWhenNotATerminal) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(progress_style_for(f, false), ProgressStyle::kLines);
  EXPECT_EQ(progress_style_for(f, true), ProgressStyle::kNone);
  {
    ProgressBar bar("steps", 20, ProgressStyle::kLines, f);
    for (int i = 0; i < 20; ++i) bar.add();
  }
  {
    ProgressBar quiet("steps", 20, ProgressStyle::kNone, f);
    quiet.add(20);
  }
  std::rewind(f);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, f)) out += buf;
  std::fclose(f);
  // One line per 10% (2, 4, ..., 20), no terminal codes, nothing from the quiet bar.
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 10) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos);
  EXPECT_EQ(out.find("steps  10% 2/20 ["), 0u) << out;
  EXPECT_NE(out.find("steps 100% 20/20 ["), std::string::npos) << out;
}

}  // namespace
}  // namespace gill::test
