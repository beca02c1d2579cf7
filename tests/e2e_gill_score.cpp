// Engine::score and `gill score` on the fixture GILL (fp32) against the reference's own
// GILL.get_log_likelihood_scores (summary.json › gill › log_likelihood_score, for the prompt
// [clip_input_0, "What is in this image?", clip_input_1, "Show me a picture of a dog."]), the label rule
// (images unscored, BOS before the first text only, the first position never scored) and the bad inputs.
#include <gill/gill.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "io/safetensors.h"
#include "models/clip_image_processor.h"
#include "test_support.h"

using namespace gill;
using gill::test::data_dir;
using gill::test::expect_error;
using gill::test::run_cli;
using gill::test::shared_dir;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

fs::path score_fixture_models() {
  return shared_dir() / "fixtures" / "models";
}

Engine& score_engine() {
  static Engine e = [] {
    EngineOptions o;
    o.weights_root = score_fixture_models().string();
    o.gill_dir = (data_dir() / "gill_opt").string();  // the native files (SOURCE.md)
    o.load_sd = false;
    return Engine(o);
  }();
  return e;
}

Segment score_image(const char* name) {
  io::SafetensorsFile imgs(data_dir() / "gill" / "prompt_images.safetensors");
  return Segment::Pixels(models::image_from_hwc_uint8(imgs.get(std::string("inputs.") + name + ".rgb_uint8")));
}

double reference_score() {
  std::ifstream f(data_dir() / "gill" / "summary_gill.json");
  return json::parse(f).at("log_likelihood_score").get<double>();
}

const std::string kDog = "Show me a picture of a dog.";

// The fixture prompt without its last text, which is scored as the candidate.
Prompt score_prompt() {
  return {score_image("clip_input_0.png"), Segment::Text("What is in this image?"), score_image("clip_input_1.png")};
}

}  // namespace

TEST(GillScore, EqualsTheReferenceLogLikelihood) {
  GILL_REQUIRE_PATH(score_fixture_models());
  const auto s = score_engine().score(score_prompt(), {kDog});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].candidate, kDog);
  EXPECT_NEAR(s[0].log_likelihood, reference_score(), 1e-5) << "reference " << reference_score();
  // Every position but the two images' 4 rows each is a scored text label (the first position is an image, so
  // the BOS of the first text is scored too).
  EXPECT_EQ(s[0].n_positions - s[0].n_scored, 2 * 4);
}

TEST(GillScore, CandidatesAreScoredIndependentlyInOrder) {
  GILL_REQUIRE_PATH(score_fixture_models());
  const std::vector<std::string> c = {"A cat on a mat.", kDog, "dog"};
  const auto all = score_engine().score(score_prompt(), c);
  ASSERT_EQ(all.size(), 3u);
  for (size_t k = 0; k < c.size(); ++k) {
    EXPECT_EQ(all[k].candidate, c[k]);
    const auto one = score_engine().score(score_prompt(), {c[k]});
    EXPECT_EQ(one[0].log_likelihood, all[k].log_likelihood) << c[k];
  }
  EXPECT_NEAR(all[1].log_likelihood, reference_score(), 1e-5);
  EXPECT_NE(all[0].log_likelihood, all[1].log_likelihood);
}

TEST(GillScore, LabelRule) {
  GILL_REQUIRE_PATH(score_fixture_models());
  auto& e = score_engine();
  // Text first: its BOS is position 0, never scored; everything else is text.
  const auto t = e.score({Segment::Text("What is in this image?")}, {kDog})[0];
  EXPECT_EQ(t.n_positions - t.n_scored, 1);
  // No prompt: the candidate alone, with its BOS at position 0.
  const auto c = e.score({}, {kDog})[0];
  EXPECT_EQ(c.n_positions - c.n_scored, 1);
  // Only an image: the candidate gets the BOS and it is scored (predicted from the image rows).
  const auto i = e.score({score_image("clip_input_1.png")}, {kDog})[0];
  EXPECT_EQ(i.n_positions - i.n_scored, 4);
  EXPECT_EQ(i.n_positions, c.n_positions + 4);
  // The prompt's text tokens count in the mean (the reference scores the whole sequence).
  EXPECT_GT(t.n_scored, c.n_scored);
}

