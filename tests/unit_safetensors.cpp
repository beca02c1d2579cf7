// safetensors reader and writer: good files, zero-copy views, and every bad-file message.
#include <fstream>

#include "io/atomic_file.h"
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
  EXPECT_EQ(error_of(p), ps + ": tensor 'b': data_offsets [4, 12] do not start where 'a' ends (8): tensors must "
                              "cover the data section with no overlap");

  write_bytes(p, raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})",
                          std::string(16, '\0')));
  EXPECT_EQ(error_of(p), ps + ": tensor 'b': data_offsets [12, 16] do not start where 'a' ends (8): tensors must "
                              "cover the data section with no gap");

  write_bytes(p, raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0')));
  EXPECT_EQ(error_of(p), ps + ": tensor 'a': data_offsets [4, 8] do not start at 0: tensors must cover the data "
                              "section with no gap");

  write_bytes(p, raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(6, '\0')));
  EXPECT_EQ(error_of(p), ps + ": the tensors cover 4 of the 6 data bytes: the file has bytes after its last tensor "
                              "(the data section must end at the file's end)");

  write_bytes(p, raw_file(std::string("{}") + std::string(6, '\0'), ""));
  EXPECT_EQ(error_of(p), ps + ": safetensors header is not valid JSON: it contains a NUL byte (pad the header with "
                              "spaces)");

  {
    std::string big(8, '\0');
    const uint64_t n = 100000001;
    for (int i = 0; i < 8; ++i) big[i] = static_cast<char>(n >> (8 * i));
    write_bytes(p, big + "{}");
    EXPECT_EQ(error_of(p), ps + ": safetensors header length 100000001 exceeds the limit of 100000000 bytes");
  }

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

// The accept/reject verdicts of the reference implementation's own test vectors (huggingface/safetensors,
// safetensors/src/tensor.rs tests of the 0.3 series that transformers 4.30 uses).
TEST(Safetensors, ReferenceVerdictsOnItsTestVectors) {
  auto dir = temp_dir("stref");
  auto p = dir / "v.safetensors";
  const std::string zeros16(16, '\0');
  const std::string t22 = R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})";
  auto accepts = [&](const std::string& bytes) {
    write_bytes(p, bytes);
    return error_of(p) == "no error";
  };
  // test_deserialization: accepted, one I32 [2,2] tensor of zeros.
  ASSERT_EQ(t22.size(), 60u);  // the vector's length prefix '<'
  EXPECT_TRUE(accepts(raw_file(t22, zeros16)));
  {
    io::SafetensorsFile f(p);
    EXPECT_EQ(f.names(), std::vector<std::string>{"test"});
    EXPECT_EQ(f.info("test").shape, (std::vector<int64_t>{2, 2}));
    EXPECT_TRUE(torch::equal(f.get("test"), torch::zeros({2, 2}, torch::kInt32)));
  }
  // test_empty_shapes_allowed: a scalar.
  EXPECT_TRUE(accepts(raw_file(R"({"test":{"dtype":"I32","shape":[],"data_offsets":[0,4]}})", std::string(4, '\0'))));
  // test_zero_sized_tensor: [2, 0] with no bytes.
  EXPECT_TRUE(accepts(raw_file(R"({"test":{"dtype":"I32","shape":[2,0],"data_offsets":[0, 0]}})", "")));
  // test_whitespace_padded_header: trailing JSON whitespace of every kind.
  EXPECT_TRUE(accepts(raw_file("{}\r \t\n", "")));
  // test_json_attack: ten tensors all claiming [0, 16].
  {
    std::string h = "{";
    for (int i = 0; i < 10; ++i)
      h += std::string(i ? "," : "") + "\"weight_" + std::to_string(i) +
           R"(":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";
    h += "}";
    EXPECT_FALSE(accepts(raw_file(h, zeros16)));
  }
  // test_metadata_incomplete_buffer: extra bytes after the data, and 2 bytes missing.
  EXPECT_FALSE(accepts(raw_file(t22, zeros16 + "extra_bogus_data_for_polyglot_file")));
  EXPECT_FALSE(accepts(raw_file(t22, std::string(14, '\0'))));
  // test_header_too_large: length prefix 0xffffff000000003c.
  {
    std::string b = raw_file(t22, zeros16);
    b[5] = b[6] = b[7] = '\xff';
    EXPECT_FALSE(accepts(b));
  }
  // test_header_too_small, test_invalid_header_length, test_invalid_header_non_utf8, test_invalid_header_not_json.
  EXPECT_FALSE(accepts(""));
  EXPECT_FALSE(accepts(raw_file(t22, zeros16).substr(0, 8)));
  EXPECT_FALSE(accepts(raw_file("\xff", "")));
  EXPECT_FALSE(accepts(raw_file("{", "")));
  // test_invalid_info: 4 bytes for an I32 [2, 2].
  EXPECT_FALSE(accepts(raw_file(R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0, 4]}})", "")));
  // test_validation_overflow: the element count and the byte count overflow 64 bits.
  EXPECT_FALSE(accepts(raw_file(R"({"test":{"dtype":"I32","shape":[2,18446744073709551614],"data_offsets":[0,16]}})",
                                zeros16)));
  EXPECT_FALSE(accepts(raw_file(R"({"test":{"dtype":"I32","shape":[2,9223372036854775807],"data_offsets":[0,16]}})",
                                zeros16)));
  // Null metadata is the reference's "no metadata".
  EXPECT_TRUE(accepts(raw_file(R"({"__metadata__":null})", "")));
  std::filesystem::remove_all(dir);
}

