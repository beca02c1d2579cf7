// The GILL commands on the tiny kit (`gill make-tiny`): `run` with an interleaved prompt (streamed text, images
// in -o, JSON transcript), a scripted three-turn `chat`, `index` then `run --index` retrieving from it, and the
// bad inputs the issue lists (missing GILL file, model_args.json disagreeing with the checkpoint, an image that
// does not decode, an empty prompt) with their exit codes and messages.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/atomic_file.h"
#include "io/image.h"
#include "io/npy.h"
#include "pipeline/retrieval.h"
#include "result_schema.h"
#include "test_support.h"
#include "tiny/tiny.h"

using namespace gill;
using gill::test::data_dir;
using gill::test::run_cli;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

class GillCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(gill::test::temp_dir("gill_cli"));
    tiny::make_tiny(*dir_ / "tiny", 0);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path root() { return *dir_ / "tiny"; }
  static fs::path image() { return data_dir() / "clip" / "rgb_45x37.png"; }
  static json read_json(const fs::path& p) { return json::parse(io::read_file(p)); }
  // A prompt that makes the tiny model emit an [IMG] block at step 1.
  static std::vector<std::string> forced(const fs::path& out, const fs::path& js) {
    return {"run", "-m", root().string(), "-p", "A picture of", "--image", image().string(), "-p", "Show me a dog",
            "-n", "6", "--steps", "2", "--min-word-tokens", "1", "--ret-scale-factor", "1000", "-o", out.string(),
            "--json", js.string()};
  }
  static fs::path* dir_;
};
fs::path* GillCli::dir_ = nullptr;

TEST_F(GillCli, RunInterleavedRetrievesFromTheKitIndex) {
  const auto out = *dir_ / "run1", js = *dir_ / "run1.json";
  auto r = run_cli(forced(out, js));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = read_json(js);
  EXPECT_EQ(gill::test::schema_problems(j, "turn"), std::vector<std::string>{}) << j.dump(2);
  // The prompt in command-line order.
  ASSERT_EQ(j["prompt"].size(), 3u);
  EXPECT_EQ(j["prompt"][0]["text"], "A picture of");
  EXPECT_EQ(j["prompt"][1]["image"], image().string());
  EXPECT_EQ(j["prompt"][2]["text"], "Show me a dog");
  // Step 0 is a word; with [IMG0] scaled by 1000 every later step picks a whole [IMG] block (8 ids), as the
  // reference does: 1 + 5 x 8 ids. Only the first block is processed (max_num_rets = 1).
  EXPECT_EQ(j["token_ids"].size(), 1u + 5u * 8u);
  EXPECT_NE(j["text"].get<std::string>().find("[IMG0]"), std::string::npos);
  EXPECT_NE(r.out.find("[IMG0]"), std::string::npos) << "text streams to stdout";
  ASSERT_EQ(j["images"].size(), 1u);
  const json& b = j["images"][0];
  const double pg = b["probabilities"]["gen"], pr = b["probabilities"]["ret"];
  EXPECT_NEAR(pg + pr, 1.0, 1e-5);
  EXPECT_EQ(b["decision"], pr > pg ? "ret" : "gen");
  // The kit's index holds local files: the best hit is copied into OUT.
  ASSERT_EQ(b["retrieved"].size(), 1u);
  const std::string copy = b["retrieved"][0]["file"];
  EXPECT_TRUE(fs::exists(copy));
  const std::string source = b["retrieved"][0]["path"];
  EXPECT_EQ(io::read_file(copy), io::read_file(source));
  EXPECT_NE(r.out.find("[image 1: "), std::string::npos) << r.out;
  // Greedy and seeded: a second run gives the same transcript text and ids.
  auto again = run_cli(forced(*dir_ / "run1b", *dir_ / "run1b.json"));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const json j2 = read_json(*dir_ / "run1b.json");
  EXPECT_EQ(j2["token_ids"], j["token_ids"]);
  EXPECT_EQ(j2["images"][0]["retrieved"][0]["score"], b["retrieved"][0]["score"]);
}

TEST_F(GillCli, AlwaysGenerateWritesAPngWithItsSettings) {
  const auto out = *dir_ / "gen", js = *dir_ / "gen.json";
  auto args = forced(out, js);
  args.insert(args.end(), {"--always-generate", "--seed", "7", "--scheduler", "ddim"});
  auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = read_json(js);
  ASSERT_EQ(j["images"].size(), 1u);
  EXPECT_EQ(gill::test::schema_problems(j, "turn"), std::vector<std::string>{}) << j.dump(2);
  const std::string png = j["images"][0]["generated"]["file"];
  EXPECT_EQ(j["images"][0]["generated"]["seed"], 7);
  const Image im = io::load_image(png);
  EXPECT_EQ(im.width, 64);  // the tiny UNet's sample size x 8
  const auto text = io::read_png_text(io::read_file(png));
  bool seed_ok = false, sched_ok = false;
  for (const auto& [k, v] : text) seed_ok |= k == "seed" && v == "7", sched_ok |= k == "scheduler" && v == "ddim";
  EXPECT_TRUE(seed_ok && sched_ok);
}

