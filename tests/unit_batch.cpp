// Batch runner over a fake runner (no weights): every id gets a result, errors are recorded, resume after
// SIGKILL loses and duplicates nothing, shards cover every id once, the HTML report is well-formed.
#include <gill/batch.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <thread>

#include "html_check.h"
#include "io/atomic_file.h"
#include "result_schema.h"
#include "test_support.h"

namespace gill::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Fake runner: echoes the prompt's text; "[gen]" in it yields a generated 8x8 image, "[ret]" a retrieved one,
// "FAIL" throws. `delay_ms` makes items slow (for the kill test).
batch::Runner fake_runner(int delay_ms = 0, std::atomic<int>* calls = nullptr) {
  return [=](const Prompt& prompt, const GenerateOptions& o) {
    if (calls) ++*calls;
    if (delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    Result r;
    int n_images = 0;
    for (const Segment& s : prompt) {
      if (s.kind == Segment::Kind::kText) r.text += s.text;
      else ++n_images;
    }
    if (r.text.find("FAIL") != std::string::npos) throw Error(ErrorCode::kInternal, "fake runner failed");
    r.text = "echo(" + std::to_string(n_images) + " images, seed " + std::to_string(o.seed) + "): " + r.text;
    if (r.text.find("[gen]") != std::string::npos) {
      ImageBlock b;
      b.decision = "gen";
      b.p_gen = 0.75f;
      b.p_ret = 0.25f;
      b.seed = o.seed;
      Image im;
      im.width = im.height = 8;
      im.pixels.assign(8 * 8 * 3, static_cast<uint8_t>(o.seed % 256));
      b.generated = im;
      r.images.push_back(b);
    }
    if (r.text.find("[ret]") != std::string::npos) {
      ImageBlock b;
      b.decision = "ret";
      b.p_ret = 0.9f;
      b.retrieved.push_back({"http://cc3m.invalid/1.jpg", 0.5f, 1, ""});
      r.images.push_back(b);
    }
    r.timings.total_s = 0.001;
    return r;
  };
}

void write_lines(const fs::path& p, const std::vector<std::string>& lines) {
  std::ofstream f(p);
  for (const auto& l : lines) f << l << "\n";
}

std::vector<json> lines_of(const fs::path& p) {
  std::vector<json> out;
  std::ifstream f(p);
  std::string line;
  while (std::getline(f, line)) out.push_back(json::parse(line));  // throws on a partial line
  return out;
}

std::vector<std::string> make_input(const fs::path& dir, int n) {
  Image im;
  im.width = 4;
  im.height = 3;
  im.pixels.assign(4 * 3 * 3, 200);
  fs::create_directories(dir / "imgs");
  write_png(im, (dir / "imgs" / "in put.png").string());  // a space: the report must URL-encode it
  std::vector<std::string> lines;
  for (int i = 0; i < n; ++i) {
    json j{{"id", "item-" + std::to_string(i)}};
    j["prompt"] = json::array({json{{"text", "prompt " + std::to_string(i) + (i % 3 == 0 ? " [gen]" : " [ret]")}}});
    if (i % 2 == 0) j["prompt"].push_back(json{{"image", "imgs/in put.png"}});
    if (i % 4 == 0) j["options"] = json{{"seed", i}, {"temp", 0.5}};
    lines.push_back(j.dump());
  }
  return lines;
}

class BatchTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = temp_dir("batch"); }
  void TearDown() override { fs::remove_all(dir_); }
  batch::BatchOptions opts(const std::string& out = "out") {
    batch::BatchOptions o;
    o.input = dir_ / "in.jsonl";
    o.out_dir = dir_ / out;
    return o;
  }
  fs::path dir_;
};

