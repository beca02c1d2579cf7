// Restricted unpickler + torch zip-pickle reader: good files (fixtures, upstream decision model), hostile and
// malformed ones by their exact messages. Data: tests/data/io (see SOURCE.md).
#include <gtest/gtest.h>

#include <fstream>

#include "io/atomic_file.h"
#include "io/pickle.h"
#include "io/tensor_source.h"
#include "io/torch_pickle.h"
#include "io/torch_writer.h"
#include "test_support.h"
#include "util/error.h"

using gill::test::bytes;
using gill::test::io_data;
using gill::test::expect_error;

using namespace gill;
using gill::test::data_dir;
using gill::test::shared_dir;

TEST(Pickle, UpstreamDecisionModel) {
  const auto path = shared_dir() / "upstream" / "gill" / "decision_model.pth.tar";
  GILL_REQUIRE_PATH(path);
  auto src = io::open_tensors(path);
  EXPECT_EQ(src->names(), (std::vector<std::string>{"state_dict.1.bias", "state_dict.1.weight"}));
  EXPECT_EQ(src->info("state_dict.1.weight").shape, (std::vector<int64_t>{2, 4096}));
  EXPECT_EQ(src->info("state_dict.1.weight").dtype, io::DType::F32);
  EXPECT_EQ(src->info("state_dict.1.bias").shape, (std::vector<int64_t>{2}));
  // Values from Python: torch.load(f)['state_dict']['1.bias'] and ['1.weight'].sum()
  auto b = src->get("state_dict.1.bias");
  auto w = src->get("state_dict.1.weight");
  EXPECT_EQ(w.sizes(), (std::vector<int64_t>{2, 4096}));
  // Python: d['1.weight'].double().sum() and d['1.bias'].tolist()
  EXPECT_NEAR(w.to(torch::kFloat64).sum().item<double>(), 0.869661329167684, 1e-9);
  EXPECT_FLOAT_EQ(b[0].item<float>(), -0.010044708847999573f);
  EXPECT_FLOAT_EQ(b[1].item<float>(), -0.0028955002781003714f);
}

TEST(Pickle, FixtureDecisionModelValues) {
  auto src = io::open_tensors(io_data("fixture_decision_model.pth.tar"));
  auto* tp = dynamic_cast<io::TorchPickleFile*>(src.get());
  ASSERT_NE(tp, nullptr);
  auto w = src->get("state_dict.1.weight");
  EXPECT_EQ(w.sizes(), (std::vector<int64_t>{2, 64}));
  // Zero-copy: the tensor points into the mapping.
  EXPECT_EQ(w.data_ptr(), static_cast<const void*>(tp->raw_data("state_dict.1.weight")));
  EXPECT_NEAR(w.sum().item<double>(), 2.5044713020324707, 1e-5);
  EXPECT_NEAR(src->get("state_dict.1.bias")[1].item<double>(), -0.10178568214178085, 1e-7);
  EXPECT_EQ(src->get("state_dict.1.bias", torch::kBFloat16).scalar_type(), torch::kBFloat16);
}

TEST(Pickle, FixturePretrainedCkptBf16Cuda) {
  const auto path = shared_dir() / "fixtures" / "models" / "checkpoints" / "gill_opt" / "pretrained_ckpt.pth.tar";
  GILL_REQUIRE_PATH(path);
  auto src = io::open_tensors(path);
  EXPECT_EQ(src->names().size(), 137u);
  const auto& qi = src->info("state_dict.model.gen_text_hidden_fcs.0.query_embs");
  EXPECT_EQ(qi.dtype, io::DType::BF16);
  EXPECT_EQ(qi.shape, (std::vector<int64_t>{1, 77, 40}));
  auto ls = src->get("state_dict.model.logit_scale");
  EXPECT_EQ(ls.dim(), 0);
  EXPECT_NEAR(ls.item<float>(), 2.65625, 1e-6);
  auto q = src->get("state_dict.model.gen_text_hidden_fcs.0.query_embs", torch::kFloat32);
  EXPECT_NEAR(q.sum().item<double>(), 9.534662246704102, 1e-3);
}

