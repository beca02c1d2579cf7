// AutoencoderKL against diffusers 0.17.1 on the tiny fixture VAE (tests/data/sd, see SOURCE.md): raw decode,
// encoder mean/logvar, the legacy attention names, bf16 storage, bad inputs.
#include <fstream>

#include "io/safetensors.h"
#include "models/vae.h"
#include "test_support.h"
#include "util/error.h"

using gill::test::error_of;

using namespace gill;
using gill::test::data_dir;
using gill::test::temp_dir;
using gill::test::tensors_close;

namespace {

std::filesystem::path vae_dir() { return data_dir() / "sd" / "vae"; }

io::SafetensorsFile& vae_expected() {
  static io::SafetensorsFile f(data_dir() / "sd" / "expected" / "vae.safetensors");
  return f;
}

models::AutoencoderKL& fp32_vae() {
  static auto m = models::load_vae(vae_dir(), {});
  return m;
}

// The fixture VAE with its weights renamed by `rename` (keys mapped to "" are dropped).
std::filesystem::path renamed_copy(const std::string& tag, const std::function<std::string(std::string)>& rename) {
  auto dir = temp_dir(tag);
  std::filesystem::copy_file(vae_dir() / "config.json", dir / "config.json");
  io::SafetensorsFile src(vae_dir() / "diffusion_pytorch_model.safetensors");
  io::NamedTensors ts;
  for (const auto& n : src.names()) {
    auto m = rename(n);
    if (!m.empty()) ts.emplace_back(m, src.get(n).clone());
  }
  io::write_safetensors(dir / "diffusion_pytorch_model.safetensors", ts);
  return dir;
}

std::string legacy_name(std::string n) {
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
           {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}}) {
    auto p = n.find(from);
    if (p != std::string::npos) n.replace(p, from.size(), to);
  }
  return n;
}

}  // namespace

TEST(VAE, ConfigFromFile) {
  auto c = models::AutoencoderKLConfig::from_file(vae_dir() / "config.json");
  EXPECT_EQ(c.block_out_channels, (std::vector<int64_t>{8, 16, 16, 16}));
  EXPECT_EQ(c.norm_num_groups, 4);
  EXPECT_DOUBLE_EQ(c.scaling_factor, 0.18215);
}

TEST(VAE, DecodeMatchesDiffusers) {
  torch::InferenceMode guard;
  auto got = fp32_vae()->decode(vae_expected().get("decode.latents"));
  auto want = vae_expected().get("decode.sample");
  EXPECT_TRUE(tensors_close(got, want, 1e-4, 1e-5, "decode.sample"));
  EXPECT_LT(test::rel_error(got, want), 1e-5);
}

TEST(VAE, EncodeMatchesDiffusers) {
  torch::InferenceMode guard;
  auto [mean, logvar] = fp32_vae()->encode(vae_expected().get("encode.image"));
  EXPECT_TRUE(tensors_close(mean, vae_expected().get("encode.mean"), 1e-4, 1e-5, "encode.mean"));
  EXPECT_TRUE(tensors_close(logvar, vae_expected().get("encode.logvar"), 1e-4, 1e-5, "encode.logvar"));
}

TEST(VAE, LegacyAttentionNamesLoad) {
  torch::InferenceMode guard;
  auto dir = renamed_copy("vae_legacy", legacy_name);
  {
    io::SafetensorsFile f(dir / "diffusion_pytorch_model.safetensors");
    ASSERT_TRUE(f.contains("decoder.mid_block.attentions.0.proj_attn.weight"));
    ASSERT_FALSE(f.contains("decoder.mid_block.attentions.0.to_out.0.weight"));
  }
  auto vae = models::load_vae(dir, {});
  EXPECT_TRUE(torch::equal(vae->decode(vae_expected().get("decode.latents")),
                           fp32_vae()->decode(vae_expected().get("decode.latents"))));
  std::filesystem::remove_all(dir);
}

