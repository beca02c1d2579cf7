// Loading GILL's own folder (heads, [IMG] rows, decision model, retrieval index) and resolving a weights root.
#include "io/safetensors.h"
#include "pipeline/gill_weights.h"
#include "test_support.h"
#include "util/error.h"

using gill::test::error_of;

using namespace gill;
using gill::test::data_dir;
using gill::test::shared_dir;
namespace fs = std::filesystem;

namespace {

fs::path make_gill_dir(const std::string& tag, bool with_index = true) {
  auto dir = test::temp_dir(tag);
  const auto src = data_dir() / "gill";
  for (const char* f : {"model_args.json", "pretrained_ckpt.safetensors", "decision_model.safetensors"})
    fs::copy_file(src / f, dir / f, fs::copy_options::overwrite_existing);
  if (with_index) fs::copy_file(src / "cc3m_index.safetensors", dir / "index.safetensors");
  return dir;
}

// model_args.json as resolve_weight_paths reads it (load_gill_weights takes it read).
models::GILLArgs gill_weights_args(const fs::path& dir) {
  return models::GILLArgs::from_file(dir / "model_args.json");
}

}  // namespace

TEST(GillWeights, LoadsTheFolder) {
  torch::NoGradGuard ng;
  auto dir = make_gill_dir("gill_w_load");
  auto w = pipeline::load_gill_weights(dir, gill_weights_args(dir), {}, torch::kFloat32);
  EXPECT_EQ(w.img_rows.sizes(), (std::vector<int64_t>{8, 64}));
  ASSERT_TRUE(w.decision);
  EXPECT_EQ(w.index.size(), 6);
  ASSERT_TRUE(w.retrieval_matrix.defined());
  io::SafetensorsFile expected(data_dir() / "gill" / "expected_gill.safetensors");
  EXPECT_TRUE(test::tensors_close(w.retrieval_matrix, expected.get("emb_matrix"), 1e-5, 1e-6, "emb_matrix"));
  EXPECT_TRUE(test::tensors_close(w.img_rows, expected.get("input_embeddings.img_rows"), 0, 0, "img rows"));
  fs::remove_all(dir);
}

TEST(GillWeights, MissingCheckpointAndIndexWidth) {
  auto dir = make_gill_dir("gill_w_missing");
  fs::remove(dir / "pretrained_ckpt.safetensors");
  EXPECT_EQ(error_of([&] { pipeline::load_gill_weights(dir, gill_weights_args(dir), {}, torch::kFloat32); }),
            (dir / "pretrained_ckpt.pth.tar").string() + ": GILL checkpoint not found");
  fs::remove_all(dir);
  // No index: still loads, retrieval off.
  auto d2 = make_gill_dir("gill_w_noindex", false);
  auto w = pipeline::load_gill_weights(d2, gill_weights_args(d2), {}, torch::kFloat32);
  EXPECT_TRUE(w.index.empty());
  EXPECT_FALSE(w.retrieval_matrix.defined());
  fs::remove_all(d2);
}

TEST(GillWeights, ResolvesTheFixtureRoot) {
  const auto root = shared_dir() / "fixtures" / "models";
  GILL_REQUIRE_PATH(root);
  pipeline::WeightPaths in;
  in.root = root;
  auto r = pipeline::resolve_weight_paths(in, /*need_sd=*/false);
  EXPECT_EQ(r.lm, root / "facebook/opt-tiny");
  EXPECT_EQ(r.clip, root / "openai/clip-vit-tiny");
  EXPECT_EQ(r.gill, root / "checkpoints/gill_opt");
  EXPECT_TRUE(r.sd.empty());
  EXPECT_EQ(error_of([&] { pipeline::resolve_weight_paths(in, true); }),
            (root / "runwayml/stable-diffusion-v1-5").string() +
                ": Stable Diffusion folder not found (pass --sd DIR)");
  in.sd = root / "runwayml/stable-diffusion-tiny";
  EXPECT_EQ(pipeline::resolve_weight_paths(in).sd, in.sd);
  in.lm = "/nonexistent/lm";
  EXPECT_EQ(error_of([&] { pipeline::resolve_weight_paths(in); }), "/nonexistent/lm: LLM folder not found");
}

// bf16 storage: the heads follow the engine's compute policy. Under the fp32 policy (the default) they take fp32
// inputs and widen their bf16 weights (the retrieval matrix is fp32 too); under the bf16 policy everything is
// bf16, as the reference runs them.
TEST(GillWeights, HeadsFollowTheComputePolicyOnBf16Storage) {
  torch::NoGradGuard ng;
  auto dir = make_gill_dir("gill_w_policy");
  io::SafetensorsFile expected(data_dir() / "gill" / "expected_gill.safetensors");
  const auto h = expected.get("mapper.hidden_states", torch::kFloat32);
  const auto e = expected.get("mapper.img_token_embeddings", torch::kFloat32);
  const auto want = expected.get("mapper.gen_out", torch::kFloat32);
  const auto rel_err = [&](const torch::Tensor& got) {
    return (got.to(torch::kFloat32) - want).abs().max().item<double>() / want.abs().max().item<double>();
  };
  for (const bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16 policy" : "fp32 policy");
    util::ComputePolicy policy;
    policy.bf16 = bf16;
    auto w = pipeline::load_gill_weights(dir, gill_weights_args(dir), {}, torch::kBFloat16, torch::kCPU, policy);
    const auto dt = bf16 ? torch::kBFloat16 : torch::kFloat32;
    EXPECT_EQ(w.compute_dtype, dt);
    EXPECT_EQ(w.heads->logit_scale.scalar_type(), torch::kBFloat16);  // storage stays bf16
    EXPECT_EQ(w.retrieval_matrix.scalar_type(), dt);
    const auto out = w.heads->mapper(h.to(dt), e.to(dt));
    EXPECT_EQ(out.scalar_type(), dt);
    std::printf("mapper rel error, %s policy: %.3g\n", bf16 ? "bf16" : "fp32", rel_err(out));
    // fp32 arithmetic on the (bf16-exact) fixture weights is the fp32 reference to module tolerance (measured
    // 4.2e-7); bf16 arithmetic within bf16 rounding (measured 1.3e-2 on an AVX2-only AMD EPYC).
    EXPECT_LT(rel_err(out), bf16 ? 3e-2 : 1e-5);
    const auto logits = w.decision(h.select(1, 0).to(dt));
    EXPECT_EQ(logits.scalar_type(), dt);
  }
  fs::remove_all(dir);
}
