// The whole GILL turn against the reference's own GILL.generate_for_images_and_texts on the fixture weights
// (fp32): prompt embeddings, generated ids, per-step logits, [IMG] positions and hidden states, retrieval scores
// and order, decision logits and label, mapper output. The KV-cached loop is compared with the reference's
// full recomputation (its last step's hidden states cover every fed position).
#include <fstream>

#include "io/safetensors.h"
#include "models/clip_image_processor.h"
#include "pipeline/gill_model.h"
#include "test_support.h"
#include "util/error.h"

using namespace gill;
using gill::test::data_dir;
using gill::test::shared_dir;
using gill::test::tensors_close;
namespace fs = std::filesystem;

namespace {

struct Fixture {
  std::unique_ptr<pipeline::GILLModel> model;
  std::vector<pipeline::PromptItem> prompt;
};

Fixture& fixture() {
  static Fixture f = [] {
    Fixture x;
    pipeline::GILLModelOptions o;
    o.paths.root = shared_dir() / "fixtures" / "models";
    // The native files: pretrained_ckpt.pth.tar, decision_model.pth.tar, cc3m_embeddings_urls.npy (SOURCE.md).
    o.paths.gill = data_dir() / "gill_opt";
    o.load_sd = false;
    x.model = pipeline::GILLModel::load(o);
    io::SafetensorsFile imgs(data_dir() / "gill" / "prompt_images.safetensors");
    auto image = [&](const char* name) {
      pipeline::PromptItem it;
      it.is_image = true;
      it.image = models::image_from_hwc_uint8(imgs.get(std::string("inputs.") + name + ".rgb_uint8"));
      it.image_path = name;
      return it;
    };
    auto text = [](const char* t) {
      pipeline::PromptItem it;
      it.text = t;
      return it;
    };
    x.prompt = {image("clip_input_0.png"), text("What is in this image?"), image("clip_input_1.png"),
                text("Show me a picture of a dog.")};
    return x;
  }();
  return f;
}

io::SafetensorsFile& gill_expected() {
  static io::SafetensorsFile f(data_dir() / "gill" / "expected_gill.safetensors");
  return f;
}
torch::Tensor E(const std::string& n) { return gill_expected().get(n, torch::kFloat32); }

std::vector<int64_t> ids_of(const torch::Tensor& t) {
  auto c = t.reshape({-1}).to(torch::kInt64).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// Finite entries compared with tolerance, -inf entries must be -inf on both sides.
::testing::AssertionResult logits_close(const torch::Tensor& a, const torch::Tensor& e, const std::string& what) {
  auto fin = torch::isfinite(e);
  if (!torch::equal(fin, torch::isfinite(a))) return ::testing::AssertionFailure() << what << ": -inf pattern differs";
  return tensors_close(a.masked_select(fin), e.masked_select(fin), 1e-4, 1e-5, what);
}

struct RunSpec {
  const char* name;
  int64_t n_words, min_word_tokens;
  double ret_scale;
  bool text_prompt;
};

pipeline::TurnResult run(const RunSpec& s, io::TensorDump* dump) {
  auto& f = fixture();
  pipeline::CachedLM lm(*f.model->lm);
  auto b = f.model->backbones(lm, nullptr);
  pipeline::TurnOptions opt;
  opt.decode.n_words = s.n_words;
  opt.decode.min_word_tokens = s.min_word_tokens;
  opt.decode.ret_scale_factor = s.ret_scale;
  std::vector<pipeline::PromptItem> prompt = f.prompt;
  if (s.text_prompt) {
    pipeline::PromptItem it;
    it.text = "A photo of a dog playing with a ball on the beach.";
    prompt = {it};
  }
  return pipeline::run_turn(f.model->weights, b, prompt, opt, dump);
}

void check_common(const RunSpec& s) {
  io::TensorDump dump;
  auto r = run(s, &dump);
  const std::string p = std::string("generate.") + s.name + ".";
  EXPECT_TRUE(tensors_close(dump.get("gill.input_embeds"), E(p + "input_embs"), 1e-4, 1e-5, p + "input_embs"));
  EXPECT_EQ(r.ids, ids_of(E(p + "generated_ids")));
  auto steps = dump.get("gill.step_logits");
  auto exp_steps = E(p + "step_logits");
  ASSERT_EQ(steps.sizes(), exp_steps.sizes());
  for (int64_t i = 0; i < steps.size(0); ++i)
    EXPECT_TRUE(logits_close(steps[i], exp_steps[i], p + "step_logits[" + std::to_string(i) + "]"));
}

}  // namespace

TEST(GillFixture, TextOnly) {
  GILL_REQUIRE_PATH(shared_dir() / "fixtures" / "models");
  check_common({"text_only", 16, 16, 1.0, false});
}

TEST(GillFixture, Natural) {
  GILL_REQUIRE_PATH(shared_dir() / "fixtures" / "models");
  check_common({"natural", 5, 0, 1.0, false});
  auto r = run({"natural", 5, 0, 1.0, false}, nullptr);
  EXPECT_EQ(r.caption_text, " li liWeWe\x15");  // summary.json return_outputs
}

TEST(GillFixture, ForcedImgWithKvCacheEqualsFullRecomputation) {
  GILL_REQUIRE_PATH(shared_dir() / "fixtures" / "models");
  RunSpec s{"forced_img", 5, 2, 10000.0, false};
  check_common(s);
  io::TensorDump dump;
  auto r = run(s, &dump);
  const std::string p = "generate.forced_img.";
  // The reference's last full forward covers the prompt (30) and 18 generated positions.
  auto full = E(p + "last_step_hidden_states")[0];  // [48, 64]
  ASSERT_EQ(r.blocks.size(), 1u);  // max_num_rets = 1 block processed
  EXPECT_EQ(r.blocks[0].position, 2);
  EXPECT_TRUE(tensors_close(dump.get("gill.img_hidden"), E(p + "raw_emb")[0], 1e-4, 1e-5, p + "raw_emb"));
  EXPECT_TRUE(tensors_close(dump.get("gill.img_hidden"), full.narrow(0, 32, 8), 1e-4, 1e-5, "full recompute"));
  EXPECT_TRUE(tensors_close(dump.get("gill.decision_logits"), E(p + "decision_logits"), 1e-4, 1e-5, "decision"));
  EXPECT_EQ(r.blocks[0].decision, "ret");
  EXPECT_NEAR(r.blocks[0].p_gen, 0.42454802989959717, 1e-4);
  EXPECT_NEAR(r.blocks[0].p_ret, 0.5754519701004028, 1e-4);
  EXPECT_TRUE(tensors_close(dump.get("gill.ret_emb"), E(p + "ret_fc_out")[0], 1e-4, 1e-5, "ret_emb"));
  EXPECT_TRUE(tensors_close(dump.get("gill.ret_scores"), E(p + "retrieval_scores").reshape({-1}), 1e-4, 1e-5,
                            "ret_scores"));
  ASSERT_EQ(r.blocks[0].retrieved.size(), 1u);  // max_num_rets honoured (the reference returns 3)
  EXPECT_EQ(r.blocks[0].retrieved[0].index, 5);
  EXPECT_NEAR(r.blocks[0].retrieved[0].score, -2.726483106613159, 1e-4);
  EXPECT_EQ(r.blocks[0].retrieved[0].path, "http://cc3m.invalid/retrieval_images/000005.png");
  EXPECT_EQ(r.caption_text, " li li [IMG0][IMG1][IMG2][IMG3][IMG4][IMG5][IMG6][IMG7]");
}

TEST(GillFixture, TextPromptForcedImg) {
  GILL_REQUIRE_PATH(shared_dir() / "fixtures" / "models");
  RunSpec s{"text_prompt_forced_img", 3, 0, 10000.0, true};
  check_common(s);
  io::TensorDump dump;
  auto r = run(s, &dump);
  const std::string p = "generate.text_prompt_forced_img.";
  EXPECT_TRUE(tensors_close(dump.get("gill.img_hidden"), E(p + "raw_emb")[0], 1e-4, 1e-5, p + "raw_emb"));
  ASSERT_EQ(r.blocks.size(), 1u);
  EXPECT_EQ(r.blocks[0].decision, "ret");
  EXPECT_EQ(r.blocks[0].retrieved[0].index, 1);
  EXPECT_EQ(r.caption_text, " [IMG0][IMG1][IMG2][IMG3][IMG4][IMG5][IMG6][IMG7]");
}

TEST(GillFixture, MapperRunsForGenerateAndAlwaysGenerate) {
  GILL_REQUIRE_PATH(shared_dir() / "fixtures" / "models");
  auto& f = fixture();
  pipeline::CachedLM lm(*f.model->lm);
  auto b = f.model->backbones(lm, nullptr);
  int calls = 0;
  torch::Tensor seen_embeds;
  b.generate_image = [&](const torch::Tensor& pe, uint64_t) {
    ++calls;
    seen_embeds = pe.clone();
    gill::Image im;
    im.width = im.height = 1;
    im.pixels = {0, 0, 0};
    return im;
  };
  pipeline::TurnOptions opt;
  opt.decode.n_words = 5;
  opt.decode.min_word_tokens = 2;
  opt.decode.ret_scale_factor = 10000;
  pipeline::run_turn(f.model->weights, b, f.prompt, opt, nullptr);
  EXPECT_EQ(calls, 0);  // decision "ret": SD does not run
  opt.always_generate = true;
  io::TensorDump dump;
  pipeline::CachedLM lm2(*f.model->lm);
  b.lm = &lm2;
  pipeline::run_turn(f.model->weights, b, f.prompt, opt, &dump);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(tensors_close(dump.get("gill.mapper_out"), E("generate.forced_img.gen_emb")[0], 1e-4, 1e-5, "gen_emb"));
  EXPECT_TRUE(tensors_close(seen_embeds[0], E("generate.forced_img.gen_emb")[0], 1e-4, 1e-5, "SD prompt embeds"));
}

TEST(GillFixture, EmptyPrompt) {
  GILL_REQUIRE_PATH(shared_dir() / "fixtures" / "models");
  auto& f = fixture();
  pipeline::CachedLM lm(*f.model->lm);
  auto b = f.model->backbones(lm, nullptr);
  try {
    pipeline::run_turn(f.model->weights, b, {}, pipeline::TurnOptions{}, nullptr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "empty prompt: give at least one text or image");
  }
}

TEST(GillFixture, StableDiffusionSubRunAndRankScore) {
  // The forced_img block with always_generate: the mapper output goes into the fixture SD (PNDM, 5 steps,
  // guidance 7.5, the reference's recorded initial latents), then the generated image is re-ranked.
  GILL_REQUIRE_PATH(shared_dir() / "fixtures" / "models" / "runwayml" / "stable-diffusion-tiny");
  auto& f = fixture();
  auto sd = pipeline::StableDiffusion::load(shared_dir() / "fixtures" / "models" / "runwayml" / "stable-diffusion-tiny");
  const std::string p = "generate.forced_img.";
  io::TensorDump dump;
  pipeline::CachedLM lm(*f.model->lm);
  auto b = f.model->backbones(lm, nullptr);
  b.generate_image = [&](const torch::Tensor& pe, uint64_t) {
    pipeline::SDParams sp;
    sp.prompt_embeds = pe;
    sp.n_steps = 5;
    sp.init_latents = E(p + "sd.initial_latents");
    return sd.generate(sp, nullptr, &dump);
  };
  pipeline::TurnOptions opt;
  opt.decode.n_words = 5;
  opt.decode.min_word_tokens = 2;
  opt.decode.ret_scale_factor = 10000;
  opt.always_generate = true;
  auto r = pipeline::run_turn(f.model->weights, b, f.prompt, opt, &dump);
  ASSERT_EQ(r.blocks.size(), 1u);
  ASSERT_TRUE(r.blocks[0].generated.has_value());
  auto pe = E(p + "sd.prompt_embeds");  // [uncond, cond]
  EXPECT_TRUE(tensors_close(dump.get("sd.uncond_emb").reshape({77, -1}), pe[0], 1e-4, 1e-5, "SD uncond"));
  EXPECT_TRUE(tensors_close(dump.get("sd.text_emb").reshape({77, -1}), pe[1], 1e-4, 1e-5, "SD cond = gen_emb"));
  EXPECT_TRUE(tensors_close(dump.get("sd.eps"), E(p + "sd.guided_noise_pred"), 1e-4, 1e-4, "SD guided noise"));
  EXPECT_TRUE(tensors_close(dump.get("sd.vae_out"), E(p + "sd.vae_out"), 1e-3, 1e-4, "SD VAE decode"));
  // Re-ranking: cosine of the generated image's retrieval embedding with the block's (-0.30118617 upstream; the
  // image goes through uint8 as the reference's PIL image does).
  ASSERT_TRUE(r.blocks[0].has_gen_rank_score);
  EXPECT_NEAR(r.blocks[0].gen_rank_score, -0.3011861741542816, 2e-3);
}