TEST_F(BatchTest, EveryIdGetsOneResultAndImagesExist) {
  write_lines(dir_ / "in.jsonl", make_input(dir_, 12));
  const auto s = batch::run_batch(opts(), fake_runner());
  EXPECT_EQ(s.n_items, 12);
  EXPECT_EQ(s.n_ok, 12);
  EXPECT_EQ(s.n_errors, 0);
  const auto results = lines_of(dir_ / "out" / "results.jsonl");
  ASSERT_EQ(results.size(), 12u);
  for (int i = 0; i < 12; ++i) {
    const json& r = results[i];
    EXPECT_EQ(schema_problems(r, "batch"), std::vector<std::string>{}) << r.dump(2);
    EXPECT_EQ(r["id"], "item-" + std::to_string(i));
    EXPECT_EQ(r["status"], "ok");
    EXPECT_EQ(r["line"], i + 1);
    const uint64_t seed = i % 4 == 0 ? i : 1337;
    EXPECT_EQ(r["text"].get<std::string>().rfind("echo(" + std::to_string(i % 2 == 0 ? 1 : 0) + " images, seed " +
                                                     std::to_string(seed) + "): prompt " + std::to_string(i), 0),
              0u)
        << r.dump();
    ASSERT_EQ(r["images"].size(), 1u);
    if (i % 3 == 0) {
      EXPECT_EQ(r["images"][0]["decision"], "gen");
      const fs::path png = dir_ / "out" / r["images"][0]["generated"]["file"].get<std::string>();
      const Image im = read_image(png.string());
      EXPECT_EQ(im.width, 8);
      EXPECT_EQ(im.pixels[0], seed % 256);
    } else {
      EXPECT_EQ(r["images"][0]["decision"], "ret");
      EXPECT_EQ(r["images"][0]["retrieved"][0]["path"], "http://cc3m.invalid/1.jpg");
    }
    if (i % 2 == 0) {
      EXPECT_EQ(r["prompt"][1]["path"], (dir_ / "imgs" / "in put.png").lexically_normal().string());
    }
  }
  // A rerun does nothing.
  std::atomic<int> calls{0};
  const auto s2 = batch::run_batch(opts(), fake_runner(0, &calls));
  EXPECT_EQ(s2.n_skipped, 12);
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(lines_of(dir_ / "out" / "results.jsonl").size(), 12u);
}