TEST(Pickle, NestedValuesAndStrides) {
  io::TorchPickleFile f(io_data("nested.pth.tar"));
  EXPECT_EQ(f.names(), (std::vector<std::string>{"state_dict.a.t", "state_dict.a.weight", "state_dict.b",
                                                 "state_dict.h"}));
  auto w = f.get("state_dict.a.weight");
  auto t = f.get("state_dict.a.t");
  EXPECT_TRUE(torch::equal(w, torch::arange(12, torch::kFloat32).reshape({3, 4})));
  EXPECT_TRUE(torch::equal(t, w.t()));
  EXPECT_TRUE(torch::equal(f.get("state_dict.b"), torch::tensor({1, 2, 3}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(f.get("state_dict.h", torch::kFloat32), torch::tensor({0.5f, -2.0f})));
  std::map<std::string, std::string> vals;
  for (auto& [k, v] : f.values()) vals[k] = v->repr();
  EXPECT_EQ(vals["epoch"], "7");
  EXPECT_EQ(vals["best_acc1"], "0.25");
  EXPECT_EQ(vals["name"], "'tiny'");
  EXPECT_EQ(vals["flags"], "[2 items]");
  EXPECT_EQ(vals["none"], "None");
}

TEST(Pickle, RefusesOsSystemInTorchFile) {
  std::filesystem::remove("/tmp/gill_pwned_by_test");
  const auto p = io_data("evil_os_system.pth.tar");
  expect_error([&] { io::open_tensors(p); }, ErrorCode::kSecurity,
               p.string() + " (archive/data.pkl): refused to load global 'posix.system': not in the allow-list of "
                            "the restricted unpickler (at byte 22)");
  EXPECT_FALSE(std::filesystem::exists("/tmp/gill_pwned_by_test"));
}

TEST(Pickle, RefusesBuiltinsEvalStackGlobal) {
  // PROTO 4, SHORT_BINUNICODE 'builtins', SHORT_BINUNICODE 'eval', STACK_GLOBAL, ... REDUCE, STOP
  std::string p = bytes({0x80, 4, 0x8c, 8}) + "builtins" + bytes({0x8c, 4}) + "eval" + bytes({0x93, 0x8c, 1}) + "1" +
                  bytes({0x85, 'R', '.'});
  expect_error([&] { io::pickle::unpickle(p, "x.pkl"); }, ErrorCode::kSecurity,
               "x.pkl: refused to load global 'builtins.eval': not in the allow-list of the restricted unpickler "
               "(at byte 18)");
}

TEST(Pickle, MalformedInputs) {
  expect_error([&] { io::pickle::unpickle(bytes({0x80, 2, 0xff, '.'}), "x.pkl"); }, ErrorCode::kFormat,
               "x.pkl: unknown pickle opcode 0xff (at byte 2)");
  expect_error([&] { io::pickle::unpickle(bytes({0x80, 2, 'X', 10, 0, 0, 0, 'a'}), "x.pkl"); }, ErrorCode::kFormat,
               "x.pkl: pickle is truncated (at byte 2)");
  expect_error([&] { io::pickle::unpickle(bytes({0x80, 2, '}'}), "x.pkl"); }, ErrorCode::kFormat,
               "x.pkl: pickle ends without STOP (at byte 2)");
  expect_error([&] { io::pickle::unpickle(bytes({0x80, 2, 's', '.'}), "x.pkl"); }, ErrorCode::kFormat,
               "x.pkl: pickle stack underflow (at byte 2)");
  expect_error([&] { io::pickle::unpickle(bytes({0x80, 2, 'h', 3, '.'}), "x.pkl"); }, ErrorCode::kFormat,
               "x.pkl: memo entry 3 is not defined (at byte 2)");
  expect_error([&] { io::pickle::unpickle(bytes({'I', '1', '\n', '.'}), "x.pkl"); }, ErrorCode::kUnsupported,
               "x.pkl: pickle opcode 0x49 ('I') is not supported by the restricted unpickler (at byte 0)");
  // Deep nesting is bounded.
  std::string deep(5000, '(');
  expect_error([&] { io::pickle::unpickle(deep, "x.pkl"); }, ErrorCode::kFormat,
               "x.pkl: nesting deeper than 200 (at byte 200)");
}

TEST(Pickle, BadTorchFiles) {
  auto p = io_data("no_data_pkl.pth.tar");
  expect_error([&] { io::open_tensors(p); }, ErrorCode::kFormat,
               p.string() + ": no '<archive>/data.pkl' entry; not a torch.save file");
  p = io_data("bad_storage_size.pth.tar");
  expect_error([&] { io::open_tensors(p); }, ErrorCode::kFormat,
               p.string() + ": tensor 'w': storage 'archive/data/0' holds 28 bytes but its header says 8 x 4 bytes");
  p = io_data("legacy.pth");
  expect_error([&] { io::open_tensors(p); }, ErrorCode::kUnsupported,
               p.string() + ": legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with a "
                            "recent torch (torch.save(torch.load(f), f)) or convert to safetensors");
  p = io_data("compressed.pth.tar");
  expect_error([&] { io::open_tensors(p); }, ErrorCode::kUnsupported,
               p.string() + ": entry 'archive/data.pkl' is compressed (method 8); only stored entries (method 0) are "
                            "supported");
}

TEST(Pickle, TruncatedZip) {
  const auto dir = gill::test::temp_dir("pickle_trunc");
  const std::string full = io::read_file(io_data("fixture_decision_model.pth.tar"));
  const auto p = dir / "t.pth.tar";
  io::write_file_atomic(p, full.substr(0, full.size() - 200));
  expect_error([&] { io::open_tensors(p); }, ErrorCode::kFormat,
               p.string() + ": not a zip archive (no end of central directory; truncated?)");
  std::filesystem::remove_all(dir);
}

TEST(Pickle, ShardIndexMissingFile) {
  const auto dir = gill::test::temp_dir("pickle_shard");
  io::write_file_atomic(dir / "pytorch_model.bin.index.json",
                        R"({"metadata": {}, "weight_map": {"a.weight": "pytorch_model-00001-of-00002.bin"}})");
  const auto p = dir / "pytorch_model.bin.index.json";
  expect_error([&] { io::open_tensors(dir); }, ErrorCode::kNotFound,
               p.string() + ": shard 'pytorch_model-00001-of-00002.bin' (for tensor 'a.weight') is missing");
  std::filesystem::remove_all(dir);
}

TEST(Pickle, ShardIndexOverTorchShards) {
  const auto dir = gill::test::temp_dir("pickle_shard2");
  io::write_torch_state_dict(dir / "pytorch_model-00001-of-00002.bin", {{"a.weight", torch::ones({2, 2})}}, "");
  io::write_torch_state_dict(dir / "pytorch_model-00002-of-00002.bin", {{"b.bias", torch::zeros({3})}}, "");
  io::write_file_atomic(dir / "pytorch_model.bin.index.json",
                        R"({"weight_map": {"a.weight": "pytorch_model-00001-of-00002.bin",
                                           "b.bias": "pytorch_model-00002-of-00002.bin"}})");
  auto src = io::open_tensors(dir);
  EXPECT_EQ(src->names(), (std::vector<std::string>{"a.weight", "b.bias"}));
  EXPECT_TRUE(torch::equal(src->get("a.weight"), torch::ones({2, 2})));
  std::filesystem::remove_all(dir);
}

