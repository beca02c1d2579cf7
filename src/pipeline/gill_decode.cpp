// Ref: kohjingyu/gill @4600b71 gill/models.py GILLModel.generate (the [IMG] logit rules, the forced block),
// GILL.generate_for_images_and_texts (newline cut, [IMG] positions, captions); gill/utils.py truncate_caption.
#include "pipeline/gill_decode.h"

#include <cmath>
#include <limits>

#include "util/error.h"

namespace gill::pipeline {

using detail::str_cat;

int64_t greedy_pick(const torch::Tensor& logits) {
  auto row = logits.reshape({-1}).to(torch::kFloat32).contiguous();
  const float* v = row.data_ptr<float>();
  int64_t best = 0;
  for (int64_t i = 1; i < row.numel(); ++i)
    if (v[i] > v[best] || (std::isnan(v[i]) && !std::isnan(v[best]))) best = i;  // first index among ties
  return best;
}

void apply_img_rules(torch::Tensor& logits, int64_t step, const DecodeOptions& opt, const GillTokenIds& ids) {
  GILL_CHECK(!ids.img.empty(), ErrorCode::kInternal, "no [IMG] token ids");
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (size_t k = 1; k < ids.img.size(); ++k) logits[ids.img[k]] = neg_inf;  // [IMG1..7] never sampled
  const int64_t img0 = ids.img[0];
  if (step < opt.min_word_tokens) {
    logits[img0] = neg_inf;
    return;
  }
  // The reference takes the ABSOLUTE value: a negative [IMG0] logit becomes large and positive.
  if (opt.ret_scale_factor > 1) logits[img0] = logits[img0].abs() * opt.ret_scale_factor;
  if (opt.gen_scale_factor > 1) logits[img0] = logits[img0].abs() * opt.gen_scale_factor;
}

DecodeResult decode(DecoderLM& lm, const torch::Tensor& prompt_embeds, const DecodeOptions& opt,
                    const GillTokenIds& ids, const Sampler& sampler, io::TensorDump* dump, torch::Tensor last_logits) {
  GILL_CHECK(opt.n_words > 0, ErrorCode::kInvalidArgument, "the number of words to generate must be > 0 (got ",
             opt.n_words, ")");
  DecodeResult r;
  const int64_t n_prompt = prompt_embeds.defined() ? prompt_embeds.size(1) : 0;
  GILL_CHECK(lm.n_past() + n_prompt <= lm.max_positions(), ErrorCode::kInvalidArgument, "the prompt needs ", n_prompt,
             " positions (its text tokens plus the visual tokens of its images)",
             lm.n_past() > 0 ? str_cat(" after ", lm.n_past(), " from earlier turns") : std::string(),
             ", more than the LM's context of ", lm.max_positions(), " positions (max_position_embeddings)");
  if (n_prompt > 0) {
    auto out = lm.feed(prompt_embeds);
    last_logits = out.logits[-1];
  }
  GILL_CHECK(last_logits.defined(), ErrorCode::kInvalidArgument, "decode: empty prompt and no previous logits");
  std::vector<torch::Tensor> hidden_rows;
  for (int64_t step = 0; step < opt.n_words; ++step) {
    auto logits = last_logits.to(torch::kFloat32).reshape({-1}).clone();  // [V]
    apply_img_rules(logits, step, opt, ids);
    r.step_logits.push_back(logits);
    const int64_t next = sampler(logits);
    std::vector<int64_t> chosen{next};
    if (next == ids.img[0]) {
      chosen = ids.img;  // the whole block is forced in ONE step
      r.img0_positions.push_back(static_cast<int64_t>(r.ids.size()));
    }
    r.ids.insert(r.ids.end(), chosen.begin(), chosen.end());
    if (opt.on_step && !opt.on_step(chosen)) detail::fail(ErrorCode::kCancelled, "generation cancelled");
    const bool last = step + 1 == opt.n_words;
    // The reference never feeds the last step's tokens (it has no hidden states for an [IMG] block chosen last,
    // and crashes); we feed a block always, and text only when a following turn needs it.
    if (!last || next == ids.img[0] || opt.feed_final_tokens) {
      if (lm.n_past() + static_cast<int64_t>(chosen.size()) > lm.max_positions()) {
        r.stop_reason = "max_positions";
        if (next == ids.img[0]) {  // a block without hidden states cannot be processed: drop it
          r.ids.resize(r.ids.size() - chosen.size());
          r.img0_positions.pop_back();
        }
        break;
      }
      auto out = lm.feed(lm.embed(chosen));
      hidden_rows.push_back(out.hidden);
      last_logits = out.logits[-1];
    }
  }
  r.hidden = hidden_rows.empty() ? torch::Tensor() : torch::cat(hidden_rows, 0);  // [T', D]
  if (dump) {
    dump->add("gill.step_logits", torch::stack(r.step_logits));
    dump->add("gill.generated_ids", torch::tensor(r.ids, torch::kInt64));
  }
  return r;
}

std::string truncate_caption(const std::string& s_in) {
  size_t b = s_in.find_first_not_of('\n');
  if (b == std::string::npos) return "";
  size_t e = s_in.find_last_not_of('\n');
  std::string s = s_in.substr(b, e - b + 1);
  size_t k = s.find('\n');
  if (k != std::string::npos) return s.substr(0, k + 1);
  k = s.find('.');
  if (k != std::string::npos) return s.substr(0, k + 1);
  return s;
}

Segments split_output(const DecodeResult& r, const GillTokenIds& ids, int64_t max_blocks,
                      const std::function<std::string(const std::vector<int64_t>&)>& detok) {
  Segments seg;
  seg.ids = r.ids;
  // Newline cut: the first "\n"; at index 0 nothing is cut (the reference's trunc_idx = 0 means "not found").
  for (size_t j = 0; j < seg.ids.size(); ++j)
    if (seg.ids[j] == ids.newline) {
      if (j > 0) seg.ids.resize(j);
      break;
    }
  const int64_t n_img = static_cast<int64_t>(ids.img.size());
  std::vector<int64_t> starts;
  for (int64_t p : r.img0_positions)
    if (p < static_cast<int64_t>(seg.ids.size()) && static_cast<int64_t>(starts.size()) < max_blocks)
      starts.push_back(p);
  if (starts.empty()) {
    seg.text = truncate_caption(detok(seg.ids));
    return seg;
  }
  int64_t last = 0;
  for (int64_t p : starts) {
    for (int64_t k = 0; k < n_img; ++k)
      GILL_CHECK(p + k < static_cast<int64_t>(r.ids.size()) && r.ids[p + k] == ids.img[k], ErrorCode::kInternal,
                 "[IMG] block at ", p, " is incomplete");
    GILL_CHECK(r.hidden.defined() && p + n_img <= r.hidden.size(0), ErrorCode::kInternal,
               "no hidden states for the [IMG] block at ", p);
    ImgBlock b;
    b.position = p;
    b.hidden = r.hidden.narrow(0, p, n_img);  // [8, D]
    b.caption = truncate_caption(detok(std::vector<int64_t>(seg.ids.begin() + last, seg.ids.begin() + p)));
    last = p + n_img;
    seg.blocks.push_back(std::move(b));
  }
  if (last < static_cast<int64_t>(seg.ids.size()))
    seg.trailing_text = detok(std::vector<int64_t>(seg.ids.begin() + last, seg.ids.end()));
  return seg;
}

}  // namespace gill::pipeline