TEST_F(BatchTest, BadLinesAndFailuresAreRecordedAndTheRunGoesOn) {
  write_lines(dir_ / "in.jsonl",
              {R"({"id": "a", "prompt": [{"text": "fine"}]})", R"({"id": "b", "prompt": [{"text": )", "",
               R"({"prompt": "no id"})", R"({"id": "c"})", R"({"id": "d", "prompt": "x", "options": {"temperature_x": 1}})",
               R"({"id": "e", "prompt": "x", "options": {"top_p": 1.5}})",
               R"({"id": "f", "prompt": "x", "options": {"steps": 2.5}})", R"({"id": "a", "prompt": "dup"})",
               R"({"id": "g", "prompt": [{"image": "missing.png"}]})", R"({"id": "h", "prompt": [{"video": "v"}]})",
               R"({"id": "i", "prompt": "please FAIL"})", R"([1, 2])", R"({"id": "j", "prompt": "last"})",
               R"({"id": 88888888888e88888888, "prompt": "x"})"});  // found by fuzz_batch: an uncaught out_of_range
  const auto s = batch::run_batch(opts(), fake_runner());
  EXPECT_EQ(s.n_items, 14);  // the blank line is not an item
  EXPECT_EQ(s.n_ok, 2);
  EXPECT_EQ(s.n_errors, 12);
  std::map<std::string, json> by_id;
  for (const json& r : lines_of(dir_ / "out" / "results.jsonl")) by_id[r["id"].get<std::string>()] = r;
  ASSERT_EQ(by_id.size(), 14u);
  for (const auto& [id, r] : by_id) EXPECT_EQ(schema_problems(r, "batch"), std::vector<std::string>{}) << r.dump(2);
  auto msg = [&](const std::string& id) { return by_id.at(id)["error"]["message"].get<std::string>(); };
  auto code = [&](const std::string& id) { return by_id.at(id)["error"]["code"].get<std::string>(); };
  EXPECT_EQ(by_id["a"]["status"], "ok");
  EXPECT_EQ(by_id["j"]["status"], "ok");
  EXPECT_EQ(code("line:2"), "bad format");
  EXPECT_EQ(msg("line:2").rfind("in.jsonl:2: bad JSON: ", 0), 0u) << msg("line:2");
  EXPECT_EQ(msg("line:4"), "in.jsonl:4: missing \"id\"");
  EXPECT_EQ(msg("c"), "in.jsonl:5: missing \"prompt\"");
  EXPECT_EQ(msg("d"), "in.jsonl:6: options.temperature_x: unknown option (known: num_words, temp, top_p, seed, steps, "
                      "cfg_scale, ret_scale_factor, gen_scale_factor, min_word_tokens, max_num_rets, always_generate, "
                      "scheduler)");
  EXPECT_EQ(code("d"), "invalid argument");
  EXPECT_EQ(msg("e"), "in.jsonl:7: GenerateOptions.top_p = 1.5: must be in (0, 1]");
  EXPECT_EQ(msg("f"), "in.jsonl:8: options.steps = 2.5: expected an integer");
  EXPECT_EQ(msg("line:9"), "in.jsonl:9: id \"a\" repeats line 1");
  EXPECT_EQ(code("g"), "not found");
  EXPECT_EQ(msg("g"), "in.jsonl:10: prompt[0].image: " + (dir_ / "missing.png").string() + ": no such file");
  EXPECT_EQ(msg("h"), "in.jsonl:11: prompt[0]: expected {\"text\": \"...\"} or {\"image\": \"path\"}, got "
                      "{\"video\":\"v\"}");
  EXPECT_EQ(msg("i"), "in.jsonl:12 (id i): fake runner failed");
  EXPECT_EQ(code("i"), "internal error");
  EXPECT_EQ(msg("line:13"), "in.jsonl:13: expected a JSON object, got array");
  EXPECT_EQ(code("line:15"), "bad format");
  EXPECT_NE(msg("line:15").find("in.jsonl:15: bad JSON: "), std::string::npos) << msg("line:15");
  EXPECT_NE(msg("line:15").find("number overflow"), std::string::npos) << msg("line:15");
}

TEST_F(BatchTest, ShardsCoverEveryIdExactlyOnce) {
  write_lines(dir_ / "in.jsonl", make_input(dir_, 20));
  std::map<std::string, int> count;
  for (int i = 0; i < 3; ++i) {
    auto o = opts();
    o.shard = batch::parse_shard(std::to_string(i) + "/3");
    const auto s = batch::run_batch(o, fake_runner());
    EXPECT_EQ(s.n_in_shard, i < 2 ? 7 : 6);
    const auto lines = lines_of(dir_ / "out" / ("results.shard-" + std::to_string(i) + "-of-3.jsonl"));
    EXPECT_EQ(static_cast<int64_t>(lines.size()), s.n_in_shard);
    for (const json& r : lines) {
      ++count[r["id"].get<std::string>()];
      EXPECT_EQ((r["line"].get<int>() - 1) % 3, i);
      EXPECT_EQ(r["shard"], std::to_string(i) + "/3");
    }
  }
  ASSERT_EQ(count.size(), 20u);
  for (const auto& [id, n] : count) EXPECT_EQ(n, 1) << id;
  EXPECT_EQ(batch::read_results(dir_ / "out").size(), 20u);  // the report merges every shard
}

