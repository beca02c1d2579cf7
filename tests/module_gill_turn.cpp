// A whole GILL turn (prompt assembly, decoding, decision, retrieval, generation routing, outputs) with the
// fixture's GILL heads and test doubles for the backbones (the LM, tokenizer, CLIP and SD are tested in their
// own suites; the end-to-end parity test binds the real ones).
#include <gill/result_json.h>

#include <fstream>
#include <map>

#include "api/turn_result.h"
#include "pipeline/gill_generate.h"
#include "test_support.h"
#include "util/error.h"

using namespace gill;
using namespace gill::pipeline;
using gill::test::data_dir;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kV = 418, kD = 64;
const std::vector<int64_t> kImg = {410, 411, 412, 413, 414, 415, 416, 417};

// An LM double: embeddings from a seeded table (the [IMG] rows are the checkpoint's), hidden = embedding +
// position, logits scripted by the last input token.
class FakeLM : public DecoderLM {
 public:
  explicit FakeLM(const torch::Tensor& img_rows) {
    auto g = at::detail::createCPUGenerator(7);
    table = torch::randn({kV, kD}, g);
    table.narrow(0, 410, 8).copy_(img_rows);
  }
  std::map<int64_t, int64_t> next;  // last input token -> preferred next token
  torch::Tensor table;
  int64_t past = 0;
  std::vector<int64_t> last_fed;

  Out feed(const torch::Tensor& embeds) override {
    const int64_t n = embeds.size(1);
    auto hidden = embeds[0].clone() + torch::arange(past, past + n).to(torch::kFloat32).unsqueeze(1) * 0.01;
    auto logits = torch::zeros({n, kV});
    // Identify the last input token by nearest table row.
    auto last = embeds[0][n - 1];
    const int64_t tok = (table - last).abs().sum(1).argmin().item<int64_t>();
    auto it = next.find(tok);
    logits[n - 1][it == next.end() ? 5 : it->second] = 1;
    past += n;
    return {logits, hidden};
  }
  torch::Tensor embed(const std::vector<int64_t>& ids) override {
    return table.index_select(0, torch::tensor(ids, torch::kInt64)).unsqueeze(0);
  }
  int64_t n_past() const override { return past; }
};

struct Setup {
  GILLWeights w;
  std::unique_ptr<FakeLM> lm;
  Backbones b;
  int sd_calls = 0;
  std::vector<std::vector<int64_t>> tokenized;
};

std::unique_ptr<Setup> make_setup() {
  auto s = std::make_unique<Setup>();
  auto dir = test::temp_dir("gill_turn");
  for (const char* f : {"model_args.json", "pretrained_ckpt.safetensors", "decision_model.safetensors"})
    fs::copy_file(data_dir() / "gill" / f, dir / f, fs::copy_options::overwrite_existing);
  s->w = load_gill_weights(dir, models::GILLArgs::from_file(dir / "model_args.json"),
                           data_dir() / "gill" / "cc3m_index.safetensors", torch::kFloat32);
  fs::remove_all(dir);
  s->lm = std::make_unique<FakeLM>(s->w.img_rows);
  s->b.lm = s->lm.get();
  s->b.token_ids = {kImg, 50};
  Setup* raw = s.get();
  s->b.tokenize = [raw](const std::string& t, bool bos) {
    std::vector<int64_t> ids;
    if (bos) ids.push_back(2);
    for (unsigned char c : t) ids.push_back(100 + c % 200);
    raw->tokenized.push_back(ids);
    return ids;
  };
  s->b.detokenize = [](const std::vector<int64_t>& ids) {
    std::string out;
    for (auto id : ids) out += id >= 410 ? "[IMG" + std::to_string(id - 410) + "]" : " w" + std::to_string(id);
    return out;
  };
  s->b.clip_pooled = [](const gill::Image& img) { return torch::full({1, 48}, img.pixels[0] / 255.0); };
  s->b.generate_image = [raw](const torch::Tensor& pe, uint64_t seed) {
    ++raw->sd_calls;
    EXPECT_EQ(pe.sizes(), (std::vector<int64_t>{1, 77, 32}));
    gill::Image im;
    im.width = im.height = 2;
    im.pixels.assign(12, static_cast<uint8_t>(seed));
    return im;
  };
  return s;
}

PromptItem text(const std::string& t) {
  PromptItem it;
  it.text = t;
  return it;
}
PromptItem image(uint8_t v) {
  PromptItem it;
  it.is_image = true;
  it.image.width = it.image.height = 1;
  it.image.pixels = {v, v, v};
  return it;
}

}  // namespace