// The mid-block attention hands back its input's layout: its [B, HW, C] result viewed as [B, C, H, W] is
// channels-last, and carrying that on put every later layer of the fp32 (NCHW) path on slower kernels.
TEST(VAE, AttentionKeepsTheInputLayout) {
  torch::InferenceMode guard;
  auto& attn = fp32_vae()->decoder->mid_block->attention;
  const int64_t C = fp32_vae()->config.block_out_channels.back();
  auto x = torch::randn({1, C, 5, 6});
  auto y = attn(x);
  EXPECT_TRUE(y.is_contiguous());
  auto ycl = attn(x.contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(ycl.is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(tensors_close(ycl, y, 1e-5, 1e-6, "channels-last vs NCHW"));
  // and the decoder's output after it is NCHW all the way (fp32 policy)
  EXPECT_TRUE(fp32_vae()->decoder->mid_block(x).is_contiguous());
}

TEST(VAE, Bf16StorageStaysClose) {
  torch::InferenceMode guard;
  models::ModuleOptions o;
  o.dtype = torch::kBFloat16;
  auto vae = models::load_vae(vae_dir(), o);
  auto got = vae->decode(vae_expected().get("decode.latents"));
  EXPECT_EQ(got.scalar_type(), torch::kFloat32);
  EXPECT_LT(test::rel_error(got, vae_expected().get("decode.sample")), 3e-2);
}

// bf16 compute policy (see module_unet.cpp): bound 5e-2 of the fp32 reference's max magnitude.
TEST(VAE, Bf16ComputeWithinDocumentedBound) {
  torch::InferenceMode guard;
  models::ModuleOptions o;
  o.dtype = torch::kBFloat16;
  o.compute.bf16 = true;
  auto vae = models::load_vae(vae_dir(), o);
  auto got = vae->decode(vae_expected().get("decode.latents"));
  EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
  const double err = test::rel_error(got.to(torch::kFloat32), vae_expected().get("decode.sample"));
  std::cout << "VAE bf16 compute: rel error vs fp32 reference " << err << "\n";
  EXPECT_LT(err, 5e-2);
}

TEST(VAE, MissingKey) {
  auto dir = renamed_copy("vae_missing", [](std::string n) {
    return n == "encoder.mid_block.attentions.0.to_k.bias" ? std::string() : n;
  });
  EXPECT_EQ(error_of([&] { models::load_vae(dir, {}); }),
            "loading VAE from " + dir.string() + ": " + (dir / "diffusion_pytorch_model.safetensors").string() +
                ": missing tensor 'encoder.mid_block.attentions.0.to_k.bias' (close matches: "
                "encoder.mid_block.attentions.0.to_q.bias, encoder.mid_block.attentions.0.to_v.bias, "
                "decoder.mid_block.attentions.0.to_k.bias)");
  std::filesystem::remove_all(dir);
}

TEST(VAE, ConfigWeightsDisagreement) {
  auto dir = renamed_copy("vae_cfg", [](std::string n) { return n; });
  {
    std::ifstream in(vae_dir() / "config.json");
    auto cfg = nlohmann::json::parse(in);
    cfg["latent_channels"] = 8;
    std::ofstream(dir / "config.json", std::ios::trunc) << cfg.dump(2);
  }
  EXPECT_EQ(error_of([&] { models::load_vae(dir, {}); }),
            "loading VAE from " + dir.string() + ": " + (dir / "diffusion_pytorch_model.safetensors").string() +
                ": tensor 'encoder.conv_out.weight' has shape [8, 16, 3, 3] but the model (from its config) "
                "expects [16, 16, 3, 3]");
  std::filesystem::remove_all(dir);
}

TEST(VAE, BadInputShapes) {
  EXPECT_EQ(error_of([&] { fp32_vae()->decode(torch::zeros({1, 3, 8, 8})); }),
            "VAE decode: latents must be [B, 4, h, w], got [1, 3, 8, 8]");
  EXPECT_EQ(error_of([&] { fp32_vae()->encode(torch::zeros({1, 4, 8, 8})); }),
            "VAE encode: image must be [B, 3, H, W], got [1, 4, 8, 8]");
}
