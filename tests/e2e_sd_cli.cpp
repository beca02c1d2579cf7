// `gill sd` end to end on the fixture SD folder: a PNG with its text chunks, dumps that reproduce the run through
// --init-latents, and bad input (clear message, non-zero exit, no PNG).
#include <fstream>
#include <sstream>

#include "io/safetensors.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "test_support.h"

using namespace gill;
using gill::test::run_cli;
using gill::test::shared_dir;
using gill::test::temp_dir;

namespace {

std::filesystem::path sd_dir() { return shared_dir() / "fixtures/models/runwayml/stable-diffusion-tiny"; }

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

std::string text_value(const std::vector<std::pair<std::string, std::string>>& t, const std::string& key) {
  for (const auto& [k, v] : t)
    if (k == key) return v;
  return "<missing>";
}

}  // namespace

TEST(SdCli, MakesPngWithTextAndReproducibleDump) {
  GILL_REQUIRE_PATH(sd_dir());
  auto dir = temp_dir("sdcli");
  const auto png = dir / "out.png", dump = dir / "dump.safetensors";
  auto r = run_cli({"-q", "sd", "--sd", sd_dir().string(), "-p", "a photo of a cat", "--steps", "3", "--seed", "42",
                    "-o", png.string(), "--dump-tensors", dump.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string bytes = slurp(png);
  ASSERT_GT(bytes.size(), 100u);
  auto text = io::read_png_text(bytes);
  EXPECT_EQ(text_value(text, "prompt"), "a photo of a cat");
  EXPECT_EQ(text_value(text, "seed"), "42");
  EXPECT_EQ(text_value(text, "steps"), "3");
  EXPECT_EQ(text_value(text, "cfg_scale"), "7.5");
  EXPECT_EQ(text_value(text, "scheduler"), "pndm");
  io::SafetensorsFile d(dump);
  for (const char* name : {"sd.text_emb", "sd.uncond_emb", "sd.latents.init", "sd.eps", "sd.latents.final", "sd.image"})
    EXPECT_TRUE(d.contains(name)) << name;
  EXPECT_EQ(d.get("sd.eps").sizes(), (at::IntArrayRef{4, 1, 4, 8, 8}));  // PNDM: 3 steps = 4 calls
  EXPECT_EQ(d.get("sd.image").sizes(), (at::IntArrayRef{64, 64, 3}));

  // --init-latents from the dump reproduces the same image with a different seed argument.
  const auto png2 = dir / "again.png", dump2 = dir / "again.safetensors";
  r = run_cli({"-q", "sd", "--sd", sd_dir().string(), "-p", "a photo of a cat", "--steps", "3", "--seed", "7", "-o",
               png2.string(), "--init-latents", dump.string(), "--dump-tensors", dump2.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  io::SafetensorsFile d2(dump2);
  EXPECT_TRUE(torch::equal(d.get("sd.image"), d2.get("sd.image")));
  EXPECT_EQ(text_value(io::read_png_text(slurp(png2)), "seed"), "init-latents:" + dump.string());

  // Other schedulers and a non-default size run too.
  for (const char* s : {"ddim", "euler", "dpm++2m"}) {
    r = run_cli({"-q", "sd", "--sd", sd_dir().string(), "-p", "x", "--steps", "2", "--scheduler", s, "-W", "80", "-H",
                 "64", "-o", (dir / (std::string(s) + ".png")).string()});
    EXPECT_EQ(r.exit_code, 0) << s << ": " << r.err;
  }
  std::filesystem::remove_all(dir);
}

TEST(SdCli, BadInputFailsCleanly) {
  GILL_REQUIRE_PATH(sd_dir());
  auto dir = temp_dir("sdcli-bad");
  const auto png = dir / "out.png";
  struct Case {
    std::vector<std::string> extra;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--scheduler", "lms"}, "unknown scheduler 'lms' (expected one of: pndm, ddim, euler, dpm++2m)"},
      {{"--steps", "-2"}, "--steps must be at least 1, got -2"},
      {{"-W", "60"}, "--width must be a positive multiple of 8, got 60"},
      {{"--dtype", "int8"}, "int8"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"sd", "--sd", sd_dir().string(), "-p", "x", "-o", png.string()};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    auto r = run_cli(args);
    EXPECT_NE(r.exit_code, 0) << c.message;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(png)) << c.message;
  }
  auto r = run_cli({"sd", "--sd", sd_dir().string(), "-p", "x", "-o", (dir / "no/such/dir/out.png").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no such folder"), std::string::npos) << r.err;
  r = run_cli({"sd", "--sd", (dir / "missing").string(), "-p", "x", "-o", png.string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("loading Stable Diffusion from"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(png));
  std::filesystem::remove_all(dir);
}