// Types without a libtorch 1.13 tensor type: the file opens (as in the reference); reading the tensor says why not.
TEST(Safetensors, DtypesLibtorchLacksOpenButDoNotRead) {
  auto dir = temp_dir("stu16");
  auto p = dir / "u.safetensors";
  write_bytes(p, raw_file(R"({"a":{"dtype":"U16","shape":[2],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[4,8]}})",
                          std::string(8, '\0')));
  io::SafetensorsFile f(p);
  EXPECT_EQ(io::dtype_name(f.info("a").dtype), std::string("U16"));
  EXPECT_EQ(io::dtype_name(f.info("b").dtype), std::string("F8_E4M3"));
  gill::test::expect_error([&] { f.get("a"); }, ErrorCode::kUnsupported,
                           p.string() + ": tensor 'a': dtype U16 has no libtorch 1.13 tensor type");
  std::filesystem::remove_all(dir);
}

// The writer lays files out as the reference's serialize(): its published byte vectors.
TEST(Safetensors, WriterBytesEqualTheReferenceSerializer) {
  auto dir = temp_dir("stw");
  auto p = dir / "w.safetensors";
  auto f32_bytes = [](const torch::Tensor& t) {
    return std::string(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel()) * 4);
  };
  const auto data = torch::arange(6, torch::kFloat32);
  // test_serialization: "attn.0" F32 [1,2,3] -> a 64-byte header, no padding.
  io::write_safetensors(p, {{"attn.0", data.reshape({1, 2, 3})}});
  EXPECT_EQ(io::read_file(p), raw_file(R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})", f32_bytes(data)));
  EXPECT_EQ(static_cast<uint8_t>(io::read_file(p)[0]), 64);
  // test_serialization_forced_alignement: "attn0" F32 [1,1,2,3] -> 65 bytes padded with 7 spaces to 72.
  io::write_safetensors(p, {{"attn0", data.reshape({1, 1, 2, 3})}});
  EXPECT_EQ(io::read_file(p), raw_file(std::string(R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})") +
                                   std::string(7, ' '),
                               f32_bytes(data)));
  // test_empty: no tensors -> "{}" + 6 spaces; with metadata {"framework": "pt"} -> 40 bytes.
  io::write_safetensors(p, {});
  EXPECT_EQ(io::read_file(p), raw_file("{}      ", ""));
  io::write_safetensors(p, {}, {{"framework", "pt"}});
  EXPECT_EQ(io::read_file(p), raw_file(R"({"__metadata__":{"framework":"pt"}}     )", ""));
  // Order: descending dtype rank (I64 before F32 before F16), then name; data in the same order.
  io::write_safetensors(p, {{"z", torch::ones({1}, torch::kFloat16)},
                            {"b", torch::ones({1}, torch::kFloat32)},
                            {"a", torch::ones({1}, torch::kFloat32)},
                            {"i", torch::ones({1}, torch::kInt64)}});
  const std::string got = io::read_file(p);
  const std::string hdr = got.substr(8, static_cast<uint8_t>(got[0]));
  EXPECT_EQ(hdr.substr(0, hdr.find_last_not_of(' ') + 1),
            R"({"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
            R"("a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
            R"("b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]},)"
            R"("z":{"dtype":"F16","shape":[1],"data_offsets":[16,18]}})");
  std::filesystem::remove_all(dir);
}