TEST_F(GillCli, Bf16RunsAWholeTurnWithABlock) {
  // bf16 storage: the heads get the LM's fp32 hidden states cast to their dtype (a block used to fail here).
  const auto out = *dir_ / "bf16", js = *dir_ / "bf16.json";
  auto args = forced(out, js);
  args.insert(args.end(), {"--dtype", "bf16", "--always-generate"});
  auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = read_json(js);
  ASSERT_EQ(j["images"].size(), 1u);
  EXPECT_TRUE(fs::exists(j["images"][0]["generated"]["file"].get<std::string>()));
  EXPECT_EQ(j["images"][0]["retrieved"].size(), 1u);
}

TEST_F(GillCli, ScriptedChatKeepsThreeTurns) {
  const auto out = *dir_ / "chat", save = *dir_ / "chat.json";
  const std::string script = "/image " + image().string() + "\nWhat is this?\nTell me more.\nAnd now?\n/save " +
                             save.string() + "\n/quit\n";
  auto r = run_cli({"chat", "-m", root().string(), "-n", "4", "--steps", "2", "-o", out.string()}, script);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("[image added: "), std::string::npos) << r.out;
  const json t = read_json(save);
  ASSERT_EQ(t.size(), 3u);
  for (const json& turn : t)
    EXPECT_EQ(gill::test::schema_problems(turn, "turn"), std::vector<std::string>{}) << turn.dump(2);
  EXPECT_EQ(t[0]["prompt"].size(), 2u);  // the image, then the text
  EXPECT_EQ(t[0]["prompt"][1]["text"], "What is this?");
  EXPECT_EQ(t[2]["prompt"][0]["text"], "And now?");
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(t[k]["turn"], k + 1);
    EXPECT_EQ(t[k]["token_ids"].size(), 4u);
    // Later turns continue the cached conversation: no BOS again, so their prompts are only the new text.
    if (k > 0) {
      EXPECT_LT(t[k]["timings"]["prompt_tokens"].get<int>(), t[0]["timings"]["prompt_tokens"].get<int>());
    }
  }
  // A bad line is reported and the session goes on.
  r = run_cli({"chat", "-m", root().string(), "-n", "2", "-o", out.string()}, "/image /nonexistent.png\nhi\n");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.err.find("/nonexistent.png: no such image file"), std::string::npos) << r.err;
}

TEST_F(GillCli, IndexThenRunRetrievesFromIt) {
  // Index two pictures of our own, then retrieve: the hit must be one of them.
  const auto pics = *dir_ / "pics";
  fs::create_directories(pics);
  fs::copy_file(image(), pics / "a.png");
  fs::copy_file(root() / "retrieval_images" / "000002.png", pics / "b.png");
  const auto idx = *dir_ / "myindex";
  auto r = run_cli({"index", "-m", root().string(), (pics / "a.png").string(), (pics / "b.png").string(), "-o",
                    idx.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(idx / "index.safetensors"));
  const auto out = *dir_ / "run_idx", js = *dir_ / "run_idx.json";
  auto args = forced(out, js);
  args.insert(args.end(), {"--index", idx.string()});
  r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = read_json(js);
  const std::string src = j["images"][0]["retrieved"][0]["path"];
  EXPECT_TRUE(src == (pics / "a.png").string() || src == (pics / "b.png").string()) << src;
}

TEST_F(GillCli, BadInputs) {
  const auto out = *dir_ / "bad";
  // An image that does not decode.
  const auto notimg = *dir_ / "notimage.png";
  io::write_file_atomic(notimg, "this is text, not a picture");
  auto r = run_cli({"run", "-m", root().string(), "--image", notimg.string(), "-p", "x", "-o", out.string()});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find(notimg.string() + ": cannot decode image"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out)) << "nothing written on failure";
  // An empty prompt.
  r = run_cli({"run", "-m", root().string(), "-o", out.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("empty prompt"), std::string::npos) << r.err;
  // A GILL folder without its checkpoint.
  const auto broken = *dir_ / "broken";
  fs::create_directories(broken);
  fs::copy(root(), broken, fs::copy_options::recursive);
  fs::remove(broken / "checkpoints" / "gill_opt" / "pretrained_ckpt.pth.tar");
  r = run_cli({"run", "-m", broken.string(), "-p", "x", "-o", out.string()});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("pretrained_ckpt.pth.tar: GILL checkpoint not found"), std::string::npos) << r.err;
  // model_args.json disagreeing with the checkpoint (the retrieval space width).
  fs::remove_all(broken);
  fs::create_directories(broken);
  fs::copy(root(), broken, fs::copy_options::recursive);
  const auto args_file = broken / "checkpoints" / "gill_opt" / "model_args.json";
  json a = json::parse(io::read_file(args_file));
  a["ret_emb_dim"] = a["ret_emb_dim"].get<int>() + 1;
  io::write_file_atomic(args_file, a.dump());
  r = run_cli({"run", "-m", broken.string(), "-p", "x", "-o", out.string()});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("ret_emb_dim"), std::string::npos) << r.err;
  fs::remove_all(broken);
}

}  // namespace

