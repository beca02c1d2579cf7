// UNet2DConditionModel against diffusers 0.17.1 on the tiny fixture UNet (tests/data/sd, see SOURCE.md):
// noise predictions at t=981, t=[1,500], t=0; the time embedding's spec values; bf16 storage; bad inputs.
#include <fstream>

#include "io/safetensors.h"
#include "models/unet_2d.h"
#include "test_support.h"
#include "util/error.h"

using gill::test::error_of;

using namespace gill;
using gill::test::data_dir;
using gill::test::temp_dir;
using gill::test::tensors_close;

namespace {

std::filesystem::path unet_dir() { return data_dir() / "sd" / "unet"; }

io::SafetensorsFile& unet_expected() {
  static io::SafetensorsFile f(data_dir() / "sd" / "expected" / "unet.safetensors");
  return f;
}

models::UNet2DConditionModel& fp32_unet() {
  static auto m = models::load_unet(unet_dir(), {});
  return m;
}

// A copy of the fixture UNet folder in a temp dir, with the config edited and/or keys dropped.
std::filesystem::path edited_copy(const std::string& tag, const std::function<void(nlohmann::json&)>& edit_cfg,
                                  const std::string& drop_key = "") {
  auto dir = temp_dir(tag);
  std::ifstream in(unet_dir() / "config.json");
  auto cfg = nlohmann::json::parse(in);
  if (edit_cfg) edit_cfg(cfg);
  std::ofstream(dir / "config.json") << cfg.dump(2);
  io::SafetensorsFile src(unet_dir() / "diffusion_pytorch_model.safetensors");
  io::NamedTensors ts;
  for (const auto& n : src.names())
    if (n != drop_key) ts.emplace_back(n, src.get(n).clone());
  io::write_safetensors(dir / "diffusion_pytorch_model.safetensors", ts);
  return dir;
}

}  // namespace

