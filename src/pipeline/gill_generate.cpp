// Ref: kohjingyu/gill @4600b71 gill/models.py GILL.generate_for_images_and_texts (prompt assembly, per-block
// retrieval / decision / generation), GILLModel.get_visual_embs.
#include "pipeline/gill_generate.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "models/clip_image_processor.h"
#include "util/error.h"

namespace gill::pipeline {

namespace fs = std::filesystem;
using detail::str_cat;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string block_name(const std::string& base, int64_t k) { return str_cat(base, ".", k); }

void dump_block(io::TensorDump* dump, const std::string& base, int64_t k, const torch::Tensor& t) {
  if (!dump) return;
  dump->add(block_name(base, k), t);
  if (k == 0) dump->add(base, t);
}

}  // namespace

torch::Tensor assemble_prompt(GILLWeights& w, Backbones& b, const std::vector<PromptItem>& items,
                              bool bos_on_first_text, io::TensorDump* dump, std::vector<int64_t>* labels) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts, visual;
  bool first_text = bos_on_first_text;
  for (const auto& item : items) {
    if (item.is_image) {
      GILL_CHECK(!item.image.empty(), ErrorCode::kInvalidArgument, "empty image in the prompt",
                 item.image_path.empty() ? std::string() : " (" + item.image_path + ")");
      auto pooled = b.clip_pooled(item.image);                                     // [1, C]
      auto v = w.heads->visual_embs(pooled.to(w.compute_dtype));  // [1, 4, D]
      visual.push_back(v);
      parts.push_back(v);
      if (labels) labels->insert(labels->end(), v.size(1), kIgnoreLabel);
    } else {
      auto ids = b.tokenize(item.text, first_text);
      first_text = false;
      if (!ids.empty()) parts.push_back(b.lm->embed(ids));  // [1, n, D]
      if (labels) labels->insert(labels->end(), ids.begin(), ids.end());
    }
  }
  GILL_CHECK(!parts.empty(), ErrorCode::kInvalidArgument, "empty prompt: nothing to condition on");
  auto embeds = torch::cat(parts, 1);  // [1, L0, D]
  if (dump) {
    dump->add("gill.input_embeds", embeds);
    if (!visual.empty()) dump->add("gill.visual_embs", torch::cat(visual, 0));
  }
  return embeds;
}

