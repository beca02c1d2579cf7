// The one serialiser (gill/result_json.h) against docs/result-schema.md (read by tests/support/result_schema):
// a full turn, an empty one, the LLM-alone object, the URL rule, the PNG settings, write_turn_files; and the
// checker itself rejects what the document does not allow. The other writers (run --json, chat /save, batch
// lines, serve blocks) are checked where they are tested: e2e_gill_cli, e2e_options, unit_batch, e2e_serve.
#include <gill/result_json.h>

#include <algorithm>
#include <fstream>

#include "io/image.h"
#include "result_schema.h"
#include "test_support.h"

namespace gill::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string problems_of(const json& j, const std::string& object) {
  std::string s;
  for (const auto& p : schema_problems(j, object)) s += p + "\n";
  return s;
}

Result full_result() {
  Result r;
  r.text = "a dog [IMG0][IMG1][IMG2][IMG3][IMG4][IMG5][IMG6][IMG7] there";
  r.trailing_text = " there";
  r.token_ids = {5, 6, 7};
  ImageBlock b;
  b.caption = "a dog";
  b.decision = "ret";
  b.p_gen = 0.25f;
  b.p_ret = 0.75f;
  b.retrieved.push_back({"http://cc3m.invalid/1.jpg", 12.5f, 1, ""});
  b.retrieved.push_back({"/data/img/2.png", 11.0f, 2, "out/ret_0_1.png"});
  Image im;
  im.width = 4;
  im.height = 2;
  im.pixels.assign(4 * 2 * 3, 9);
  b.generated = im;
  b.seed = 42;
  b.gen_rank_score = 0.5f;
  b.generated_file = "out/gen_0.png";
  r.images.push_back(b);
  ImageBlock nothing;  // a block SD did not run for, without an index
  nothing.decision = "gen";
  nothing.p_gen = 1;
  r.images.push_back(nothing);
  r.timings.prompt_s = 0.5;
  r.timings.total_s = 2;
  r.timings.prompt_tokens = 9;
  r.timings.new_tokens = 3;
  r.timings.threads = 2;
  r.compute = {"cpu", "fp32", "auto", "fp32", "avx2", false};
  return r;
}