TEST(UNet, ConfigFromFile) {
  auto c = models::UNet2DConditionConfig::from_file(unet_dir() / "config.json");
  EXPECT_EQ(c.block_out_channels, (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(c.attention_head_dim, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(c.cross_attention_dim, 32);
  EXPECT_EQ(c.norm_num_groups, 8);
  EXPECT_EQ(c.down_block_types[0], "CrossAttnDownBlock2D");
  EXPECT_EQ(c.up_block_types[0], "UpBlock2D");
}

TEST(UNet, NoisePredictionMatchesDiffusers) {
  torch::InferenceMode guard;
  auto& unet = fp32_unet();
  auto sample = unet_expected().get("sample"), ctx = unet_expected().get("encoder_hidden_states");
  for (const char* c : {"t981_scalar", "t_1_500", "t0_scalar"}) {
    auto t = unet_expected().get(std::string(c) + ".timestep");
    auto want = unet_expected().get(std::string(c) + ".noise_pred");
    auto got = unet(sample, t, ctx);
    EXPECT_TRUE(tensors_close(got, want, 1e-4, 1e-5, c));
    EXPECT_LT(test::rel_error(got, want), 1e-5) << c;
  }
}

TEST(UNet, TimestepTensorShapesAndDtypes) {
  torch::InferenceMode guard;
  auto& unet = fp32_unet();
  auto sample = unet_expected().get("sample"), ctx = unet_expected().get("encoder_hidden_states");
  auto want = unet_expected().get("t981_scalar.noise_pred");
  // [B] int64, float64 scalar (Euler passes float64) and [1] all mean the same.
  EXPECT_TRUE(tensors_close(unet(sample, torch::tensor({981, 981}), ctx), want, 1e-4, 1e-5, "[B] int64"));
  EXPECT_TRUE(tensors_close(unet(sample, torch::tensor(981.0, torch::kFloat64), ctx), want, 1e-4, 1e-5, "f64"));
  EXPECT_TRUE(tensors_close(unet(sample, torch::tensor({981}), ctx), want, 1e-4, 1e-5, "[1]"));
}

TEST(UNet, TimeEmbeddingSpecValues) {
  // sd-spec §3.2: t = 981, 320 channels, [cos | sin].
  models::UNet2DConditionConfig c;
  c.block_out_channels = {320};
  c.down_block_types = {"DownBlock2D"};
  c.up_block_types = {"UpBlock2D"};
  c.attention_head_dim = {8};
  models::UNet2DConditionModel m(c, models::ModuleOptions{});
  auto e = m->time_proj(torch::tensor({981}));
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{1, 320}));
  const std::vector<std::pair<int, double>> want = {{0, 0.67995721},   {1, -0.79842919}, {2, 0.57806414},
                                                    {160, 0.73325181}, {161, 0.60208869}, {162, 0.81599128},
                                                    {319, 0.10372588}};
  for (auto [i, v] : want) EXPECT_NEAR(e[0][i].item<double>(), v, 2e-7) << i;
}

TEST(UNet, Bf16StorageStaysClose) {
  torch::InferenceMode guard;
  models::ModuleOptions o;
  o.dtype = torch::kBFloat16;
  auto unet = models::load_unet(unet_dir(), o);
  EXPECT_EQ(unet->conv_in->weight.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(unet->compute_dtype(), torch::kFloat32);
  auto got = unet(unet_expected().get("sample"), unet_expected().get("t981_scalar.timestep"),
                  unet_expected().get("encoder_hidden_states"));
  EXPECT_EQ(got.scalar_type(), torch::kFloat32);
  // bf16 weights (8-bit mantissa), fp32 arithmetic: documented tolerance 3e-2 relative to the output's max.
  EXPECT_LT(test::rel_error(got, unet_expected().get("t981_scalar.noise_pred")), 3e-2);
}

// The bf16 compute policy (util/compute_policy.h, forced on: it runs on every CPU, natively or emulated): weights
// and activations bf16 end to end, GEMMs/convs accumulate in fp32 inside oneDNN, GroupNorm/softmax take bf16.
// Bound (docs/performance.md, "Numerics"): 5e-2 of the fp32 reference's max magnitude.
TEST(UNet, Bf16ComputeWithinDocumentedBound) {
  torch::InferenceMode guard;
  models::ModuleOptions o;
  o.dtype = torch::kBFloat16;
  o.compute.bf16 = true;
  auto unet = models::load_unet(unet_dir(), o);
  EXPECT_EQ(unet->compute_dtype(), torch::kBFloat16);
  auto got = unet(unet_expected().get("sample"), unet_expected().get("t981_scalar.timestep"),
                  unet_expected().get("encoder_hidden_states"));
  EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
  const double err = test::rel_error(got.to(torch::kFloat32), unet_expected().get("t981_scalar.noise_pred"));
  std::cout << "UNet bf16 compute: rel error vs fp32 reference " << err << "\n";
  EXPECT_LT(err, 5e-2);
}

TEST(UNet, NonDivisibleLatentSizeUsesSkipSizes) {
  torch::InferenceMode guard;
  auto out = fp32_unet()(torch::randn({1, 4, 7, 9}), torch::tensor(10), torch::randn({1, 77, 32}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 4, 7, 9}));
}

TEST(UNet, ConfigWeightsDisagreement) {
  auto dir = edited_copy("unet_cfg", [](nlohmann::json& j) { j["block_out_channels"] = {16, 48}; });
  EXPECT_EQ(error_of([&] { models::load_unet(dir, {}); }),
            "loading UNet from " + dir.string() + ": " + (dir / "diffusion_pytorch_model.safetensors").string() +
                ": tensor 'down_blocks.1.resnets.0.conv1.weight' has shape [32, 16, 3, 3] but the model (from "
                "its config) expects [48, 16, 3, 3]");
  std::filesystem::remove_all(dir);
}

TEST(UNet, MissingKey) {
  auto dir = edited_copy("unet_missing", nullptr, "mid_block.attentions.0.proj_out.bias");
  EXPECT_EQ(error_of([&] { models::load_unet(dir, {}); }),
            "loading UNet from " + dir.string() + ": " + (dir / "diffusion_pytorch_model.safetensors").string() +
                ": missing tensor 'mid_block.attentions.0.proj_out.bias' (close matches: "
                "mid_block.attentions.0.proj_in.bias, mid_block.attentions.0.proj_out.weight, "
                "up_blocks.1.attentions.0.proj_out.bias)");
  std::filesystem::remove_all(dir);
}

TEST(UNet, BadConfigValues) {
  auto dir = edited_copy("unet_badcfg", [](nlohmann::json& j) { j["class_embed_type"] = "timestep"; });
  EXPECT_EQ(error_of([&] { models::load_unet(dir, {}); }),
            "loading UNet from " + dir.string() + ": " + (dir / "config.json").string() +
                ": class_embed_type = \"timestep\" is not supported (SD 1.x leaves it null)");
  std::filesystem::remove_all(dir);
  EXPECT_EQ(error_of([&] { models::load_unet("/nonexistent/unet", {}); }),
            "loading UNet from /nonexistent/unet: config file not found: /nonexistent/unet/config.json");
}

TEST(UNet, BadInputShapes) {
  auto& unet = fp32_unet();
  EXPECT_EQ(error_of([&] { unet(torch::zeros({1, 3, 8, 8}), torch::tensor(1), torch::zeros({1, 77, 32})); }),
            "UNet: sample must be [B, 4, h, w], got [1, 3, 8, 8]");
  EXPECT_EQ(error_of([&] { unet(torch::zeros({1, 4, 8, 8}), torch::tensor(1), torch::zeros({1, 77, 768})); }),
            "UNet: encoder_hidden_states must be [1, L, 32], got [1, 77, 768]");
}
