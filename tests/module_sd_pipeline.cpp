// The Stable Diffusion pipeline on the tiny fixture SD folder against diffusers 0.17.1 runs
// (tests/data/sd_pipeline/{sd_pipeline,schedulers_extra}.safetensors): 5-step PNDM, DDIM, Euler and DPM++ 2M
// trajectories from given initial latents, a seed-only PNDM run, every stage within 1e-4 relative (final latents
// 1e-3), CFG order [uncond, cond], the prompt-embeddings (GILL) entry, and bad inputs.
#include "io/safetensors.h"
#include "io/tensor_dump.h"
#include "pipeline/sd_pipeline.h"
#include "test_support.h"
#include "util/error.h"

using namespace gill;
using gill::test::data_dir;
using gill::test::rel_error;
using gill::test::shared_dir;

namespace {

std::filesystem::path sd_dir() { return shared_dir() / "fixtures/models/runwayml/stable-diffusion-tiny"; }
const char* kPrompt = "a photo of a cat sitting on a table";

pipeline::StableDiffusion& sd() {
  static pipeline::StableDiffusion s = pipeline::StableDiffusion::load(sd_dir());
  return s;
}

const io::SafetensorsFile& pipe_file() {
  static io::SafetensorsFile f(data_dir() / "sd_pipeline" / "sd_pipeline.safetensors");
  return f;
}
const io::SafetensorsFile& extra_file() {
  static io::SafetensorsFile f(data_dir() / "sd_pipeline" / "schedulers_extra.safetensors");
  return f;
}

#define EXPECT_REL(actual, expected, tol, what)                                                  \
  do {                                                                                           \
    const double err_ = rel_error((actual), (expected));                                         \
    EXPECT_LT(err_, (tol)) << what << ": relative error " << err_;                               \
  } while (0)

// Runs `scheduler` from the reference's initial noise and compares every stage with `prefix`.*.
void check_run(const io::SafetensorsFile& f, const std::string& prefix, const std::string& scheduler,
               const torch::Tensor& noise, bool from_text) {
  pipeline::SDParams p;
  p.scheduler = scheduler;
  p.n_steps = 5;
  p.guidance_scale = 7.5;
  p.init_latents = noise;
  const torch::Tensor embeds = f.get(prefix + ".prompt_embeds");  // [2, 77, D]: [uncond, cond]
  if (from_text) {
    p.prompt = kPrompt;
  } else {
    p.prompt_embeds = embeds[1].unsqueeze(0);
    p.negative_prompt_embeds = embeds[0].unsqueeze(0);
  }
  io::TensorDump dump;
  Image im = sd().generate(p, nullptr, &dump);
  const std::string tag = prefix + (from_text ? " (text)" : " (embeds)");
  EXPECT_REL(dump.get("sd.uncond_emb")[0], embeds[0], 1e-4, tag + " uncond embeddings");
  EXPECT_REL(dump.get("sd.text_emb")[0], embeds[1], 1e-4, tag + " text embeddings");
  const torch::Tensor unet_t = f.get(prefix + ".unet_t");
  EXPECT_TRUE(torch::equal(dump.get("sd.timesteps"), unet_t)) << tag << " timesteps";
  const torch::Tensor init = f.get(prefix + ".initial_latents");
  EXPECT_REL(dump.get("sd.latents.init") * (scheduler == "euler" ? 14.614645004272461 : 1.0), init, 1e-6,
             tag + " initial latents");
  const torch::Tensor unet_out = dump.get("sd.unet_out"), eps = dump.get("sd.eps"), steps = dump.get("sd.latents.steps");
  ASSERT_EQ(unet_out.size(0), unet_t.size(0)) << tag;
  for (int64_t i = 0; i < unet_t.size(0); ++i) {
    const std::string s = tag + " call " + std::to_string(i);
    EXPECT_REL(unet_out[i], f.get(prefix + ".unet_out")[i], 1e-4, s + " UNet output [uncond, cond]");
    EXPECT_REL(eps[i], f.get(prefix + ".guided_noise_pred")[i], 1e-4, s + " guided noise");
    EXPECT_REL(steps[i], f.get(prefix + ".step_out")[i], 1e-4, s + " scheduler step");
  }
  EXPECT_REL(dump.get("sd.latents.final"), f.get(prefix + ".vae_in") * 0.18215, 1e-3, tag + " final latents");
  EXPECT_REL(dump.get("sd.vae_out"), f.get(prefix + ".vae_out"), 1e-4, tag + " VAE decode");
  // image: output_type='np' float NHWC in [0,1]; ours is round-half-even(x * 255) of the same.
  const torch::Tensor ref01 = f.get(prefix + ".image")[0];  // [64, 64, 3]
  const torch::Tensor ours = dump.get("sd.image").to(torch::kFloat32);
  EXPECT_EQ(ours.sizes(), ref01.sizes());
  EXPECT_LE((ours - torch::round(ref01 * 255)).abs().max().item<float>(), 1.0f) << tag << " uint8 image";
  EXPECT_EQ(im.width, 64);
  EXPECT_EQ(im.height, 64);
}

}  // namespace