TEST(BatchShard, ParseErrors) {
  EXPECT_EQ(batch::parse_shard("2/5").index, 2);
  EXPECT_EQ(batch::parse_shard("2/5").count, 5);
  for (const char* bad : {"3/3", "1", "a/b", "-1/2", "1/0", "1/2x", "/2"}) {
    try {
      batch::parse_shard(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_EQ(std::string(e.what()), std::string("--shard ") + bad + ": expected I/N with 0 <= I < N (e.g. 0/4 ... 3/4)");
    }
  }
}

TEST_F(BatchTest, StopFlagFinishesTheCurrentItemThenResumeCompletes) {
  write_lines(dir_ / "in.jsonl", make_input(dir_, 10));
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0};
  auto o = opts();
  o.stop = &stop;
  auto runner = fake_runner(0, &calls);
  const auto s = batch::run_batch(o, [&](const Prompt& p, const GenerateOptions& g) {
    Result r = runner(p, g);
    if (calls == 4) stop = true;  // as a SIGINT during item 4 would
    return r;
  });
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.n_ok, 4);
  EXPECT_EQ(lines_of(dir_ / "out" / "results.jsonl").size(), 4u);
  const auto s2 = batch::run_batch(opts(), fake_runner());
  EXPECT_EQ(s2.n_skipped, 4);
  EXPECT_EQ(s2.n_ok, 6);
  EXPECT_EQ(lines_of(dir_ / "out" / "results.jsonl").size(), 10u);
}

TEST_F(BatchTest, ResumeAfterSigkillLosesAndDuplicatesNothing) {
  const int n = 40;
  write_lines(dir_ / "in.jsonl", make_input(dir_, n));
  const fs::path results = dir_ / "out" / "results.jsonl";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // child: a slow run, killed from outside
    try {
      batch::run_batch(opts(), fake_runner(25));
    } catch (...) {
    }
    ::_exit(0);
  }
  // Wait for some results, then SIGKILL mid-run.
  size_t done = 0;
  for (int t = 0; t < 400 && done < 8; ++t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::ifstream f(results);
    done = std::count(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>(), '\n');
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_GE(done, 8u);
  // Whatever the kill interrupted, add a torn line as a kill inside write(2) could leave.
  { std::ofstream(results, std::ios::app) << R"({"id": "item-39", "status": "ok", "te)"; }
  const auto s = batch::run_batch(opts(), fake_runner());
  EXPECT_GE(s.n_skipped, 8);
  EXPECT_EQ(s.n_skipped + s.n_ok, n);
  const auto lines = lines_of(results);  // every line parses: the torn one was cut
  std::map<std::string, int> count;
  for (const json& r : lines) ++count[r["id"].get<std::string>()];
  EXPECT_EQ(count.size(), static_cast<size_t>(n));
  for (const auto& [id, c] : count) EXPECT_EQ(c, 1) << id;
  // No partial file: no temporaries left, every image decodes.
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "out")) {
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
    if (e.path().extension() == ".png") {
      EXPECT_NO_THROW(read_image(e.path().string())) << e.path();
    }
  }
}

TEST_F(BatchTest, ReportIsWellFormedAndItsImagesExist) {
  auto lines = make_input(dir_, 9);
  lines.push_back(R"({"id": "<script>&\"quotes\"", "prompt": "a < b && c > d [gen]"})");
  lines.push_back(R"({"id": "broken", "prompt": [{"image": "nope.png"}]})");
  write_lines(dir_ / "in.jsonl", lines);
  const auto s = batch::run_batch(opts(), fake_runner());
  ASSERT_EQ(s.report_path, dir_ / "out" / "index.html");
  const std::string html = io::read_file(s.report_path);
  const HtmlCheck check = check_html(html);
  ASSERT_TRUE(check.ok) << check.error;
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;&amp;&quot;quotes&quot;"), std::string::npos);
  EXPECT_NE(html.find("nope.png: no such file"), std::string::npos);
  // 5 input images (items 0,2,4,6,8) + 4 generated (items 0,3,6 and the escaped one).
  EXPECT_EQ(check.srcs.size(), 9u);
  for (const std::string& src : check.srcs) {
    EXPECT_TRUE(fs::is_regular_file(dir_ / "out" / url_decode(src))) << src;
    EXPECT_EQ(src.find(' '), std::string::npos) << src;
  }
  // Each item appears, in input order.
  size_t last = 0;
  for (int i = 0; i < 9; ++i) {
    const size_t at = html.find("id=\"item-item-" + std::to_string(i) + "\"");
    ASSERT_NE(at, std::string::npos) << i;
    EXPECT_GT(at, last);
    last = at;
  }
  // GILL_KEEP_REPORT=DIR keeps a copy of this run's output folder (to look at the report in a browser).
  if (const char* keep = std::getenv("GILL_KEEP_REPORT")) {
    fs::remove_all(keep);
    fs::copy(dir_, keep, fs::copy_options::recursive);
  }
}