TEST(Pickle, WriterRoundTripAndPythonReadsIt) {
  const auto dir = gill::test::temp_dir("pickle_write");
  const auto p = dir / "w.pth.tar";
  auto w = torch::arange(6, torch::kFloat32).reshape({2, 3});
  auto b = torch::tensor({1.5, -2.0}).to(torch::kBFloat16);
  io::write_torch_state_dict(p, {{"1.weight", w}, {"1.bias", b}});
  auto src = io::open_tensors(p);
  EXPECT_EQ(src->names(), (std::vector<std::string>{"state_dict.1.bias", "state_dict.1.weight"}));
  EXPECT_TRUE(torch::equal(src->get("state_dict.1.weight"), w));
  EXPECT_TRUE(torch::equal(src->get("state_dict.1.bias"), b));
  if (!std::filesystem::exists("/usr/bin/python3") ||
      std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3-torch absent: torch.load check skipped";
  const std::string cmd = "/usr/bin/python3 -c \"import torch; d = torch.load('" + p.string() +
                          "'); sd = d['state_dict']; assert list(d) == ['state_dict']; "
                          "assert sd['1.weight'].tolist() == [[0, 1, 2], [3, 4, 5]]; "
                          "assert sd['1.bias'].dtype == torch.bfloat16 and sd['1.bias'].tolist() == [1.5, -2.0]\"";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::filesystem::remove_all(dir);
}