// A file the reference wrote (the fixture OPT, saved by transformers through safetensors' save_file), read and
// written again: byte for byte the same file.
TEST(Safetensors, RewritingAReferenceFileGivesTheSameBytes) {
  const auto src = gill::test::shared_dir() / "fixtures/models/facebook/opt-tiny/model.safetensors";
  GILL_REQUIRE_PATH(src);
  auto dir = temp_dir("strw");
  io::SafetensorsFile f(src);
  io::NamedTensors ts;
  for (const auto& n : f.names()) ts.emplace_back(n, f.get(n));
  io::write_safetensors(dir / "m.safetensors", ts, f.metadata());
  const std::string want = io::read_file(src), got = io::read_file(dir / "m.safetensors");
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "first difference at byte "
                           << std::mismatch(got.begin(), got.end(), want.begin(), want.end()).first - got.begin();
  std::filesystem::remove_all(dir);
}

// Residency::kMemory (`no mmap`): the same tensors as the mapped file, held in anonymous memory aligned for huge
// pages, alive after the file object and after the file is gone; a file that is a folder or missing is refused.
TEST(Safetensors, MemoryResidencyReadsTheSameTensors) {
  auto dir = temp_dir("st");
  io::NamedTensors ts = {{"w", torch::randn({300, 70}).to(torch::kBFloat16)}, {"b", torch::randn({7})}};
  io::write_safetensors(dir / "a.safetensors", ts);
  io::SafetensorsFile mapped(dir / "a.safetensors");
  torch::Tensor kept;
  {
    io::SafetensorsFile mem(dir / "a.safetensors", io::Residency::kMemory);
    for (auto& [name, t] : ts) EXPECT_TRUE(torch::equal(mem.get(name), mapped.get(name))) << name;
    // Zero-copy views of the in-memory copy, whose start is 2 MiB aligned (transparent huge pages).
    EXPECT_EQ(mem.get("w").data_ptr(), static_cast<const void*>(mem.raw_data("w")));
    auto f = io::MappedFile::open(dir / "a.safetensors", io::Residency::kMemory);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f->data()) % (uintptr_t(2) << 20), 0u);
    EXPECT_EQ(f->size(), std::filesystem::file_size(dir / "a.safetensors"));
    EXPECT_EQ(f->residency(), io::Residency::kMemory);
    kept = mem.get("w");
  }
  std::filesystem::remove(dir / "a.safetensors");
  EXPECT_TRUE(torch::equal(kept, ts[0].second));  // owns its bytes: no file behind it
  EXPECT_THROW(io::MappedFile::open(dir / "a.safetensors", io::Residency::kMemory), Error);
  EXPECT_THROW(io::MappedFile::open(dir, io::Residency::kMemory), Error);
  std::filesystem::remove_all(dir);
}