class SDPipeline : public ::testing::Test {
 protected:
  void SetUp() override { GILL_REQUIRE_PATH(sd_dir()); }
};

TEST_F(SDPipeline, PndmFiveStepsFromLatents) {
  check_run(pipe_file(), "pndm", "pndm", pipe_file().get("pndm.initial_latents"), true);
}

TEST_F(SDPipeline, DdimFiveStepsFromLatents) {
  check_run(pipe_file(), "ddim", "ddim", pipe_file().get("ddim.initial_latents"), true);
}

TEST_F(SDPipeline, EulerFiveStepsFromLatents) {
  check_run(extra_file(), "sd.euler", "euler", extra_file().get("sd.explicit_latents"), true);
}

TEST_F(SDPipeline, DpmFiveStepsFromLatents) {
  check_run(extra_file(), "sd.dpmpp_2m", "dpm++2m", extra_file().get("sd.explicit_latents"), true);
}

// The GILL entry: conditioning given as embeddings (and the negative as embeddings too).
TEST_F(SDPipeline, PromptEmbeddingsEntry) {
  check_run(pipe_file(), "pndm", "pndm", pipe_file().get("pndm.initial_latents"), false);
}

TEST_F(SDPipeline, SeedOnlyPndmRun) {
  pipeline::SDParams p;
  p.prompt = kPrompt;
  p.n_steps = 5;
  p.seed = 42;
  io::TensorDump dump;
  sd().generate(p, nullptr, &dump);
  const auto& f = extra_file();
  EXPECT_TRUE(torch::equal(dump.get("sd.latents.init"), f.get("seeded_latents.seed42.1x4x8x8")));
  EXPECT_REL(dump.get("sd.eps"), f.get("sd.pndm_seed42.guided_noise_pred"), 1e-4, "seed 42 guided noise");
  EXPECT_REL(dump.get("sd.latents.final"), f.get("sd.pndm_seed42.vae_in") * 0.18215, 1e-3, "seed 42 final latents");
  EXPECT_REL(dump.get("sd.vae_out"), f.get("sd.pndm_seed42.vae_out"), 1e-3, "seed 42 VAE decode");
}

TEST_F(SDPipeline, NegativePromptIsCachedAndProgressCounts) {
  pipeline::SDParams p;
  p.prompt = kPrompt;
  p.n_steps = 2;
  std::vector<int64_t> seen;
  io::TensorDump d1, d2;
  sd().denoise(p, [&](int64_t done, int64_t total) { seen.push_back(done * 100 + total); }, &d1);
  sd().denoise(p, nullptr, &d2);
  EXPECT_EQ(seen, (std::vector<int64_t>{103, 203, 303}));  // PNDM: 2 steps = 3 UNet calls
  EXPECT_TRUE(torch::equal(d1.get("sd.uncond_emb"), d2.get("sd.uncond_emb")));
  EXPECT_TRUE(torch::equal(d1.get("sd.latents.final"), d2.get("sd.latents.final")));  // same seed, same result
}

TEST_F(SDPipeline, BadInputs) {
  auto msg = [](const pipeline::SDParams& p) -> std::string {
    try {
      sd().generate(p);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  pipeline::SDParams p;
  p.prompt = "x";
  p.n_steps = 1;
  auto q = p;
  q.width = 60;
  EXPECT_EQ(msg(q), "width and height must be positive multiples of 8, got 60x64");
  q = p;
  q.scheduler = "lms";
  EXPECT_EQ(msg(q), "unknown scheduler 'lms' (expected one of: pndm, ddim, euler, dpm++2m)");
  q = p;
  q.n_steps = -3;
  EXPECT_EQ(msg(q), "the number of steps must be at least 1, got -3");
  q = p;
  q.init_latents = torch::zeros({1, 4, 16, 16});
  EXPECT_EQ(msg(q), "initial latents have shape [1, 4, 16, 16], expected [1, 4, 8, 8] for 64x64");
  q = p;
  q.prompt_embeds = torch::zeros({1, 77, 768});
  EXPECT_EQ(msg(q), "prompt embeddings have shape [1, 77, 768], expected [1, T, 32]");
}
