// The public API on the tiny kit, through <gill/gill.h> only (no torch, no internal header): generate with an
// interleaved prompt, token streaming, per-block events, cancellation from each callback, chat turns with the KV cache
// kept (and reset), the SD entries, the log sink and load errors.
#include <gill/gill.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace fs = std::filesystem;

namespace {

class Api : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("gill-api-" + std::to_string(::getpid())));
    fs::create_directories(*dir_);
    const std::string cmd = std::string(GILL_CLI_PATH) + " -q make-tiny " + (*dir_ / "tiny").string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    gill::EngineOptions o;
    o.weights_root = (*dir_ / "tiny").string();
    o.log = [](gill::LogLevel, const std::string& m) { log_ += m + "\n"; };
    engine_ = new gill::Engine(o);
  }
  static void TearDownTestSuite() {
    delete engine_;
    fs::remove_all(*dir_);
    delete dir_;
  }
  static gill::Prompt prompt() {
    return {gill::Segment::Text("A picture of"),
            gill::Segment::ImageFile(std::string(GILL_SOURCE_DIR) + "/tests/data/clip/rgb_45x37.png"),
            gill::Segment::Text("Show me a dog")};
  }
  static gill::GenerateOptions forced() {
    gill::GenerateOptions g;
    g.num_words = 6;
    g.min_word_tokens = 1;
    g.ret_scale_factor = 1000;
    g.steps = 2;
    return g;
  }
  static fs::path* dir_;
  static gill::Engine* engine_;
  static std::string log_;
};
fs::path* Api::dir_ = nullptr;
gill::Engine* Api::engine_ = nullptr;
std::string Api::log_;

TEST_F(Api, GenerateInterleavedWithStreaming) {
  std::string streamed;
  auto g = forced();
  g.on_token = [&](const std::string& piece) {
    streamed += piece;
    return true;
  };
  const gill::Result r = engine_->generate(prompt(), g);
  EXPECT_EQ(r.token_ids.size(), 1u + 5u * 8u);  // a word, then an [IMG] block at every step
  EXPECT_EQ(streamed.rfind(r.text, 0), 0u) << "streamed: " << streamed << "\nresult: " << r.text;
  ASSERT_EQ(r.images.size(), 1u);  // max_num_rets = 1 block processed
  const gill::ImageBlock& b = r.images[0];
  EXPECT_NEAR(b.p_gen + b.p_ret, 1.0f, 1e-5f);
  EXPECT_EQ(b.decision, b.p_ret > b.p_gen ? "ret" : "gen");
  ASSERT_EQ(b.retrieved.size(), 1u);
  EXPECT_TRUE(fs::exists(b.retrieved[0].path)) << b.retrieved[0].path;
  EXPECT_EQ(b.generated.has_value(), b.decision == "gen");  // SD only runs for "generate"
  EXPECT_GT(r.timings.prompt_tokens, 4);
  EXPECT_GE(r.timings.total_s, r.timings.decode_s);
  EXPECT_NE(log_.find("loaded GILL"), std::string::npos) << log_;
  // always_generate: an image for the block whatever the decision, 64x64 from the tiny SD.
  g.always_generate = true;
  const gill::Result r2 = engine_->generate(prompt(), g);
  ASSERT_TRUE(r2.images[0].generated.has_value());
  EXPECT_EQ(r2.images[0].generated->width, 64);
  EXPECT_EQ(r2.token_ids, r.token_ids);  // greedy: same ids
}

TEST_F(Api, CancelFromEachCallback) {
  auto g = forced();
  int pieces = 0;
  g.on_token = [&](const std::string&) { return ++pieces < 2; };
  try {
    engine_->generate(prompt(), g);
    FAIL() << "not cancelled";
  } catch (const gill::Error& e) {
    EXPECT_EQ(e.code(), gill::ErrorCode::kCancelled) << e.what();
  }
  EXPECT_EQ(pieces, 2);
  g = forced();
  g.always_generate = true;
  int denoise = 0;
  g.on_progress = [&](const std::string& stage, int64_t, int64_t) { denoise += stage == "denoise"; };
  g.is_cancelled = [&] { return denoise >= 1; };  // stops inside Stable Diffusion
  try {
    engine_->generate(prompt(), g);
    FAIL() << "not cancelled";
  } catch (const gill::Error& e) {
    EXPECT_EQ(e.code(), gill::ErrorCode::kCancelled) << e.what();
  }
  EXPECT_EQ(denoise, 1);
}

