// safetensors reader and writer: good files, zero-copy views, and every bad-file message.
#include <fstream>

#include "io/safetensors.h"
#include "test_support.h"
#include "util/error.h"

using namespace gill;
using gill::test::temp_dir;

namespace {

std::string raw_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + header + data;
}

void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f << bytes;
}

std::string error_of(const std::filesystem::path& p) {
  try {
    io::SafetensorsFile f(p);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(Safetensors, RoundTripAllDtypes) {
  auto dir = temp_dir("st");
  io::NamedTensors ts = {
      {"f32", torch::randn({2, 3})},
      {"f16", torch::randn({4}).to(torch::kFloat16)},
      {"bf16", torch::randn({3, 1}).to(torch::kBFloat16)},
      {"f64", torch::randn({2}, torch::kFloat64)},
      {"i64", torch::arange(5, torch::kInt64)},
      {"i32", torch::arange(3, torch::kInt32)},
      {"i16", torch::arange(3, torch::kInt16)},
      {"i8", torch::arange(3, torch::kInt8)},
      {"u8", torch::arange(3, torch::kUInt8)},
      {"bool", torch::tensor({true, false})},
      {"scalar", torch::tensor(3.5f)},
  };
  io::write_safetensors(dir / "a.safetensors", ts, {{"format", "pt"}});
  io::SafetensorsFile f(dir / "a.safetensors");
  EXPECT_EQ(f.names().size(), ts.size());
  EXPECT_EQ(f.metadata().at("format"), "pt");
  for (auto& [name, t] : ts) {
    auto got = f.get(name);
    EXPECT_EQ(got.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(got, t)) << name;
  }
  EXPECT_EQ(io::dtype_name(f.info("bf16").dtype), std::string("BF16"));
  std::filesystem::remove_all(dir);
}

TEST(Safetensors, ViewIsZeroCopyAndConversionWorks) {
  auto dir = temp_dir("st");
  auto t = torch::randn({64, 32}).to(torch::kBFloat16);
  io::write_safetensors(dir / "a.safetensors", {{"w", t}});
  io::SafetensorsFile f(dir / "a.safetensors");
  auto view = f.get("w");
  EXPECT_EQ(view.data_ptr(), static_cast<const void*>(f.raw_data("w")));
  auto as32 = f.get("w", torch::kFloat32);
  EXPECT_EQ(as32.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(as32, t.to(torch::kFloat32)));
  // A view outlives the file object.
  torch::Tensor kept;
  {
    io::SafetensorsFile g(dir / "a.safetensors");
    kept = g.get("w");
  }
  EXPECT_TRUE(torch::equal(kept, t));
  std::filesystem::remove_all(dir);
}

TEST(Safetensors, BadFilesHaveExactMessages) {
  auto dir = temp_dir("stbad");
  auto p = dir / "bad.safetensors";
  const std::string ps = p.string();

  write_bytes(p, "abc");
  EXPECT_EQ(error_of(p), ps + ": truncated safetensors file (3 bytes, need at least 8)");

  write_bytes(p, raw_file("{}", "").substr(0, 8) + "{");  // claims 2 header bytes, has 1
  EXPECT_EQ(error_of(p), ps + ": safetensors header length 2 runs past the end of the file (9 bytes)");

  write_bytes(p, raw_file("{\"a\": [", ""));
  EXPECT_NE(error_of(p).find(ps + ": safetensors header is not valid JSON"), std::string::npos);

  write_bytes(p, raw_file(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')));
  EXPECT_EQ(error_of(p), ps + ": tensor 'a': unknown dtype 'F33'");

  write_bytes(p, raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", std::string(4, '\0')));
  EXPECT_EQ(error_of(p), ps + ": tensor 'a': byte span 4 does not match shape [2] x F32 = 8 bytes");

  write_bytes(p, raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(4, '\0')));
  EXPECT_EQ(error_of(p), ps + ": tensor 'a': data_offsets [0, 8] run past the end of the data (4 bytes)");

  write_bytes(p, raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                          std::string(12, '\0')));
  EXPECT_EQ(error_of(p), ps + ": tensors 'a' and 'b' overlap (data_offsets [0, 8] and [4, 12])");

  EXPECT_EQ(error_of(dir / "missing.safetensors"), (dir / "missing.safetensors").string() + ": no such file");
  std::filesystem::remove_all(dir);
}

TEST(Safetensors, MissingTensorNamesCloseMatches) {
  auto dir = temp_dir("st");
  io::write_safetensors(dir / "a.safetensors", {{"decoder.layers.0.fc1.weight", torch::zeros({1})}});
  io::SafetensorsFile f(dir / "a.safetensors");
  try {
    f.get("decoder.layers.0.fc2.weight");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("close matches: decoder.layers.0.fc1.weight"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}