namespace {

TEST_F(GillCli, BatchOnTheTinyKitWithOneLoad) {
  // Three good items (one with an image relative to the JSONL file), a line that is not JSON, an item whose
  // image is missing: five results, two errors, and the report.
  const auto bdir = *dir_ / "batch";
  fs::create_directories(bdir);
  fs::copy_file(image(), bdir / "pic.png");
  const std::string lines =
      R"({"id": "a", "prompt": [{"text": "A picture of"}, {"image": "pic.png"}, {"text": "Show me a dog"}], "options": {"num_words": 6, "min_word_tokens": 1, "ret_scale_factor": 1000, "steps": 2}})"
      "\n"
      R"({"id": "b", "prompt": [{"text": "Hello"}], "options": {"num_words": 3}})"
      "\n"
      "this is not json\n"
      R"({"id": "c", "prompt": [{"image": "missing.png"}, {"text": "x"}]})"
      "\n"
      R"({"id": "d", "prompt": [{"text": "Bye"}], "options": {"num_words": 2}})"
      "\n";
  io::write_file_atomic(bdir / "in.jsonl", lines);
  const auto out = *dir_ / "batch_out";
  auto r = run_cli({"-q", "batch", (bdir / "in.jsonl").string(), "-o", out.string(), "-m", root().string()});
  // Failed items make the exit code non-zero (the first failure's code: the line that is not JSON, kFormat).
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("in.jsonl:3: bad JSON"), std::string::npos) << r.err;
  std::vector<json> results;
  std::istringstream in(io::read_file(out / "results.jsonl"));
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) results.push_back(json::parse(l));
  ASSERT_EQ(results.size(), 5u);
  int ok = 0, errors = 0;
  for (const auto& j : results) (j["status"] == "ok" ? ok : errors)++;
  EXPECT_EQ(ok, 3);
  EXPECT_EQ(errors, 2);
  EXPECT_TRUE(fs::exists(out / "index.html"));
  // A rerun skips everything already done (errors included) and changes nothing.
  const std::string before = io::read_file(out / "results.jsonl");
  r = run_cli({"-q", "batch", (bdir / "in.jsonl").string(), "-o", out.string(), "-m", root().string()});
  EXPECT_EQ(io::read_file(out / "results.jsonl"), before);
}

}  // namespace

namespace {

// `gill index` over the fixture's six retrieval images with the fixture CLIP and GILL checkpoint gives the
// embeddings the reference's extract_img_embs.py wrote (cc3m_embeddings_urls.npy, fixtures README), row by row
// in the same order, at the fp32 parity bound.
TEST(GillIndexFixture, EqualsTheReferenceEmbeddings) {
  const fs::path models = gill::test::shared_dir() / "fixtures" / "models";
  const fs::path ref_file = models / "checkpoints" / "gill_opt" / "cc3m_embeddings_urls.npy";
  GILL_REQUIRE_PATH(ref_file);
  const auto ref = io::load_retrieval_embeddings(ref_file);
  std::vector<std::string> args = {"index", "-m", models.string(), "--compute", "fp32"};
  for (const auto& url : ref.paths)  // http://cc3m.invalid/retrieval_images/00000K.png
    args.push_back((models / "retrieval_images" / fs::path(url).filename()).string());
  const fs::path out = gill::test::temp_dir("gill_index_fixture");
  fs::remove_all(out);
  args.insert(args.end(), {"-o", out.string()});
  const auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto mine = pipeline::read_index(out);
  ASSERT_EQ(mine.size(), static_cast<int64_t>(ref.paths.size()));
  for (size_t k = 0; k < ref.paths.size(); ++k)
    EXPECT_EQ(fs::path(mine.paths[k]).filename(), fs::path(ref.paths[k]).filename());
  EXPECT_TRUE(gill::test::tensors_close(mine.embeddings, ref.embeddings, 0.0, 1e-5, "index embeddings"));
  fs::remove_all(out);
}

}  // namespace
