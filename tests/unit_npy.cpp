// .npy reader and the retrieval embeddings pickle. Data: tests/data/io (SOURCE.md).
#include <gtest/gtest.h>

#include "io/atomic_file.h"
#include "io/npy.h"
#include "test_support.h"
#include "util/error.h"

using gill::test::io_data;
using gill::test::expect_error;

using namespace gill;
using gill::test::data_dir;

TEST(Npy, Dtypes) {
  EXPECT_TRUE(torch::equal(io::load_npy(io_data("f32_2x3.npy")), torch::arange(6, torch::kFloat32).reshape({2, 3})));
  EXPECT_TRUE(torch::equal(io::load_npy(io_data("i64_4.npy")),
                           torch::tensor({int64_t(1), int64_t(-2), int64_t(3), int64_t(1) << 40})));
  EXPECT_TRUE(torch::equal(io::load_npy(io_data("f16_3.npy")).to(torch::kFloat32), torch::tensor({0.5f, 1.5f, -3.f})));
  auto b = io::load_npy(io_data("bool_3.npy"));
  EXPECT_EQ(b.scalar_type(), torch::kBool);
  EXPECT_TRUE(torch::equal(b, torch::tensor({true, false, true})));
  EXPECT_TRUE(torch::equal(io::load_npy(io_data("fortran_2x3.npy")),
                           torch::arange(6, torch::kFloat64).reshape({2, 3})));
  EXPECT_TRUE(torch::equal(io::load_npy(io_data("v2_f32.npy")), torch::arange(4, torch::kFloat32)));
  EXPECT_TRUE(torch::equal(io::load_npy(io_data("v3_f32.npy")), torch::arange(4, torch::kFloat32)));
  EXPECT_EQ(io::read_npy_header(io_data("v2_f32.npy")).major, 2);
}

TEST(Npy, Errors) {
  auto p = io_data("be_f4.npy");
  expect_error([&] { io::load_npy(p); }, ErrorCode::kUnsupported,
               p.string() + ": big-endian dtype '>f4' is not supported");
  p = io_data("cc3m_embeddings_urls.npy");
  expect_error([&] { io::load_npy(p); }, ErrorCode::kFormat, p.string() + ": not a .npy file (no \\x93NUMPY magic)");
  const auto dir = gill::test::temp_dir("npy_trunc");
  const std::string full = io::read_file(io_data("f32_2x3.npy"));
  io::write_file_atomic(dir / "t.npy", full.substr(0, full.size() - 4));
  expect_error([&] { io::load_npy(dir / "t.npy"); }, ErrorCode::kFormat,
               (dir / "t.npy").string() + ": .npy data holds 20 bytes but shape [2, 3] of <f4 needs 24");
  std::filesystem::remove_all(dir);
}

TEST(Npy, RetrievalEmbeddingsFixture) {
  auto r = io::load_retrieval_embeddings(io_data("cc3m_embeddings_urls.npy"));
  ASSERT_EQ(r.paths.size(), 6u);
  EXPECT_EQ(r.paths[0], "http://cc3m.invalid/retrieval_images/000000.png");
  EXPECT_EQ(r.paths[5], "http://cc3m.invalid/retrieval_images/000005.png");
  EXPECT_EQ(r.embeddings.sizes(), (std::vector<int64_t>{6, 24}));
  EXPECT_EQ(r.embeddings.scalar_type(), torch::kFloat32);
  // Python: np.array(pickle.load(f)['embeddings'])[0, :2] and .sum()
  EXPECT_FLOAT_EQ(r.embeddings[0][0].item<float>(), -0.6204186677932739f);
  EXPECT_FLOAT_EQ(r.embeddings[0][1].item<float>(), -2.2562427520751953f);
  EXPECT_NEAR(r.embeddings.to(torch::kFloat64).sum().item<double>(), -41.31196878105402, 1e-5);
}

TEST(Npy, RetrievalWriterRoundTripAndPython) {
  const auto dir = gill::test::temp_dir("npy_ret");
  const auto p = dir / "emb.npy";
  auto e = torch::arange(6, torch::kFloat32).reshape({2, 3}) / 7;
  io::write_retrieval_embeddings(p, {"a.png", "http://x/b.png"}, e);
  auto r = io::load_retrieval_embeddings(p);
  EXPECT_EQ(r.paths, (std::vector<std::string>{"a.png", "http://x/b.png"}));
  EXPECT_TRUE(torch::equal(r.embeddings, e));
  if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 with numpy absent: pickle.load check skipped";
  const std::string cmd = "/usr/bin/python3 -c \"import pickle, numpy as np; d = pickle.load(open('" + p.string() +
                          "', 'rb')); assert d['paths'] == ['a.png', 'http://x/b.png']; "
                          "m = np.array(d['embeddings']); assert m.dtype == np.float32 and m.shape == (2, 3); "
                          "assert abs(m[1, 2] - 5 / 7) < 1e-7\"";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::filesystem::remove_all(dir);
}
