// Tiny checkpoints/gill_opt: the GILL-specific files. Key names and layout: gill-spec §6 (models.py GILL,
// scripts/prune_model_ckpt.py); the fixture ../shared/fixtures/models/checkpoints/gill_opt has the same structure.
#include "io/npy.h"
#include "io/torch_writer.h"
#include "tiny/make_tiny.h"
#include "tiny/tiny.h"
#include "util/error.h"

namespace gill::tiny {

void write_tiny_gill_checkpoint(const std::filesystem::path& root, uint64_t seed) {
  const TinyDims& d = tiny_dims();
  const auto dir = root / "checkpoints" / "gill_opt";
  auto gen = tiny_generator(seed, "gill_checkpoint");
  const auto bf16 = torch::kBFloat16;

  nlohmann::json args = nlohmann::json::object();
  std::vector<int64_t> img_ids;
  for (int64_t k = 0; k < d.num_img_tokens; ++k) img_ids.push_back(d.lm_vocab_base + 1 + k);
  args["opt_version"] = "facebook/opt-tiny";
  args["freeze_lm"] = true;
  args["visual_encoder"] = "openai/clip-vit-large-patch14";
  args["freeze_vm"] = true;
  args["n_visual_tokens"] = d.n_visual_tokens;
  args["ret_emb_dim"] = d.ret_emb_dim;
  args["gen_emb_dim"] = d.gen_emb_dim;
  args["text_emb_layers"] = {-1};
  args["text_fc_mode"] = "gill_mapper";
  args["ret_text_fc_mode"] = "linear";
  args["num_tokens"] = d.num_img_tokens;
  args["num_clip_tokens"] = d.num_clip_tokens;
  args["share_ret_gen"] = true;
  args["norm_image_embed"] = "none";
  args["retrieval_token_idx"] = img_ids;
  args["gen_token_idx"] = img_ids;
  write_json(dir / "model_args.json", args);

  // pretrained_ckpt.pth.tar: sorted keys, bf16 (prune_model_ckpt.py output).
  io::NamedTensors sd;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double std = 0.02) {
    sd.emplace_back("model." + name, tiny_randn(gen, shape, std, bf16));
  };
  const int64_t W = d.mapper_width, F = 4 * d.mapper_width, H = d.lm_hidden;
  const std::string m = "gen_text_hidden_fcs.0.";
  add(m + "fc.bias", {W});
  add(m + "fc.weight", {W, H});
  add(m + "model.bias", {d.gen_emb_dim});
  add(m + "model.weight", {d.gen_emb_dim, W});
  add(m + "query_embs", {1, d.num_clip_tokens, W}, 1.0);
  auto layer = [&](const std::string& p, bool cross) {
    add(p + "linear1.bias", {F});
    add(p + "linear1.weight", {F, W});
    add(p + "linear2.bias", {W});
    add(p + "linear2.weight", {W, F});
    if (cross) {
      add(p + "multihead_attn.in_proj_bias", {3 * W});
      add(p + "multihead_attn.in_proj_weight", {3 * W, W});
      add(p + "multihead_attn.out_proj.bias", {W});
      add(p + "multihead_attn.out_proj.weight", {W, W});
    }
    for (const char* n : cross ? std::vector<const char*>{"norm1", "norm2", "norm3"}
                               : std::vector<const char*>{"norm1", "norm2"}) {
      sd.emplace_back("model." + p + n + ".bias", torch::zeros({W}, bf16));
      sd.emplace_back("model." + p + n + ".weight", torch::ones({W}, bf16));
    }
    add(p + "self_attn.in_proj_bias", {3 * W});
    add(p + "self_attn.in_proj_weight", {3 * W, W});
    add(p + "self_attn.out_proj.bias", {W});
    add(p + "self_attn.out_proj.weight", {W, W});
  };
  for (const char* part : {"decoder", "encoder"}) {
    const bool cross = std::string(part) == "decoder";
    for (int64_t l = 0; l < d.mapper_layers; ++l)
      layer(m + "tfm." + part + ".layers." + std::to_string(l) + ".", cross);
    sd.emplace_back("model." + m + "tfm." + part + ".norm.bias", torch::zeros({W}, bf16));
    sd.emplace_back("model." + m + "tfm." + part + ".norm.weight", torch::ones({W}, bf16));
  }
  add("input_embeddings.weight", {d.num_img_tokens, H});
  sd.emplace_back("model.logit_scale", torch::full({}, std::log(1 / 0.07), bf16));
  add("ret_text_hidden_fcs.0.model.bias", {d.ret_emb_dim});
  add("ret_text_hidden_fcs.0.model.weight", {d.ret_emb_dim, H});
  add("visual_embeddings.bias", {H * d.n_visual_tokens});
  add("visual_embeddings.weight", {H * d.n_visual_tokens, d.clip_vision_hidden});
  add("visual_fc.bias", {d.ret_emb_dim});
  add("visual_fc.weight", {d.ret_emb_dim, d.clip_vision_hidden});
  std::sort(sd.begin(), sd.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  io::write_torch_state_dict(dir / "pretrained_ckpt.pth.tar", sd);

  // decision_model.pth.tar: nn.Sequential(Dropout, Linear(hidden, 2)) state dict, fp32.
  io::write_torch_state_dict(dir / "decision_model.pth.tar",
                             {{"1.weight", tiny_randn(gen, {2, H}, 0.02)}, {"1.bias", tiny_randn(gen, {2}, 0.02)}});

  // Retrieval embeddings for the tiny image set (random vectors, one per fake URL).
  std::vector<std::string> paths;
  for (int64_t k = 0; k < d.retrieval_images; ++k) {
    char name[64];
    std::snprintf(name, sizeof name, "http://cc3m.invalid/retrieval_images/%06lld.png", static_cast<long long>(k));
    paths.emplace_back(name);
  }
  torch::Tensor e = tiny_randn(gen, {d.retrieval_images, d.ret_emb_dim}, 1.0);
  io::write_retrieval_embeddings(dir / "cc3m_embeddings_urls.npy", paths, e);
}

}  // namespace gill::tiny
