// Ref: kohjingyu/gill @4600b71 gill/models.py GILLModel.generate (the [IMG] logit rules, the forced block),
// GILL.generate_for_images_and_texts (newline cut, [IMG] positions, captions); gill/utils.py truncate_caption.
#include "pipeline/gill_decode.h"

#include <cmath>
#include <limits>

#include "util/error.h"

namespace gill::pipeline {

using detail::str_cat;

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

namespace {

// The reference's [IMG] rules on the decoding loop: the logit rules, [IMG0] forces the whole block in one step,
// whose hidden states are always needed.
class ImgRulesPolicy : public DecodePolicy {
 public:
  ImgRulesPolicy(const DecodeOptions& opt, const GillTokenIds& ids) : opt_(opt), ids_(ids) {}
  void adjust_logits(int64_t step, torch::Tensor& logits) override { apply_img_rules(logits, step, opt_, ids_); }
  std::vector<int64_t> expand(int64_t picked) override {
    return picked == ids_.img[0] ? ids_.img : std::vector<int64_t>{picked};
  }
  bool needs_hidden_states(const std::vector<int64_t>& chosen) const override { return chosen.front() == ids_.img[0]; }

 private:
  const DecodeOptions& opt_;
  const GillTokenIds& ids_;
};

}  // namespace

DecodeResult decode(DecoderLM& lm, const torch::Tensor& prompt_embeds, const DecodeOptions& opt,
                    const GillTokenIds& ids, const Sampler& sampler, io::TensorDump* dump, torch::Tensor last_logits) {
  GILL_CHECK(opt.n_words > 0, ErrorCode::kInvalidArgument, "the number of words to generate must be > 0 (got ",
             opt.n_words, ")");
  GILL_CHECK(!ids.img.empty(), ErrorCode::kInternal, "no [IMG] token ids");
  ImgRulesPolicy policy(opt, ids);
  LoopOptions lo;
  lo.max_steps = opt.n_words;
  lo.feed_final_tokens = opt.feed_final_tokens;
  lo.keep_step_logits = true;
  lo.keep_hidden = true;
  lo.on_step = opt.on_step;
  auto loop = run_decode_loop(lm, prompt_embeds, std::move(last_logits), policy, sampler, lo);
  if (loop.stop_reason == "callback") detail::fail(ErrorCode::kCancelled, "generation cancelled");
  DecodeResult r;
  r.ids = std::move(loop.ids);
  r.hidden = loop.hidden;
  r.step_logits = std::move(loop.step_logits);
  for (int64_t start : loop.step_starts)
    if (r.ids[static_cast<size_t>(start)] == ids.img[0]) r.img0_positions.push_back(start);
  r.stop_reason = loop.stop_reason == "max_steps" ? "n_words" : loop.stop_reason;
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