TEST(GillScore, BadInputs) {
  GILL_REQUIRE_PATH(score_fixture_models());
  auto& e = score_engine();
  expect_error([&] { e.score(score_prompt(), {}); }, ErrorCode::kInvalidArgument,
               "scoring: no candidates (give at least one text)");
  expect_error(
      [&] {
        e.score(score_prompt(), {kDog, ""});
      },
      ErrorCode::kInvalidArgument, "scoring: candidate 1 is empty");
  expect_error(
      [&] {
        e.score(score_prompt(), {"ok", "bad \xff"});
      },
      ErrorCode::kInvalidArgument, "candidate 1 is not valid UTF-8 (byte 0xff at offset 4)");
  // The fixture OPT holds 64 positions. The prompt's positions: with it the candidate has no BOS.
  const int64_t prompt_positions =
      e.score(score_prompt(), {kDog})[0].n_positions - e.score({}, {kDog})[0].n_positions + 1;
  std::string long_text;
  for (int k = 0; k < 80; ++k) long_text += " dog";
  try {
    e.score(score_prompt(), {kDog, long_text});
    ADD_FAILURE() << "no error for an over-long candidate";
  } catch (const Error& err) {
    EXPECT_EQ(err.code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(std::regex_match(
        err.what(), std::regex("scoring: candidate 1: prompt \\(" + std::to_string(prompt_positions) +
                               " positions\\) \\+ candidate \\([0-9]+ tokens\\) = [0-9]+ positions; the LM "
                               "holds at most 64")))
        << err.what();
  }
  expect_error([&] { e.score({Segment::ImageFile("/nonexistent/x.png")}, {kDog}); }, ErrorCode::kNotFound,
               "/nonexistent/x.png: no such file");
}

TEST(GillScore, CliMatchesTheReference) {
  GILL_REQUIRE_PATH(score_fixture_models());
  const fs::path images = shared_dir() / "fixtures" / "expected" / "images";
  const fs::path dir = gill::test::temp_dir("gill_score_cli");
  const fs::path js = dir / "scores.json", cands = dir / "candidates.txt";
  {
    std::ofstream f(cands);
    f << "A cat on a mat.\r\n" << kDog << "\n";
  }
  auto r = run_cli({"score", "-m", score_fixture_models().string(), "--gill", (data_dir() / "gill_opt").string(),
                    "--image", (images / "clip_input_0.png").string(), "-p", "What is in this image?", "--image",
                    (images / "clip_input_1.png").string(), "-c", "dog", "--candidates", cands.string(), "--json",
                    js.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream f(js);
  const json j = json::parse(f);
  ASSERT_EQ(j["scores"].size(), 3u);
  EXPECT_EQ(j["scores"][0]["candidate"], "dog");
  EXPECT_EQ(j["scores"][1]["candidate"], "A cat on a mat.");
  EXPECT_EQ(j["scores"][2]["candidate"], kDog);
  EXPECT_NEAR(j["scores"][2]["log_likelihood"].get<double>(), reference_score(), 1e-5);
  ASSERT_EQ(j["prompt"].size(), 3u);
  EXPECT_EQ(j["prompt"][1]["text"], "What is in this image?");
  // stdout: one line per candidate, then the best.
  const auto best = j["best"].get<size_t>();
  EXPECT_NE(r.out.find("best: " + std::to_string(best) + "\t" + j["scores"][best]["candidate"].get<std::string>()),
            std::string::npos)
      << r.out;

  // Bad inputs: exit 2 with the message.
  auto none = run_cli({"score", "-m", score_fixture_models().string(), "-p", "x"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("gill score: give at least one candidate with -c TEXT or --candidates FILE"),
            std::string::npos)
      << none.err;
  {
    std::ofstream g(cands);
    g << "one\n\ntwo\n";
  }
  auto blank = run_cli({"score", "-m", score_fixture_models().string(), "--candidates", cands.string()});
  EXPECT_EQ(blank.exit_code, 2);
  EXPECT_NE(blank.err.find("--candidates " + cands.string() + ": line 2 is empty (one candidate a line)"),
            std::string::npos)
      << blank.err;
  fs::remove_all(dir);
}
