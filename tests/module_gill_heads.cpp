// GILL heads (mapper, retrieval map, decision head, retrieval matrix) against the reference's own GILL on the
// fixture checkpoint (fp32). Data: tests/data/gill (see SOURCE.md).
#include <fstream>

#include "io/safetensors.h"
#include "io/tensor_source.h"
#include "models/decision_head.h"
#include "models/gill_heads.h"
#include "pipeline/retrieval.h"
#include "test_support.h"
#include "util/error.h"

using namespace gill;
using gill::test::data_dir;
using gill::test::tensors_close;

namespace {

std::filesystem::path gdir() { return data_dir() / "gill"; }

struct Loaded {
  models::GILLArgs args;
  models::GILLDims dims;
  models::GILLHeads heads{nullptr};
  models::DecisionHead decision{nullptr};
};

Loaded load_heads() {
  Loaded l;
  l.args = models::GILLArgs::from_file(gdir() / "model_args.json");
  auto src = io::open_tensors(gdir() / "pretrained_ckpt.safetensors");
  const auto prefix = models::find_gill_prefix(*src);
  l.dims = models::GILLDims::from_checkpoint(*src, prefix, l.args);
  models::ModuleOptions opt;
  l.heads = models::GILLHeads(l.dims, opt);
  io::load_module(*l.heads, *src, models::gill_heads_load_spec(), torch::kFloat32);
  auto dsrc = io::open_tensors(gdir() / "decision_model.safetensors");
  l.decision = models::DecisionHead(l.dims.lm_hidden, opt);
  io::load_module(*l.decision, *dsrc, models::decision_load_spec(), torch::kFloat32);
  return l;
}

io::SafetensorsFile& heads_expected() {
  static io::SafetensorsFile f(gdir() / "expected_gill.safetensors");
  return f;
}
torch::Tensor E(const std::string& name) { return heads_expected().get(name, torch::kFloat32); }

}  // namespace

TEST(GillHeads, DimsComeFromTheCheckpoint) {
  auto l = load_heads();
  EXPECT_EQ(l.dims.lm_hidden, 64);
  EXPECT_EQ(l.dims.clip_hidden, 48);
  EXPECT_EQ(l.dims.mapper_dim, 40);  // the reference's literal 512, shrunk (oracle_gill_constants.json)
  EXPECT_EQ(l.dims.mapper_ffn, 160);
  EXPECT_EQ(l.dims.gen_emb_dim, 32);
  EXPECT_EQ(l.dims.ret_emb_dim, 24);
  EXPECT_EQ(l.dims.n_queries, 77);
  EXPECT_EQ(l.dims.n_encoder_layers, 4);
  EXPECT_EQ(l.dims.n_decoder_layers, 4);
  EXPECT_EQ(l.dims.n_visual_tokens, 4);
  EXPECT_EQ(l.dims.num_tokens, 8);
  EXPECT_EQ(l.args.opt_version, "facebook/opt-tiny");
  EXPECT_EQ(l.args.retrieval_token_idx, (std::vector<int64_t>{410, 411, 412, 413, 414, 415, 416, 417}));
}

TEST(GillHeads, MapperMatchesReference) {
  torch::NoGradGuard ng;
  auto l = load_heads();
  auto h = E("mapper.hidden_states");
  auto out = l.heads->mapper(h, E("mapper.img_token_embeddings"));
  EXPECT_TRUE(tensors_close(out, E("mapper.gen_out"), 1e-4, 1e-5, "mapper.gen_out"));
  auto out2 = l.heads->mapper(h, E("mapper.random_input_embs"));
  EXPECT_TRUE(tensors_close(out2, E("mapper.gen_out_random_input_embs"), 1e-4, 1e-5, "mapper.gen_out_random"));
  for (const char* run : {"forced_img", "text_prompt_forced_img"}) {
    const std::string p = std::string("generate.") + run + ".";
    auto g = l.heads->mapper(E(p + "gen_fc_in_hidden"), E(p + "gen_fc_in_prefix_embs"));
    EXPECT_TRUE(tensors_close(g, E(p + "gen_emb"), 1e-4, 1e-5, p + "gen_emb"));
  }
}

TEST(GillHeads, RetrievalMapUsesNoInputEmbeddings) {
  torch::NoGradGuard ng;
  auto l = load_heads();
  auto out = l.heads->ret_fc(E("mapper.hidden_states"));
  EXPECT_TRUE(tensors_close(out, E("mapper.ret_out"), 1e-4, 1e-6, "mapper.ret_out"));
  for (const char* run : {"forced_img", "text_prompt_forced_img"}) {
    const std::string p = std::string("generate.") + run + ".";
    EXPECT_TRUE(tensors_close(l.heads->ret_fc(E(p + "raw_emb")), E(p + "ret_fc_out"), 1e-4, 1e-6, p + "ret_fc_out"));
  }
}