TEST(BatchNames, SafeName) {
  EXPECT_EQ(batch::safe_name("abc-1_2.x"), "abc-1_2.x");
  const std::string s = batch::safe_name("a/b c");
  EXPECT_EQ(s.rfind("a_b_c-", 0), 0u);
  EXPECT_NE(batch::safe_name("a/b"), batch::safe_name("a?b"));  // same cleaned text, different hash
  EXPECT_EQ(batch::safe_name("..").rfind("..-", 0), 0u);
}

// Lines with "candidates" go to the scorer (Engine::score in the CLI) and record every score and the best; the
// runner is not called for them. Without a scorer, or with a bad "candidates" value, the line is an error result.
TEST_F(BatchTest, CandidatesAreScored) {
  write_lines(dir_ / "in.jsonl",
              {R"({"id": "s1", "prompt": "A photo of", "candidates": ["a dog", "a big cat"]})",
               R"({"id": "s2", "prompt": "x", "candidates": []})", R"({"id": "s3", "prompt": "x", "candidates": ["a", 3]})",
               R"({"id": "g1", "prompt": "plain"})"});
  std::atomic<int> calls{0};
  auto o = opts();
  std::vector<std::vector<std::string>> scored;
  o.scorer = [&](const Prompt& p, const std::vector<std::string>& c) {
    EXPECT_EQ(p.size(), 1u);
    scored.push_back(c);
    std::vector<CandidateScore> out;
    for (const auto& t : c) out.push_back({t, -static_cast<double>(t.size()), static_cast<int64_t>(t.size()), 9});
    return out;
  };
  const auto s = batch::run_batch(o, fake_runner(0, &calls));
  EXPECT_EQ(s.n_ok, 2);
  EXPECT_EQ(s.n_errors, 2);
  EXPECT_EQ(calls.load(), 1);  // only g1 generates
  ASSERT_EQ(scored.size(), 1u);
  std::map<std::string, json> by_id;
  for (const auto& r : lines_of(s.results_path)) by_id[r["id"].get<std::string>()] = r;
  for (const auto& [id, l] : by_id) EXPECT_EQ(schema_problems(l, "batch"), std::vector<std::string>{}) << l.dump(2);
  const json& r = by_id["s1"];
  EXPECT_EQ(r["status"], "ok");
  ASSERT_EQ(r["scores"].size(), 2u);
  EXPECT_EQ(r["scores"][1]["candidate"], "a big cat");
  EXPECT_EQ(r["scores"][1]["log_likelihood"].get<double>(), -9.0);
  EXPECT_EQ(r["scores"][1]["n_scored"], 9);
  EXPECT_EQ(r["best"], 0);
  EXPECT_EQ(by_id["s2"]["error"]["message"], "in.jsonl:2: \"candidates\": expected a non-empty array of strings");
  EXPECT_EQ(by_id["s3"]["error"]["message"], "in.jsonl:3: candidates[1]: expected a string, got 3");
  EXPECT_EQ(by_id["g1"]["status"], "ok");
  EXPECT_NE(io::read_file(s.report_path).find("a big cat"), std::string::npos);

  // No scorer: the scored line fails with a message naming the line, the others still run.
  fs::remove_all(o.out_dir);
  o.scorer = nullptr;
  const auto s2 = batch::run_batch(o, fake_runner());
  std::map<std::string, json> by_id2;
  for (const auto& l : lines_of(s2.results_path)) by_id2[l["id"].get<std::string>()] = l;
  EXPECT_EQ(by_id2["s1"]["error"]["message"], "in.jsonl:1 (id s1): \"candidates\" given but this run has no scorer");
  EXPECT_EQ(by_id2["g1"]["status"], "ok");
}

}  // namespace
}  // namespace gill::test
