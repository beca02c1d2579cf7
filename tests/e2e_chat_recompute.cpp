// Chat semantics: a gill::Chat keeps the LM's KV cache across turns, and turn N must equal one full recomputation
// of the whole dialogue so far: a fresh LM fed [turn 1 prompt (BOS), turn 1's generated ids, turn 2 prompt (no
// BOS), ..., turn N prompt] in one go, then the same greedy decoding. Checked on the tiny kit and on the fixture
// GILL (fp32): 3 turns, an image in turn 2, turn 1 forced into an [IMG] block (so the block's ids are in the
// history). The chat's side comes through the public API (GenerateOptions::dump_tensors: gill.step_logits,
// gill.generated_ids); the recomputation through the pipeline.
#include <gill/gill.h>

#include "io/image.h"
#include "io/safetensors.h"
#include "models/clip_image_processor.h"
#include "pipeline/gill_model.h"
#include "test_support.h"
#include "tiny/tiny.h"

using namespace gill;
using gill::test::data_dir;
using gill::test::shared_dir;
using gill::test::tensors_close;
namespace fs = std::filesystem;

namespace {

struct ChatTurn {
  std::vector<pipeline::PromptItem> items;
  GenerateOptions options;
};

pipeline::PromptItem chat_text(const std::string& t) {
  pipeline::PromptItem it;
  it.text = t;
  return it;
}
pipeline::PromptItem chat_image(const Image& im) {
  pipeline::PromptItem it;
  it.is_image = true;
  it.image = im;
  return it;
}

std::vector<int64_t> chat_ids_of(const torch::Tensor& t) {
  auto c = t.reshape({-1}).to(torch::kInt64).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

std::vector<ChatTurn> three_turns(const Image& image) {
  std::vector<ChatTurn> turns(3);
  turns[0].items = {chat_text("What is in this image?")};
  turns[0].options.num_words = 3;
  turns[0].options.min_word_tokens = 2;
  turns[0].options.ret_scale_factor = 1000;  // step 2 picks a whole [IMG] block
  turns[1].items = {chat_image(image), chat_text("Show me a picture of a dog.")};
  turns[1].options.num_words = 4;
  turns[2].items = {chat_text("And a cat?")};
  turns[2].options.num_words = 4;
  return turns;
}

// Runs the turns through gill::Chat and, for each turn, compares its ids and step logits with a fresh LM fed the
// whole dialogue so far at once.
void expect_chat_equals_recomputation(const EngineOptions& eo, const pipeline::GILLModelOptions& mo,
                                      const std::vector<ChatTurn>& turns) {
  Engine engine(eo);
  Chat chat = engine.chat();
  auto model = pipeline::GILLModel::load(mo);
  const fs::path dir = gill::test::temp_dir("chat_recompute");
  std::vector<torch::Tensor> history;  // embeddings of every earlier prompt and generated id
  bool saw_block = false;
  for (size_t n = 0; n < turns.size(); ++n) {
    SCOPED_TRACE("turn " + std::to_string(n + 1));
    Prompt prompt;
    for (const auto& it : turns[n].items)
      prompt.push_back(it.is_image ? Segment::Pixels(it.image) : Segment::Text(it.text));
    GenerateOptions go = turns[n].options;
    go.dump_tensors = (dir / ("turn" + std::to_string(n) + ".safetensors")).string();
    const Result r = chat.send(prompt, go);
    io::SafetensorsFile dump(go.dump_tensors);
    const auto chat_ids = chat_ids_of(dump.get("gill.generated_ids"));
    EXPECT_EQ(chat_ids, r.token_ids);

    torch::NoGradGuard no_grad;
    pipeline::CachedLM lm(*model->lm);
    auto b = model->backbones(lm, nullptr);
    history.push_back(
        pipeline::assemble_prompt(model->weights, b, turns[n].items, /*bos_on_first_text=*/n == 0, nullptr));
    pipeline::DecodeOptions d;
    d.n_words = go.num_words;
    d.min_word_tokens = go.min_word_tokens;
    d.ret_scale_factor = go.ret_scale_factor;
    d.gen_scale_factor = go.gen_scale_factor;
    auto full = pipeline::decode(lm, torch::cat(history, 1), d, b.token_ids, pipeline::greedy_pick);
    EXPECT_EQ(full.ids, chat_ids);
    const auto chat_logits = dump.get("gill.step_logits", torch::kFloat32);
    const auto full_logits = torch::stack(full.step_logits);
    ASSERT_EQ(chat_logits.sizes(), full_logits.sizes());
    const auto fin = torch::isfinite(full_logits);
    ASSERT_TRUE(torch::equal(fin, torch::isfinite(chat_logits))) << "-inf pattern differs";
    EXPECT_TRUE(
        tensors_close(chat_logits.masked_select(fin), full_logits.masked_select(fin), 1e-4, 1e-5, "step logits"));
    for (int64_t id : chat_ids) saw_block |= id == b.token_ids.img[0];
    history.push_back(b.lm->embed(chat_ids));  // the chat fed every generated id (feed_final_tokens)
  }
  EXPECT_TRUE(saw_block) << "no [IMG] block was generated, so its history was not exercised";
  fs::remove_all(dir);
}

}  // namespace

TEST(ChatRecompute, TinyKit) {
  const fs::path dir = gill::test::temp_dir("chat_tiny");
  tiny::make_tiny(dir / "tiny", 0);
  EngineOptions eo;
  eo.weights_root = (dir / "tiny").string();
  eo.load_sd = false;
  pipeline::GILLModelOptions mo;
  mo.paths.root = dir / "tiny";
  mo.load_sd = false;
  expect_chat_equals_recomputation(eo, mo, three_turns(io::load_image(data_dir() / "clip" / "rgb_45x37.png")));
  fs::remove_all(dir);
}

TEST(ChatRecompute, FixtureGill) {
  const fs::path root = shared_dir() / "fixtures" / "models";
  GILL_REQUIRE_PATH(root);
  EngineOptions eo;
  eo.weights_root = root.string();
  eo.gill_dir = (data_dir() / "gill_opt").string();
  eo.load_sd = false;
  pipeline::GILLModelOptions mo;
  mo.paths.root = root;
  mo.paths.gill = data_dir() / "gill_opt";
  mo.load_sd = false;
  io::SafetensorsFile imgs(data_dir() / "gill" / "prompt_images.safetensors");
  expect_chat_equals_recomputation(
      eo, mo, three_turns(models::image_from_hwc_uint8(imgs.get("inputs.clip_input_1.png.rgb_uint8"))));
}