// on_image_block: each block twice, in order, decided (decision and retrieval, no image yet, before its denoising)
// then done (equal to Result::images[k]); returning false cancels before Stable Diffusion runs.
TEST_F(Api, ImageBlockEventsPerBlock) {
  auto g = forced();
  g.max_num_rets = 2;  // two blocks processed
  g.always_generate = true;
  struct Event {
    int64_t index;
    bool done;
    gill::ImageBlock block;
    int denoise_before;
  };
  std::vector<Event> events;
  int denoise = 0;
  g.on_progress = [&](const std::string& stage, int64_t, int64_t) { denoise += stage == "denoise"; };
  g.on_image_block = [&](int64_t k, const gill::ImageBlock& b, bool done) {
    events.push_back({k, done, b, denoise});
    return true;
  };
  const gill::Result r = engine_->generate(prompt(), g);
  ASSERT_EQ(r.images.size(), 2u);
  ASSERT_EQ(events.size(), 4u);
  for (size_t e = 0; e < events.size(); ++e) {
    const Event& ev = events[e];
    EXPECT_EQ(ev.index, static_cast<int64_t>(e / 2));
    EXPECT_EQ(ev.done, e % 2 == 1);
    const gill::ImageBlock& want = r.images[static_cast<size_t>(ev.index)];
    EXPECT_EQ(ev.block.caption, want.caption);
    EXPECT_EQ(ev.block.decision, want.decision);
    EXPECT_EQ(ev.block.p_gen, want.p_gen);
    EXPECT_EQ(ev.block.p_ret, want.p_ret);
    ASSERT_EQ(ev.block.retrieved.size(), want.retrieved.size());
    for (size_t h = 0; h < want.retrieved.size(); ++h) EXPECT_EQ(ev.block.retrieved[h].path, want.retrieved[h].path);
    if (ev.done) {
      ASSERT_TRUE(ev.block.generated.has_value());
      EXPECT_EQ(ev.block.generated->pixels, want.generated->pixels);
      EXPECT_EQ(ev.block.seed, want.seed);
      EXPECT_GT(ev.denoise_before, events[e - 1].denoise_before) << "the block's denoising ran between its events";
    } else {
      EXPECT_FALSE(ev.block.generated.has_value()) << "decided: no image yet";
    }
  }
  EXPECT_NE(r.images[0].seed, r.images[1].seed);
  // Cancelled at the first decision: no denoising step ran.
  denoise = 0;
  g.on_image_block = [](int64_t, const gill::ImageBlock&, bool) { return false; };
  try {
    engine_->generate(prompt(), g);
    FAIL() << "not cancelled";
  } catch (const gill::Error& e) {
    EXPECT_EQ(e.code(), gill::ErrorCode::kCancelled) << e.what();
  }
  EXPECT_EQ(denoise, 0);
}

TEST_F(Api, ChatKeepsTheCacheAndResets) {
  gill::Chat chat = engine_->chat();
  gill::GenerateOptions g;
  g.num_words = 4;
  const gill::Result t1 = chat.send(prompt(), g);
  // The first turn is exactly a one-shot generate.
  EXPECT_EQ(t1.token_ids, engine_->generate(prompt(), g).token_ids);
  const gill::Result t2 = chat.send({gill::Segment::Text("Tell me more.")}, g);
  const gill::Result t3 = chat.send({gill::Segment::Text("And then?")}, g);
  // Later turns feed only their own text: the history is in the cache, not recomputed.
  // (byte-level BPE: at most one token per byte of the new text, and no BOS).
  EXPECT_LE(t2.timings.prompt_tokens, static_cast<int64_t>(std::string("Tell me more.").size()));
  EXPECT_LE(t3.timings.prompt_tokens, static_cast<int64_t>(std::string("And then?").size()));
  EXPECT_LT(t2.timings.prompt_tokens, t1.timings.prompt_tokens);
  EXPECT_EQ(t2.token_ids.size(), 4u);
  EXPECT_NE(chat.transcript_json().find("Tell me more."), std::string::npos);
  // What the chat holds: three turns, every prompt position in the cache plus at most the generated tokens.
  EXPECT_EQ(chat.turns(), 3);
  const int64_t fed = t1.timings.prompt_tokens + t2.timings.prompt_tokens + t3.timings.prompt_tokens;
  EXPECT_GE(chat.n_positions(), fed);
  EXPECT_LE(chat.n_positions(), fed + 12);
  EXPECT_GT(chat.cache_bytes(), 0);
  const int64_t bytes = chat.cache_bytes();
  chat.reset();
  EXPECT_EQ(chat.transcript_json(), "[]");
  EXPECT_EQ(chat.turns(), 0);
  EXPECT_EQ(chat.n_positions(), 0);
  EXPECT_EQ(chat.cache_bytes(), 0) << "reset frees the cache (it held " << bytes << " bytes)";
  EXPECT_EQ(chat.send(prompt(), g).token_ids, t1.token_ids);
  // An error inside a turn leaves the chat usable.
  EXPECT_THROW(chat.send({gill::Segment::ImageFile("/nonexistent.png")}, g), gill::Error);
  EXPECT_EQ(chat.send({gill::Segment::Text("Tell me more.")}, g).token_ids, t2.token_ids);
}

TEST_F(Api, StableDiffusionEntriesAndErrors) {
  gill::GenerateOptions g;
  g.steps = 2;
  const gill::Image a = engine_->generate_image_from_text("a red square", g);
  EXPECT_EQ(a.width, 64);
  EXPECT_EQ(a.pixels.size(), 64u * 64u * 3u);
  const gill::Image b = engine_->generate_image_from_text("a red square", g);
  EXPECT_EQ(a.pixels, b.pixels);  // same seed, same image
  std::vector<float> emb(77 * 32, 0.1f);
  const gill::Image c = engine_->generate_image_from_embeddings(emb, 77, 32, g);
  EXPECT_EQ(c.width, 64);
  try {
    engine_->generate_image_from_embeddings(emb, 77, 31, g);
    FAIL();
  } catch (const gill::Error& e) {
    EXPECT_EQ(e.code(), gill::ErrorCode::kInvalidArgument);
  }
  try {
    gill::EngineOptions o;
    o.weights_root = "/nonexistent-weights";
    gill::Engine bad(o);
    FAIL();
  } catch (const gill::Error& e) {
    EXPECT_EQ(e.code(), gill::ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent-weights"), std::string::npos);
  }
  gill::GenerateOptions bad;
  bad.top_p = 1.5f;
  EXPECT_THROW(engine_->generate(prompt(), bad), gill::Error);
}

}  // namespace