BlockResult process_block(GILLWeights& w, Backbones& b, const ImgBlock& block, const TurnOptions& opt, int64_t k,
                          std::vector<int64_t>& seen, io::TensorDump* dump) {
  torch::NoGradGuard no_grad;
  BlockResult r;
  r.position = block.position;
  r.caption = block.caption;
  // The heads compute in w.compute_dtype (the engine's policy: bf16 under the bf16 policy, as the reference runs
  // them; fp32 arithmetic on bf16 storage under the fp32 policy).
  auto hidden = block.hidden.unsqueeze(0).to(w.compute_dtype);  // [1, 8, D]
  dump_block(dump, "gill.img_hidden", k, block.hidden);

  // Decision: the final hidden state at [IMG0], no projection (gill-spec §8.3). Class 0 generate, 1 retrieve.
  r.decision = "gen";
  if (w.decision) {
    auto logits = w.decision(hidden.select(1, 0));  // [1, 2]
    dump_block(dump, "gill.decision_logits", k, logits);
    auto p = torch::softmax(logits.to(torch::kFloat32), -1);
    r.p_gen = p[0][0].item<double>();
    r.p_ret = p[0][1].item<double>();
    r.decision = logits[0][1].item<double>() > logits[0][0].item<double>() ? "ret" : "gen";  // tie -> gen
    r.decision_from_head = true;
  }

  // Retrieval: linear map at [IMG0] (no input embeddings added), normalised, scored against the index.
  torch::Tensor ret_emb;
  if (!w.index.empty()) {
    auto t0 = std::chrono::steady_clock::now();
    ret_emb = w.heads->ret_fc(hidden).select(1, 0);  // [1, R]
    dump_block(dump, "gill.ret_emb", k, ret_emb);
    torch::Tensor scores;
    r.retrieved = retrieve_top_k(w.retrieval_matrix, ret_emb, opt.max_num_rets, seen, w.index, &scores);
    dump_block(dump, "gill.ret_scores", k, scores);
    if (dump) {
      std::vector<int64_t> top;
      for (const auto& h : r.retrieved) top.push_back(h.index);
      dump->add(block_name("gill.ret_topk", k), torch::tensor(top, torch::kInt64));
    }
    for (const auto& h : r.retrieved) seen.push_back(h.index);
    r.retrieval_s = seconds_since(t0);
  }

  if (opt.on_block) opt.on_block(k, r, false);

  // Generation: mapper on hidden + the [IMG] INPUT embeddings -> SD prompt embeddings; only for "gen" unless
  // always_generate (the reference runs SD for every block).
  if (b.generate_image && (r.decision == "gen" || opt.always_generate)) {
    auto t0 = std::chrono::steady_clock::now();
    auto img_embs = b.lm->embed(b.token_ids.img).to(hidden.scalar_type());  // [1, 8, D]
    auto gen_emb = w.heads->mapper(hidden, img_embs);                        // [1, 77, S]
    dump_block(dump, "gill.mapper_out", k, gen_emb[0]);
    r.seed = opt.seed + static_cast<uint64_t>(k);
    r.generated = b.generate_image(gen_emb, r.seed);
    if (ret_emb.defined() && b.clip_pooled && r.generated && !r.generated->empty()) {
      // Re-ranking score: plain cosine, no logit_scale (gill-spec §8.4).
      auto pooled = b.clip_pooled(models::pil_resize_bicubic(*r.generated, 224, 224));  // [1, C]
      auto v = w.heads->visual_retrieval(pooled.to(w.compute_dtype)).reshape({1, -1});
      dump_block(dump, "gill.gen_rank_emb", k, v);
      r.gen_rank_score = (l2_normalize(v.to(torch::kFloat32)) * l2_normalize(ret_emb.to(torch::kFloat32)).reshape({1, -1}))
                             .sum()
                             .item<double>();
      r.has_gen_rank_score = true;
    }
    r.generation_s = seconds_since(t0);
  }
  return r;
}

TurnResult run_turn(GILLWeights& w, Backbones& b, const std::vector<PromptItem>& items, const TurnOptions& opt,
                    io::TensorDump* dump) {
  torch::NoGradGuard no_grad;
  GILL_CHECK(!items.empty(), ErrorCode::kInvalidArgument, "empty prompt: give at least one text or image");
  GILL_CHECK(opt.max_num_rets > 0, ErrorCode::kInvalidArgument, "max_num_rets must be > 0 (got ", opt.max_num_rets,
             ")");
  TurnResult r;
  auto t0 = std::chrono::steady_clock::now();
  auto embeds = assemble_prompt(w, b, items, opt.bos_on_first_text, dump);
  r.prompt_tokens = embeds.size(1);
  r.prompt_s = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  Sampler sampler = opt.sampler ? opt.sampler : Sampler(greedy_pick);
  auto dec = decode(*b.lm, embeds, opt.decode, b.token_ids, sampler, dump);
  r.decode_s = seconds_since(t0);
  r.ids = dec.ids;
  if (dec.stop_reason == "max_positions")
    spdlog::warn("generation stopped after {} tokens: the LM's context of {} positions is full", dec.ids.size(),
                 b.lm->max_positions());

  auto seg = split_output(dec, b.token_ids, opt.max_num_rets, b.detokenize);
  r.text = b.detokenize(seg.ids);
  r.trailing_text = seg.trailing_text;
  if (seg.blocks.empty()) {
    r.caption_text = seg.text;
    return r;
  }
  std::vector<int64_t> seen;
  for (size_t k = 0; k < seg.blocks.size(); ++k) {
    r.blocks.push_back(process_block(w, b, seg.blocks[k], opt, static_cast<int64_t>(k), seen, dump));
    if (opt.on_block) opt.on_block(static_cast<int64_t>(k), r.blocks.back(), true);
    // The reference's caption string: HEAD joins the [IMG] names with no inner spaces.
    r.caption_text += seg.blocks[k].caption + " [IMG0][IMG1][IMG2][IMG3][IMG4][IMG5][IMG6][IMG7]";
  }
  return r;
}

}  // namespace gill::pipeline