TEST(ResultSchema, TheDocumentDefinesEveryObjectTheWritersUse) {
  const auto names = schema_objects();
  for (const char* n : {"turn", "lm", "batch", "segment", "block", "probabilities", "retrieved", "generated", "timings",
                        "settings", "lm_settings", "compute", "error", "score"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
}

TEST(ResultSchema, AFullTurnConformsAndCarriesItsValues) {
  const Result r = full_result();
  const Prompt prompt = {Segment::Text("Show me"), Segment::ImageFile("cat.png"), Segment::Pixels(Image{3, 1, {}})};
  GenerateOptions o;
  o.top_k = 5;
  o.scheduler = "ddim";
  const json j = result_json(r, {&prompt, &o, 2});
  EXPECT_EQ(problems_of(j, "turn"), "") << j.dump(2);
  EXPECT_EQ(j["schema_version"], kResultSchemaVersion);
  EXPECT_EQ(j["mode"], "gill");
  EXPECT_EQ(j["turn"], 2);
  EXPECT_EQ(j["prompt"][1]["image"], "cat.png");
  EXPECT_TRUE(j["prompt"][2]["image"].is_null());
  EXPECT_EQ(j["prompt"][2]["width"], 3);
  EXPECT_EQ(j["settings"]["top_k"], 5);
  EXPECT_EQ(j["settings"]["scheduler"], "ddim");
  EXPECT_EQ(j["settings"]["cfg_scale"].get<float>(), o.guidance_scale);
  const json& b = j["images"][0];
  EXPECT_EQ(b["probabilities"]["ret"].get<float>(), 0.75f);
  EXPECT_EQ(b["retrieved"][0]["url"], "http://cc3m.invalid/1.jpg");  // reported, never fetched
  EXPECT_FALSE(b["retrieved"][0].contains("file"));
  EXPECT_FALSE(b["retrieved"][1].contains("url"));
  EXPECT_EQ(b["retrieved"][1]["file"], "out/ret_0_1.png");
  EXPECT_EQ(b["generated"]["file"], "out/gen_0.png");
  EXPECT_EQ(b["generated"]["seed"], 42);
  EXPECT_EQ(b["generated"]["width"], 4);
  EXPECT_TRUE(j["images"][1]["generated"].is_null());
  EXPECT_EQ(j["timings"]["threads"], 2);
  EXPECT_EQ(j["compute"]["gemv_kernel"], "avx2");
  // to_json is the same object as text; invalid UTF-8 in generated text is replaced, not thrown.
  EXPECT_EQ(json::parse(to_json(r, {&prompt, &o, 2})), j);
  Result bad = r;
  bad.text = "\xff\xfe";
  EXPECT_NE(to_json(bad).find("\xEF\xBF\xBD"), std::string::npos);
}

TEST(ResultSchema, AnEmptyTurnAndTheLlmAloneConform) {
  EXPECT_EQ(problems_of(result_json(Result{}), "turn"), "");
  LmOptions o;
  o.prompt = "Hello";
  o.stop_strings = {"."};
  LmResult r;
  r.prompt_ids = {2, 10};
  r.new_ids = {11, 12};
  r.text = " world";
  r.stop_reason = "max_new_tokens";
  r.prefill_s = 0.25;
  r.threads = 1;
  const json j = lm_result_json(r, o);
  EXPECT_EQ(problems_of(j, "lm"), "") << j.dump(2);
  EXPECT_EQ(j["timings"]["prompt_s"], 0.25);
  EXPECT_EQ(j["timings"]["new_tokens"], 2);
  EXPECT_EQ(j["prompt"][0]["text"], "Hello");
}

TEST(ResultSchema, TheCheckerRejectsWhatTheDocumentDoesNotAllow) {
  json j = result_json(full_result());
  j.erase("timings");
  j["images"][0]["probabilities"]["gen"] = "high";
  j["extra"] = 1;
  j["schema_version"] = 2;
  const auto p = schema_problems(j, "turn");
  auto has = [&](const std::string& s) {
    return std::any_of(p.begin(), p.end(), [&](const std::string& x) { return x.find(s) != std::string::npos; });
  };
  EXPECT_TRUE(has("turn.timings: missing")) << problems_of(j, "turn");
  EXPECT_TRUE(has("turn.images[0].probabilities.gen: \"high\" is not number")) << problems_of(j, "turn");
  EXPECT_TRUE(has("turn.extra: not in docs/result-schema.md")) << problems_of(j, "turn");
  EXPECT_TRUE(has("turn.schema_version: expected 1")) << problems_of(j, "turn");
}

TEST(ResultSchema, OneUrlRule) {
  for (const char* u :
       {"http://cc3m.invalid/1.jpg", "https://x/y.png", "s3://bucket/key", "file:///tmp/a.png", "git+ssh://host/x"})
    EXPECT_TRUE(is_url(u)) << u;
  for (const char* p :
       {"", "local.png", "/abs/path.png", "dir/a://b", "://x", "1http://x", "C:\\img.png", "http:/one-slash"})
    EXPECT_FALSE(is_url(p)) << p;
}

TEST(ResultSchema, WriteTurnFilesWritesPngsWithSettingsAndCopiesLocalHits) {
  const fs::path dir = temp_dir("result_files");
  const fs::path hit = dir / "hit.jpg";
  std::ofstream(hit) << "jpeg bytes";
  Result r = full_result();
  r.images[0].generated_file.clear();
  r.images[0].retrieved[1].path = hit.string();
  r.images[0].retrieved[1].file.clear();
  GenerateOptions o;
  o.steps = 3;
  o.scheduler = "euler";
  write_turn_files(r, {(dir / "out").string(), "t1_", true, "gill test"}, o);
  const ImageBlock& b = r.images[0];
  EXPECT_EQ(b.generated_file, (dir / "out" / "t1_gen_0.png").string());
  EXPECT_TRUE(b.retrieved[0].file.empty()) << "a URL is never fetched";
  EXPECT_EQ(b.retrieved[1].file, (dir / "out" / "t1_ret_0_1.jpg").string());
  EXPECT_EQ(gill::read_file(b.retrieved[1].file), "jpeg bytes");
  EXPECT_TRUE(r.images[1].generated_file.empty());
  const auto text = io::read_png_text(gill::read_file(b.generated_file));
  auto chunk = [&](const std::string& k) {
    for (const auto& [key, v] : text)
      if (key == k) return v;
    return std::string("<none>");
  };
  EXPECT_EQ(chunk("seed"), "42");
  EXPECT_EQ(chunk("steps"), "3");
  EXPECT_EQ(chunk("scheduler"), "euler");
  EXPECT_EQ(chunk("caption"), "a dog");
  EXPECT_EQ(chunk("Software"), "gill test");
  EXPECT_EQ(io::load_image(b.generated_file).pixels, b.generated->pixels);
  EXPECT_EQ(problems_of(result_json(r), "turn"), "");
  // Without copy_retrieved only the PNGs are written.
  Result r2 = full_result();
  r2.images[0].retrieved[1].path = hit.string();
  r2.images[0].retrieved[1].file.clear();
  write_turn_files(r2, {(dir / "out2").string(), "", false}, o);
  EXPECT_TRUE(r2.images[0].retrieved[1].file.empty());
  EXPECT_TRUE(fs::exists(dir / "out2" / "gen_0.png"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gill::test