TEST(GillTurn, PromptAssemblyBosOnlyBeforeFirstTextAndFourRowsPerImage) {
  torch::NoGradGuard ng;
  auto s = make_setup();
  io::TensorDump dump;
  auto e = assemble_prompt(s->w, s->b, {image(10), text("ab"), image(200), text("cd")}, true, &dump);
  EXPECT_EQ(e.sizes(), (std::vector<int64_t>{1, 4 + 3 + 4 + 2, kD}));
  ASSERT_EQ(s->tokenized.size(), 2u);
  EXPECT_EQ(s->tokenized[0].front(), 2);  // BOS on the first text only
  EXPECT_EQ(s->tokenized[1].size(), 2u);
  auto v = s->w.heads->visual_embs(torch::full({1, 48}, 200 / 255.0));
  EXPECT_TRUE(test::tensors_close(e.narrow(1, 7, 4), v, 0, 0, "second image rows"));
  EXPECT_EQ(dump.get("gill.visual_embs").sizes(), (std::vector<int64_t>{2, 4, kD}));
}

TEST(GillTurn, RoutingRetrievalAndOutputs) {
  torch::NoGradGuard ng;
  auto s = make_setup();
  s->lm->next[2] = 300;     // unused
  s->lm->next['b' % 200 + 100] = 410;  // after the prompt: [IMG0]
  s->lm->next[417] = 120;   // after the block: a word
  TurnOptions opt;
  opt.decode.n_words = 3;
  io::TensorDump dump;
  auto r = run_turn(s->w, s->b, {text("ab")}, opt, &dump);
  ASSERT_EQ(r.blocks.size(), 1u);
  EXPECT_EQ(r.ids[0], 410);
  const auto& blk = r.blocks[0];
  // The decision is the head's on the [IMG0] hidden state.
  auto logits = s->w.decision(dump.get("gill.img_hidden").narrow(0, 0, 1));
  EXPECT_TRUE(test::tensors_close(dump.get("gill.decision_logits"), logits, 0, 0, "decision"));
  EXPECT_EQ(blk.decision, logits[0][1].item<float>() > logits[0][0].item<float>() ? "ret" : "gen");
  EXPECT_NEAR(blk.p_gen + blk.p_ret, 1.0, 1e-6);
  EXPECT_EQ(blk.retrieved.size(), 1u);  // max_num_rets = 1 honoured
  EXPECT_EQ(s->sd_calls, blk.decision == "gen" ? 1 : 0);
  // --always-generate runs SD whatever the decision.
  auto s2 = make_setup();
  s2->lm->next = s->lm->next;
  opt.always_generate = true;
  opt.max_num_rets = 3;
  auto r2 = run_turn(s2->w, s2->b, {text("ab")}, opt, nullptr);
  EXPECT_EQ(s2->sd_calls, 1);
  ASSERT_EQ(r2.blocks[0].retrieved.size(), 3u);
  EXPECT_GE(r2.blocks[0].retrieved[0].score, r2.blocks[0].retrieved[1].score);
  EXPECT_EQ(r2.caption_text, " [IMG0][IMG1][IMG2][IMG3][IMG4][IMG5][IMG6][IMG7]");

  // Outputs (the library's one writer and serialiser): URLs are reported, never fetched; the generated image is
  // written.
  auto out = test::temp_dir("gill_turn_out");
  Result res = gill::detail::to_result(r2, s2->w.index.base_dir);
  write_turn_files(res, {out.string(), ""}, GenerateOptions{});
  const auto j = result_json(res);
  int written = 0;
  for (const auto& e : fs::directory_iterator(out)) written += e.path().extension() == ".png";
  EXPECT_EQ(written, 1);
  EXPECT_EQ(j["images"][0]["retrieved"][0]["url"].get<std::string>().rfind("http://cc3m.invalid/", 0), 0u);
  EXPECT_TRUE(fs::exists(j["images"][0]["generated"]["file"].get<std::string>()));
  EXPECT_EQ(j["images"][0]["generated"]["seed"].get<uint64_t>(), opt.seed);
  fs::remove_all(out);
}

TEST(GillTurn, LocalRetrievalFilesAreCopied) {
  torch::NoGradGuard ng;
  auto s = make_setup();
  auto dir = test::temp_dir("gill_turn_local");
  for (int i = 0; i < 6; ++i) std::ofstream(dir / ("img" + std::to_string(i) + ".png")) << "x" << i;
  s->w.index.paths.clear();
  for (int i = 0; i < 6; ++i) s->w.index.paths.push_back("img" + std::to_string(i) + ".png");
  s->w.index.base_dir = dir;
  TurnResult r;
  BlockResult b;
  b.retrieved = {{3, 1.5, "img3.png"}};
  r.blocks.push_back(b);
  auto out = dir / "out";
  Result res = gill::detail::to_result(r, s->w.index.base_dir);
  write_turn_files(res, {out.string(), ""}, GenerateOptions{});
  const auto j = result_json(res);
  const auto file = j["images"][0]["retrieved"][0]["file"].get<std::string>();
  EXPECT_EQ(fs::path(file).filename(), "ret_0_0.png");
  std::ifstream in(file);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "x3");
  fs::remove_all(dir);
}

TEST(GillTurn, EmptyPromptIsAnError) {
  auto s = make_setup();
  try {
    run_turn(s->w, s->b, {}, TurnOptions{}, nullptr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(std::string(e.what()), "empty prompt: give at least one text or image");
  }
}
