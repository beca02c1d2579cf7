// `gill inspect` on pickles, .npy, retrieval files and every fixture model folder; `gill make-tiny` -> inspect ->
// load round trip (and Python's torch.load reads what make-tiny wrote).
#include <gtest/gtest.h>

#include "io/atomic_file.h"
#include "io/npy.h"
#include "io/tensor_source.h"
#include "test_support.h"
#include "tiny/tiny.h"

using namespace gill;
using gill::test::data_dir;
using gill::test::run_cli;
using gill::test::shared_dir;

TEST(Inspect, UpstreamDecisionModel) {
  const auto p = shared_dir() / "upstream" / "gill" / "decision_model.pth.tar";
  GILL_REQUIRE_PATH(p);
  auto r = run_cli({"inspect", p.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "state_dict.1.bias  F32  [2]  " + p.string() + "\nstate_dict.1.weight  F32  [2, 4096]  " +
                       p.string() + "\n");
}

TEST(Inspect, NonTensorEntriesAndNpy) {
  const auto p = data_dir() / "io" / "nested.pth.tar";
  auto r = run_cli({"inspect", p.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("state_dict.a.weight  F32  [3, 4]  "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("epoch  int  7  "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("name  str  'tiny'  "), std::string::npos) << r.out;
  r = run_cli({"inspect", (data_dir() / "io" / "f32_2x3.npy").string()});
  EXPECT_EQ(r.out, "f32_2x3  F32  [2, 3]  " + (data_dir() / "io" / "f32_2x3.npy").string() + "\n");
  const auto e = data_dir() / "io" / "cc3m_embeddings_urls.npy";
  r = run_cli({"inspect", e.string()});
  EXPECT_EQ(r.out, "paths  list  [6 items]  " + e.string() + "\nembeddings  F32  [6, 24]  " + e.string() + "\n");
}

TEST(Inspect, RefusedPickleExitCode) {
  auto r = run_cli({"inspect", (data_dir() / "io" / "evil_os_system.pth.tar").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("refused to load global 'posix.system'"), std::string::npos) << r.err;
}

TEST(Inspect, EveryFixtureModelFolder) {
  const auto root = shared_dir() / "fixtures" / "models";
  GILL_REQUIRE_PATH(root);
  auto r = run_cli({"inspect", root.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("state_dict.model.logit_scale  BF16  []"), std::string::npos);
  EXPECT_NE(r.out.find("state_dict.1.weight  F32  [2, 64]"), std::string::npos);
  EXPECT_NE(r.out.find("embeddings  F32  [6, 24]"), std::string::npos);
  EXPECT_NE(r.out.find("decoder.layers.0.fc1.weight"), std::string::npos);
}

// The tiny GILL checkpoint has the key set, shapes and dtypes of the reference-made fixture.
TEST(MakeTiny, CheckpointKeysShapesDtypesAsTheFixture) {
  const auto fixture = shared_dir() / "fixtures" / "models" / "checkpoints" / "gill_opt" / "pretrained_ckpt.pth.tar";
  GILL_REQUIRE_PATH(fixture);
  const auto a = gill::test::temp_dir("tiny_keys");
  tiny::make_tiny(a, 0);
  auto mine = io::open_tensors(a / "checkpoints" / "gill_opt" / "pretrained_ckpt.pth.tar");
  auto ref = io::open_tensors(fixture);
  EXPECT_EQ(mine->names(), ref->names());
  for (const auto& n : ref->names()) {
    EXPECT_EQ(mine->info(n).shape, ref->info(n).shape) << n;
    EXPECT_EQ(mine->info(n).dtype, ref->info(n).dtype) << n;
  }
  std::filesystem::remove_all(a);
}

TEST(MakeTiny, DeterministicInspectLoadAndTorchLoad) {
  const auto a = gill::test::temp_dir("tiny_a"), b = gill::test::temp_dir("tiny_b");
  auto r = run_cli({"make-tiny", a.string(), "--seed", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  tiny::make_tiny(b, 3);
  const auto ck = std::filesystem::path("checkpoints") / "gill_opt";
  for (const char* f : {"model_args.json", "pretrained_ckpt.pth.tar", "decision_model.pth.tar",
                        "cc3m_embeddings_urls.npy"})
    EXPECT_EQ(io::read_file(a / ck / f), io::read_file(b / ck / f)) << f << " differs for the same seed";
  r = run_cli({"inspect", a.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("state_dict.model.gen_text_hidden_fcs.0.query_embs  BF16  [1, 77, 40]"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("state_dict.1.weight  F32  [2, 64]"), std::string::npos) << r.out;
  auto emb = io::load_retrieval_embeddings(a / ck / "cc3m_embeddings_urls.npy");
  EXPECT_EQ(emb.embeddings.sizes(), (std::vector<int64_t>{6, 24}));
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
    std::filesystem::remove_all(a);
    std::filesystem::remove_all(b);
    GTEST_SKIP() << "python3-torch absent: torch.load check skipped";
  }
  const std::string cmd = "/usr/bin/python3 -c \"import torch; d = torch.load('" +
                          (a / ck / "pretrained_ckpt.pth.tar").string() +
                          "')['state_dict']; assert d['model.gen_text_hidden_fcs.0.query_embs'].shape == (1, 77, 40); "
                          "assert d['model.logit_scale'].dtype == torch.bfloat16; "
                          "e = torch.load('" + (a / ck / "decision_model.pth.tar").string() +
                          "')['state_dict']; assert e['1.weight'].shape == (2, 64)\"";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::filesystem::remove_all(a);
  std::filesystem::remove_all(b);
}
