// CLIP vision tower against the reference (transformers 4.30.2 CLIPVisionModel on the fixture's tiny CLIP):
// fp32 within 1e-4 relative; bf16 within the bound documented in docs/performance.md (CLIP section).
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "models/clip_vision.h"
#include "test_support.h"
#include "tiny/tiny_clip.h"
#include "util/error.h"

namespace gill::test {
namespace {

using models::CLIPVisionConfig;
using nlohmann::json;

std::filesystem::path fixture() { return data_dir() / "clip" / "fixture"; }

io::SafetensorsFile& clip_expected() {
  static io::SafetensorsFile f(fixture() / "expected_clip.safetensors");
  return f;
}

models::ModuleOptions opts(torch::Dtype dt) {
  models::ModuleOptions o;
  o.dtype = dt;
  return o;
}

TEST(ClipVision, ConfigFullAndVisionOnlyAgree) {
  const auto full = CLIPVisionConfig::from_file(fixture() / "clip-vit-tiny");
  const auto vis = CLIPVisionConfig::from_file(fixture() / "clip-vit-tiny-vision/config.json");
  for (const auto& c : {full, vis}) {
    EXPECT_EQ(c.hidden_size, 48);
    EXPECT_EQ(c.intermediate_size, 96);
    EXPECT_EQ(c.num_attention_heads, 4);
    EXPECT_EQ(c.num_hidden_layers, 2);
    EXPECT_EQ(c.patch_size, 8);
    EXPECT_EQ(c.image_size, 32);
    EXPECT_EQ(c.hidden_act, "quick_gelu");
    EXPECT_EQ(c.layer_norm_eps, 1e-5);
    EXPECT_EQ(c.num_positions(), 17);
  }
}

// transformers 4.30 CLIPConfig: vision_config_dict (old exports) replaces vision_config; missing keys take
// CLIPVisionConfig's defaults.
TEST(ClipVision, ConfigVisionConfigDictWins) {
  const auto c = CLIPVisionConfig::from_json(json::parse(
      R"({"vision_config": {"hidden_size": 64, "num_hidden_layers": 3},
          "vision_config_dict": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                                 "num_hidden_layers": 24, "patch_size": 14}})"));
  EXPECT_EQ(c.hidden_size, 1024);
  EXPECT_EQ(c.num_hidden_layers, 24);
  EXPECT_EQ(c.patch_size, 14);
  EXPECT_EQ(c.image_size, 224);
  EXPECT_EQ(c.num_positions(), 257);
}

TEST(ClipVision, ConfigErrors) {
  auto check = [](const char* text, ErrorCode code, const std::string& msg) {
    try {
      CLIPVisionConfig::from_json(json::parse(text), "c.json");
      ADD_FAILURE() << "no error for " << text;
    } catch (const gill::Error& e) {
      EXPECT_EQ(e.code(), code);
      EXPECT_EQ(std::string(e.what()), msg);
    }
  };
  check(R"({"hidden_size": 50, "num_attention_heads": 4})", ErrorCode::kFormat,
        "c.json: hidden_size 50 is not a multiple of num_attention_heads 4");
  check(R"({"image_size": 30, "patch_size": 8})", ErrorCode::kFormat,
        "c.json: image_size 30 is not a multiple of patch_size 8");
  check(R"({"vision_config": {"hidden_act": "relu"}})", ErrorCode::kUnsupported,
        "c.json: hidden_act \"relu\" is not supported (quick_gelu, gelu)");
  check(R"({"model_type": "opt"})", ErrorCode::kFormat,
        "c.json: model_type \"opt\" is not a CLIP vision config (expected \"clip\" or \"clip_vision_model\")");
  check(R"({"vision_config": {"hidden_size": "48"}})", ErrorCode::kFormat,
        "c.json vision_config: \"hidden_size\" must be an integer, got \"48\"");
}

void expect_matches_reference(const models::CLIPVisionOutput& out, double rtol) {
  auto& fx = clip_expected();
  EXPECT_LT(rel_error(out.last_hidden.to(torch::kFloat32), fx.get("vision.last_hidden_state")), rtol) << "last_hidden";
  EXPECT_LT(rel_error(out.pooled.to(torch::kFloat32), fx.get("vision.pooler_output")), rtol) << "pooled";
  ASSERT_EQ(out.hidden_states.size(), 3u);
  for (size_t i = 0; i < out.hidden_states.size(); ++i) {
    EXPECT_LT(rel_error(out.hidden_states[i].to(torch::kFloat32), fx.get("vision.hidden_states." + std::to_string(i))),
              rtol)
        << "hidden_states." << i;
  }
}

TEST(ClipVision, Fp32MatchesReferenceFromFullCLIPModel) {
  auto model = models::load_clip_vision(fixture() / "clip-vit-tiny", opts(torch::kFloat32));
  EXPECT_FALSE(model->gemm_fp32());
  const auto out = model->forward(clip_expected().get("pixel_values"), true);
  expect_matches_reference(out, 1e-4);
  EXPECT_TRUE(tensors_close(out.pooled, clip_expected().get("vision.pooler_output"), 1e-4, 1e-5, "pooled"));
  EXPECT_TRUE(tensors_close(out.last_hidden, clip_expected().get("vision.last_hidden_state"), 1e-4, 1e-5, "last_hidden"));
}

TEST(ClipVision, VisionOnlyCheckpointGivesTheSameOutputs) {
  auto full = models::load_clip_vision(fixture() / "clip-vit-tiny", opts(torch::kFloat32));
  auto vis = models::load_clip_vision(fixture() / "clip-vit-tiny-vision", opts(torch::kFloat32));
  const auto pv = clip_expected().get("pixel_values");
  EXPECT_TRUE(full->forward(pv).pooled.equal(vis->forward(pv).pooled));
  expect_matches_reference(vis->forward(pv, true), 1e-4);
}

// From the fixture's uint8 images through preprocessing to the pooled output.
TEST(ClipVision, EmbedImagesEndToEndWithDump) {
  auto model = models::load_clip_vision(fixture() / "clip-vit-tiny", opts(torch::kFloat32));
  const auto pp = models::CLIPImageProcessorConfig::from_file(fixture() / "clip-vit-tiny/preprocessor_config.json");
  std::vector<Image> images{models::image_from_hwc_uint8(clip_expected().get("inputs.clip_input_0.png.rgb_uint8")),
                            models::image_from_hwc_uint8(clip_expected().get("inputs.clip_input_1.png.rgb_uint8"))};
  io::TensorDump dump;
  const auto pooled = models::clip_embed_images(model, pp, images, &dump);
  EXPECT_TRUE(tensors_close(pooled, clip_expected().get("vision.pooler_output"), 1e-4, 1e-5, "pooled"));
  ASSERT_TRUE(dump.has("clip.pixel_values"));
  ASSERT_TRUE(dump.has("clip.pooled"));
  EXPECT_TRUE(dump.get("clip.pixel_values").equal(clip_expected().get("pixel_values")));
  EXPECT_EQ(dump.get("clip.pooled").sizes(), (std::vector<int64_t>{2, 48}));
}

// bf16 (the reference's dtype in GILL): storage and every op output in bf16, GEMMs accumulated in fp32.
// Bound: 2e-2 of the fp32 reference's max magnitude (measured ~5e-3 on this fixture; bf16 has 8 mantissa bits).
TEST(ClipVision, Bf16WithinDocumentedBound) {
  auto model = models::load_clip_vision(fixture() / "clip-vit-tiny", opts(torch::kBFloat16));
  EXPECT_TRUE(model->gemm_fp32());
  const auto out = model->forward(clip_expected().get("pixel_values"), true);
  EXPECT_EQ(out.pooled.scalar_type(), torch::kBFloat16);
  expect_matches_reference(out, 2e-2);
  // libtorch's own bf16 GEMMs (what a bf16 GPU run does) agree with the fp32-accumulating path to bf16 rounding.
  model->set_gemm_fp32(false);
  const auto native = model->forward(clip_expected().get("pixel_values"));
  EXPECT_LT(rel_error(native.pooled.to(torch::kFloat32), out.pooled.to(torch::kFloat32)), 2e-2);
}

// The bf16 compute policy: libtorch/oneDNN bf16 GEMMs (no fp32 upcast), the same bound as the fp32-GEMM path.
TEST(ClipVision, Bf16ComputePolicyWithinDocumentedBound) {
  auto o = opts(torch::kBFloat16);
  o.compute.bf16 = true;
  auto model = models::load_clip_vision(fixture() / "clip-vit-tiny", o);
  EXPECT_FALSE(model->gemm_fp32());
  const auto out = model->forward(clip_expected().get("pixel_values"), true);
  EXPECT_EQ(out.pooled.scalar_type(), torch::kBFloat16);
  expect_matches_reference(out, 2e-2);
}

TEST(ClipVision, WrongInputShapeIsAnError) {
  auto model = models::load_clip_vision(fixture() / "clip-vit-tiny-vision", opts(torch::kFloat32));
  try {
    model->forward(torch::zeros({1, 3, 224, 224}));
    ADD_FAILURE() << "no error";
  } catch (const gill::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kShapeMismatch);
    EXPECT_EQ(std::string(e.what()), "CLIP vision: pixel_values [1, 3, 224, 224] do not match [B, 3, 32, 32]");
  }
}

