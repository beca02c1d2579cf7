// CLIPTextModel (SD text_encoder/) against transformers 4.30.2 on the tiny fixture (tests/data/sd, see
// SOURCE.md): last_hidden_state for 4 prompts padded like the pipeline (ids from the fixture), bad inputs.
#include <fstream>

#include "io/safetensors.h"
#include "models/clip_text.h"
#include "test_support.h"
#include "util/error.h"

using gill::test::error_of;

using namespace gill;
using gill::test::data_dir;
using gill::test::temp_dir;
using gill::test::tensors_close;

namespace {

std::filesystem::path te_dir() { return data_dir() / "sd" / "text_encoder"; }

io::SafetensorsFile& te_expected() {
  static io::SafetensorsFile f(data_dir() / "sd" / "expected" / "text_encoder.safetensors");
  return f;
}

}  // namespace

TEST(SDTextEncoder, ConfigFromFile) {
  auto c = models::CLIPTextConfig::from_file(te_dir() / "config.json");
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.vocab_size, 600);
  EXPECT_EQ(c.hidden_act, "quick_gelu");
}

TEST(SDTextEncoder, LastHiddenStateMatchesTransformers) {
  torch::InferenceMode guard;
  auto te = models::load_clip_text(te_dir(), {});
  auto ids = te_expected().get("input_ids");
  ASSERT_EQ(ids.sizes(), (std::vector<int64_t>{4, 77}));
  auto got = te(ids);
  auto want = te_expected().get("last_hidden_state");
  EXPECT_TRUE(tensors_close(got, want, 1e-4, 1e-5, "last_hidden_state"));
  EXPECT_LT(test::rel_error(got, want), 1e-5);
  // One prompt at a time gives the same rows (no cross-batch effects).
  for (int64_t b = 0; b < 4; ++b)
    EXPECT_TRUE(tensors_close(te(ids.narrow(0, b, 1)), want.narrow(0, b, 1), 1e-4, 1e-5, "row"));
}

TEST(SDTextEncoder, Bf16StorageStaysClose) {
  torch::InferenceMode guard;
  models::ModuleOptions o;
  o.dtype = torch::kBFloat16;
  auto te = models::load_clip_text(te_dir(), o);
  auto got = te(te_expected().get("input_ids"));
  EXPECT_EQ(got.scalar_type(), torch::kFloat32);
  EXPECT_LT(test::rel_error(got, te_expected().get("last_hidden_state")), 3e-2);
}

// bf16 compute policy (see module_unet.cpp): bound 5e-2 of the fp32 reference's max magnitude.
TEST(SDTextEncoder, Bf16ComputeWithinDocumentedBound) {
  torch::InferenceMode guard;
  models::ModuleOptions o;
  o.dtype = torch::kBFloat16;
  o.compute.bf16 = true;
  auto te = models::load_clip_text(te_dir(), o);
  auto got = te(te_expected().get("input_ids"));
  EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
  const double err = test::rel_error(got.to(torch::kFloat32), te_expected().get("last_hidden_state"));
  std::cout << "text encoder bf16 compute: rel error vs fp32 reference " << err << "\n";
  EXPECT_LT(err, 5e-2);
}

TEST(SDTextEncoder, MissingKeyAndDisagreement) {
  auto dir = temp_dir("te_bad");
  io::SafetensorsFile src(te_dir() / "model.safetensors");
  io::NamedTensors ts;
  for (const auto& n : src.names())
    if (n != "text_model.final_layer_norm.bias") ts.emplace_back(n, src.get(n).clone());
  io::write_safetensors(dir / "model.safetensors", ts);
  std::filesystem::copy_file(te_dir() / "config.json", dir / "config.json");
  const auto file = (dir / "model.safetensors").string();
  EXPECT_EQ(error_of([&] { models::load_clip_text(dir, {}); }),
            "loading CLIP text encoder from " + dir.string() + ": " + file +
                ": missing tensor 'text_model.final_layer_norm.bias' (close matches: "
                "text_model.final_layer_norm.weight)");
  {
    std::ifstream in(te_dir() / "config.json");
    auto cfg = nlohmann::json::parse(in);
    cfg["vocab_size"] = 49408;
    std::ofstream(dir / "config.json", std::ios::trunc) << cfg.dump(2);
  }
  EXPECT_EQ(error_of([&] { models::load_clip_text(dir, {}); }),
            "loading CLIP text encoder from " + dir.string() + ": " + file +
                ": tensor 'text_model.embeddings.token_embedding.weight' has shape [600, 32] but the model (from "
                "its config) expects [49408, 32]");
  std::filesystem::remove_all(dir);
}

TEST(SDTextEncoder, BadIds) {
  auto te = models::load_clip_text(te_dir(), {});
  EXPECT_EQ(error_of([&] { te(torch::zeros({1, 78}, torch::kLong)); }),
            "CLIP text encoder: ids must be [B, T] with 1 <= T <= 77, got [1, 78]");
  EXPECT_EQ(error_of([&] { te(torch::full({1, 77}, 600, torch::kLong)); }),
            "CLIP text encoder: token id 600 is outside the vocabulary [0, 600)");
}
