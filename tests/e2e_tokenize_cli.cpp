// `gill tokenize` against every line of the ../shared/tokenizer-data goldens (Hugging Face tokenizers, see its
// README): the CLI reads {"text": ...} lines on stdin and must write the golden ids, one {"ids": [...]} line per
// input line, in order; --decode must invert it.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_support.h"

using gill::test::read_jsonl;

namespace gill {
namespace {

namespace fs = std::filesystem;
using test::run_cli;
using Ids = std::vector<int64_t>;

fs::path data() { return test::shared_dir() / "tokenizer-data"; }

// Runs `gill tokenize --tokenizer DIR FLAGS` over the lines of `golden` that have `field`, compares each output
// line with that field.
void check_cli(const std::string& golden, const std::string& dir, const std::vector<std::string>& flags,
               const std::string& field) {
  std::vector<nlohmann::json> lines;
  for (auto& j : read_jsonl(data() / golden))
    if (j.contains(field)) lines.push_back(std::move(j));
  ASSERT_GT(lines.size(), 400u) << golden << " " << field;
  std::string in;
  for (const auto& j : lines) in += nlohmann::json{{"text", j["text"]}}.dump() + "\n";
  std::vector<std::string> args = {"tokenize", "--tokenizer", (data() / dir).string()};
  args.insert(args.end(), flags.begin(), flags.end());
  const auto r = run_cli(args, in);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream out(r.out);
  std::string line;
  size_t i = 0;
  int bad = 0;
  for (; std::getline(out, line); ++i) {
    ASSERT_LT(i, lines.size()) << "more output lines than inputs";
    const Ids got = nlohmann::json::parse(line).at("ids").get<Ids>();
    if (got != lines[i][field].get<Ids>() && ++bad <= 5)
      ADD_FAILURE() << golden << " " << lines[i]["id"] << " " << field << ": got " << line;
  }
  EXPECT_EQ(i, lines.size()) << "one output line per input line";
  EXPECT_EQ(bad, 0) << bad << " of " << lines.size() << " lines differ (" << golden << " " << field << ")";
}

TEST(TokenizeCli, Gpt2) {
  GILL_REQUIRE_PATH(data());
  check_cli("golden-gpt2.jsonl", "gpt2", {}, "ids");
}

TEST(TokenizeCli, Opt) {
  GILL_REQUIRE_PATH(data());
  check_cli("golden-opt.jsonl", "opt", {"--no-special"}, "ids");
  check_cli("golden-opt.jsonl", "opt", {}, "ids_bos");
}

TEST(TokenizeCli, OptWithGillTokens) {
  GILL_REQUIRE_PATH(data());
  check_cli("golden-opt-gill.jsonl", "opt", {"--gill-tokens", "--no-special"}, "ids_tf4292");
  check_cli("golden-opt-gill.jsonl", "opt", {"--gill-tokens", "--no-special", "--modern-added-tokens"}, "ids");
}

TEST(TokenizeCli, Clip) {
  GILL_REQUIRE_PATH(data());
  check_cli("golden-clip.jsonl", "clip", {}, "ids");
  check_cli("golden-clip.jsonl", "clip", {"--pad-77"}, "ids_sd77");
}

// --decode inverts encode on the OPT goldens (byte-level BPE is lossless up to clean_up_tokenization, which the
// golden texts below do not trigger: they are checked against the library's own decode).
TEST(TokenizeCli, DecodeRoundTrip) {
  GILL_REQUIRE_PATH(data());
  const auto lines = read_jsonl(data() / "golden-opt.jsonl");
  std::string in;
  for (const auto& j : lines) in += nlohmann::json{{"ids", j["ids"]}}.dump() + "\n";
  const auto r = run_cli({"tokenize", "--tokenizer", (data() / "opt").string(), "--decode"}, in);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream out(r.out);
  std::string line;
  size_t i = 0, same = 0;
  for (; std::getline(out, line) && i < lines.size(); ++i) {
    const std::string text = nlohmann::json::parse(line).at("text").get<std::string>();
    same += text == lines[i]["text"].get<std::string>();
  }
  EXPECT_EQ(i, lines.size());
  // clean_up_tokenization rewrites " ." / " 's" / " n't" etc.; most golden texts have none of them.
  EXPECT_GT(same, lines.size() * 8 / 10) << same << " of " << lines.size() << " round-trip exactly";
}

}  // namespace
}  // namespace gill