// Strict loading: a missing vision key and an unexpected key are errors naming the key and the file.
TEST(ClipVision, LoadIsStrict) {
  const auto dir = temp_dir("clip_strict");
  std::filesystem::copy_file(fixture() / "clip-vit-tiny-vision/config.json", dir / "config.json");
  io::SafetensorsFile src(fixture() / "clip-vit-tiny-vision/model.safetensors");
  auto write_without = [&](const std::string& drop, const std::string& add) {
    io::NamedTensors t;
    for (const auto& n : src.names())
      if (n != drop) t.emplace_back(n, src.get(n));
    if (!add.empty()) t.emplace_back(add, torch::zeros({2}));
    io::write_safetensors(dir / "model.safetensors", t);
  };
  auto load_error = [&]() -> std::string {
    try {
      models::load_clip_vision(dir, opts(torch::kFloat32));
    } catch (const gill::Error& e) {
      return e.what();
    }
    return "no error";
  };
  write_without("vision_model.post_layernorm.bias", "");
  const auto file = (dir / "model.safetensors").string();
  EXPECT_EQ(load_error().rfind("loading CLIP vision from " + dir.string() + ": " + file +
                                   ": missing tensor 'vision_model.post_layernorm.bias'",
                               0),
            0u)
      << load_error();
  write_without("vision_model.embeddings.position_ids", "");  // optional (newer exports drop it)
  EXPECT_EQ(load_error(), "no error");
  write_without("", "vision_model.encoder.layers.2.mlp.fc1.bias");
  EXPECT_NE(load_error().find("vision_model.encoder.layers.2.mlp.fc1.bias"), std::string::npos) << load_error();
  std::filesystem::remove_all(dir);
}

TEST(ClipVision, TinyKitWritesALoadableDeterministicModel) {
  const auto root = temp_dir("tiny_clip");
  const auto dir = tiny::write_tiny_clip(root / "a", 7);
  tiny::write_tiny_clip(root / "b", 7);
  EXPECT_EQ(dir, root / "a" / "openai" / "clip-vit-large-patch14");
  auto model = models::load_clip_vision(dir, opts(torch::kFloat32));
  const auto pp = models::CLIPImageProcessorConfig::from_file(dir / "preprocessor_config.json");
  EXPECT_EQ(pp.size, 32);
  std::vector<Image> images{models::image_from_hwc_uint8(clip_expected().get("inputs.clip_input_0.png.rgb_uint8"))};
  const auto pooled = models::clip_embed_images(model, pp, images);
  EXPECT_EQ(pooled.sizes(), (std::vector<int64_t>{1, 48}));
  EXPECT_TRUE(torch::isfinite(pooled).all().item<bool>());
  auto read = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(read(dir / "model.safetensors"), read(root / "b/openai/clip-vit-large-patch14/model.safetensors"));
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace gill::test
