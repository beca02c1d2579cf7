// gill run --lm on the fixture OPT (greedy ids as transformers' generate(), dump tensors) and on a tiny-kit OPT.
#include "io/safetensors.h"
#include "test_support.h"
#include "tiny/tiny_opt.h"

using namespace gill;
using gill::test::run_cli;

TEST(RunLm, FixtureGreedyIdsAndDump) {
  auto dir = gill::test::temp_dir("run_lm");
  const auto dump = dir / "dump.safetensors";
  auto r = run_cli({"run", "--lm", (test::data_dir() / "opt" / "opt-tiny").string(), "--dtype", "fp32", "--ids",
                    "2,36,302,269,260,278,276,267,270,313,283,260,272,286,71,309,375,69,292,356,72,91,87,304,260,278,"
                    "351,269",
                    "-n", "12", "--no-eos-stop", "--dump-tensors", dump.string(), "--dump-hidden"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  io::SafetensorsFile f(dump);
  auto ids = f.get("lm.output_ids");
  EXPECT_TRUE(torch::equal(ids, torch::tensor({355, 316, 63, 221, 221, 221, 221, 48, 48, 48, 48, 48}, torch::kLong)));
  EXPECT_EQ(f.get("lm.input_ids").sizes(), (std::vector<int64_t>{1, 28}));
  EXPECT_EQ(f.get("lm.logits").sizes(), (std::vector<int64_t>{12, 416}));
  EXPECT_EQ(f.get("lm.hidden_states").sizes(), (std::vector<int64_t>{3, 28, 64}));
  io::SafetensorsFile exp(test::data_dir() / "opt" / "opt.safetensors");
  EXPECT_TRUE(test::tensors_close(f.get("lm.logits"), exp.get("greedy.scores").select(0, 0), 1e-4, 1e-5, "lm.logits"));
  EXPECT_TRUE(test::tensors_close(f.get("lm.hidden_states")[2], exp.get("single.hidden_states.2")[0], 1e-4, 1e-5,
                                  "lm.hidden_states"));
  std::filesystem::remove_all(dir);
}

TEST(RunLm, TinyKitOptGeneratesAndBadDtype) {
  auto dir = gill::test::temp_dir("run_lm_tiny");
  tiny::write_tiny_opt(dir / "opt", 7);
  // Greedy decoding is deterministic: the same text twice, and exactly 5 new ids inside the tiny vocabulary.
  const std::vector<std::string> args = {"run", "--lm", (dir / "opt").string(), "--ids", "2,40,41,42", "-n", "5",
                                         "--no-eos-stop", "--dump-tensors", (dir / "d.safetensors").string()};
  auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  io::SafetensorsFile f(dir / "d.safetensors");
  auto ids = f.get("lm.output_ids");
  ASSERT_EQ(ids.numel(), 5);
  EXPECT_GE(ids.min().item<int64_t>(), 0);
  EXPECT_LT(ids.max().item<int64_t>(), 416);
  auto again = run_cli(args);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, r.out);
  auto bad = run_cli({"run", "--lm", (dir / "opt").string(), "--ids", "2", "--dtype", "int4"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("unknown dtype 'int4' for the LM (expected fp32 or bf16)"), std::string::npos) << bad.err;
  std::filesystem::remove_all(dir);
}