TEST(GillHeads, DecisionHeadMatchesReference) {
  torch::NoGradGuard ng;
  auto l = load_heads();
  EXPECT_TRUE(tensors_close(l.decision(E("decision.input")), E("decision.logits"), 1e-4, 1e-6, "decision.logits"));
  for (const char* run : {"forced_img", "text_prompt_forced_img"}) {
    const std::string p = std::string("generate.") + run + ".";
    // The decision input is the final hidden state at [IMG0], with no projection.
    EXPECT_TRUE(tensors_close(E(p + "raw_emb").select(1, 0), E(p + "decision_input"), 0, 0, p + "decision_input"));
    auto logits = l.decision(E(p + "decision_input"));
    EXPECT_TRUE(tensors_close(logits, E(p + "decision_logits"), 1e-4, 1e-6, p + "decision_logits"));
    EXPECT_EQ(logits.argmax(-1).item<int64_t>(), 1);  // both runs decide "ret" (summary.json)
  }
}

TEST(GillHeads, ImgRowsAndLogitScale) {
  auto src = io::open_tensors(gdir() / "pretrained_ckpt.safetensors");
  auto rows = src->get("model.input_embeddings.weight", torch::kFloat32);
  EXPECT_TRUE(tensors_close(rows, E("input_embeddings.img_rows"), 0, 0, "img rows"));
  auto l = load_heads();
  EXPECT_TRUE(tensors_close(l.heads->logit_scale, E("logit_scale"), 0, 0, "logit_scale"));
}

TEST(GillHeads, RetrievalMatrixAndScores) {
  torch::NoGradGuard ng;
  auto l = load_heads();
  auto index = pipeline::read_index(gdir() / "cc3m_index.safetensors");
  ASSERT_EQ(index.size(), 6);
  EXPECT_EQ(index.paths[5], "http://cc3m.invalid/retrieval_images/000005.png");
  auto m = pipeline::retrieval_matrix(index.embeddings, l.heads->logit_scale, torch::kFloat32);
  EXPECT_TRUE(tensors_close(m, E("emb_matrix"), 1e-5, 1e-6, "emb_matrix"));
  struct Case {
    const char* run;
    std::vector<int64_t> order;
  };
  for (const Case& c : {Case{"forced_img", {5, 1, 2}}, Case{"text_prompt_forced_img", {1, 5, 2}}}) {
    const std::string p = std::string("generate.") + c.run + ".";
    torch::Tensor scores;
    auto hits = pipeline::retrieve_top_k(m, E(p + "ret_fc_out"), 3, {}, index, &scores);
    EXPECT_TRUE(tensors_close(scores, E(p + "retrieval_scores").reshape({-1}), 1e-4, 1e-5, p + "retrieval_scores"));
    ASSERT_EQ(hits.size(), 3u);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(hits[i].index, c.order[i]) << c.run << " rank " << i;
  }
  // Seen images are pushed down by 1000.
  auto hits = pipeline::retrieve_top_k(m, E("generate.forced_img.ret_fc_out"), 2, {5}, index);
  EXPECT_EQ(hits[0].index, 1);
  EXPECT_EQ(hits[1].index, 2);
}

TEST(GillHeads, IndexRoundTrip) {
  auto index = pipeline::read_index(gdir() / "cc3m_index.safetensors");
  auto dir = test::temp_dir("gill_index_rt");
  pipeline::write_index(dir, index);
  auto back = pipeline::read_index(dir);
  EXPECT_EQ(back.paths, index.paths);
  EXPECT_TRUE(torch::equal(back.embeddings, index.embeddings));
  std::filesystem::remove_all(dir);
}

TEST(GillHeads, ModelArgsDisagreeingWithCheckpoint) {
  auto args = models::GILLArgs::from_file(gdir() / "model_args.json");
  args.gen_emb_dim = 768;
  auto src = io::open_tensors(gdir() / "pretrained_ckpt.safetensors");
  try {
    models::GILLDims::from_checkpoint(*src, "model.", args);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kShapeMismatch);
    EXPECT_EQ(std::string(e.what()),
              "model_args.json says gen_emb_dim = 768 but " + src->description() +
                  " has 32 (tensor 'model.gen_text_hidden_fcs.0.model.weight' [32, 40])");
  }
}

TEST(GillHeads, ModelArgsMissingField) {
  auto j = models::GILLArgs::from_file(gdir() / "model_args.json").to_json();
  j.erase("num_clip_tokens");
  try {
    models::GILLArgs::from_json(j, "model_args.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFormat);
    EXPECT_EQ(std::string(e.what()), "model_args.json: missing field 'num_clip_tokens'");
  }
}

TEST(GillHeads, MissingMapperKeyIsAnError) {
  auto src = io::open_tensors(gdir() / "pretrained_ckpt.safetensors");
  io::NamedTensors kept;
  for (const auto& n : src->names())
    if (n != "model.gen_text_hidden_fcs.0.tfm.decoder.norm.weight") kept.emplace_back(n, src->get(n));
  auto dir = test::temp_dir("gill_missing_key");
  io::write_safetensors(dir / "ckpt.safetensors", kept);
  auto s2 = io::open_tensors(dir / "ckpt.safetensors");
  auto args = models::GILLArgs::from_file(gdir() / "model_args.json");
  auto dims = models::GILLDims::from_checkpoint(*s2, "model.", args);
  models::GILLHeads heads(dims, models::ModuleOptions{});
  try {
    io::load_module(*heads, *s2, models::gill_heads_load_spec(), torch::kFloat32);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("missing tensor 'model.gen_text_hidden_fcs.0.tfm.decoder.norm.weight'"),
              std::string::npos)
        << e.what();
  }
  std::filesystem::remove_all(dir);
}
