// The GILL decoding rules (gill-spec §7, §8.1) with a scripted LM double: [IMG] bans, min_word_tokens, the
// |logit| * scale rule, the forced block fed as one step, hidden-state bookkeeping, newline cut, captions.
#include <limits>
#include <map>

#include "pipeline/gill_decode.h"
#include "test_support.h"
#include "util/error.h"

using namespace gill;
using namespace gill::pipeline;

namespace {

// Vocabulary of 16: ids 8..15 are [IMG0..7], 5 is "\n". The embedding of id k is one-hot(k) * 1; the "model"
// returns hidden = input embedding + position (so each hidden row identifies its input token and position)
// and logits from a table keyed by the last input token.
class ScriptedLM : public DecoderLM {
 public:
  static constexpr int64_t V = 16;
  std::map<int64_t, std::vector<float>> next_logits;  // last input token -> logits row
  std::vector<int64_t> feed_sizes;
  int64_t past = 0;

  Out feed(const torch::Tensor& embeds) override {
    const int64_t n = embeds.size(1);
    feed_sizes.push_back(n);
    auto e = embeds[0];  // [n, V]
    auto hidden = e.clone();
    auto logits = torch::zeros({n, V});
    for (int64_t i = 0; i < n; ++i) {
      hidden[i] += static_cast<float>(past + i) * 100;  // position marker
      const int64_t tok = e[i].argmax().item<int64_t>();
      auto it = next_logits.find(tok);
      if (it != next_logits.end()) logits[i] = torch::tensor(it->second);
    }
    past += n;
    return {logits, hidden};
  }
  torch::Tensor embed(const std::vector<int64_t>& ids) override {
    auto t = torch::zeros({1, static_cast<int64_t>(ids.size()), V});
    for (size_t i = 0; i < ids.size(); ++i) t[0][static_cast<int64_t>(i)][ids[i]] = 1;
    return t;
  }
  int64_t n_past() const override { return past; }
  int64_t max_pos = std::numeric_limits<int64_t>::max();
  int64_t max_positions() const override { return max_pos; }
};

GillTokenIds tiny_ids() { return {{8, 9, 10, 11, 12, 13, 14, 15}, 5}; }

std::vector<float> row(std::map<int64_t, float> vals, float base = 0) {
  std::vector<float> r(ScriptedLM::V, base);
  for (auto [k, v] : vals) r[static_cast<size_t>(k)] = v;
  return r;
}

}  // namespace

TEST(GillDecode, GreedyPicksFirstAmongTies) {
  EXPECT_EQ(greedy_pick(torch::tensor({1.f, 3.f, 3.f, 2.f})), 1);
}

TEST(GillDecode, ImgRulesBanAndScaleAbsolute) {
  auto ids = tiny_ids();
  DecodeOptions opt;
  opt.ret_scale_factor = 10;
  auto l = torch::full({16}, 1.f);
  l[8] = -2.f;
  apply_img_rules(l, 0, opt, ids);
  EXPECT_FLOAT_EQ(l[8].item<float>(), 20.f);  // |-2| * 10
  for (int k = 9; k < 16; ++k) EXPECT_TRUE(std::isinf(l[k].item<float>()));
  // Compounding: both factors > 1.
  opt.gen_scale_factor = 3;
  l = torch::full({16}, 1.f);
  l[8] = -2.f;
  apply_img_rules(l, 0, opt, ids);
  EXPECT_FLOAT_EQ(l[8].item<float>(), 60.f);
  // Factors <= 1 change nothing (they never down-weight).
  DecodeOptions low;
  low.ret_scale_factor = 0.5;
  l = torch::full({16}, 1.f);
  l[8] = -2.f;
  apply_img_rules(l, 0, low, ids);
  EXPECT_FLOAT_EQ(l[8].item<float>(), -2.f);
  // min_word_tokens bans [IMG0] in the early steps.
  opt.min_word_tokens = 2;
  l = torch::full({16}, 1.f);
  apply_img_rules(l, 1, opt, ids);
  EXPECT_TRUE(std::isinf(l[8].item<float>()));
}

TEST(GillDecode, ForcedBlockIsOneStepAndHiddenStatesLineUp) {
  ScriptedLM lm;
  // After the prompt (token 0): say 1; after 1: [IMG0] is best; after the block ([IMG7]): say 2; after 2: say 3.
  lm.next_logits[0] = row({{1, 5}});
  lm.next_logits[1] = row({{8, 9}, {2, 1}});
  lm.next_logits[15] = row({{2, 5}});
  lm.next_logits[2] = row({{3, 5}});
  DecodeOptions opt;
  opt.n_words = 4;
  auto r = decode(lm, lm.embed({0}), opt, tiny_ids(), greedy_pick);
  EXPECT_EQ(r.ids, (std::vector<int64_t>{1, 8, 9, 10, 11, 12, 13, 14, 15, 2, 3}));  // 4 steps + 7
  EXPECT_EQ(r.img0_positions, (std::vector<int64_t>{1}));
  EXPECT_EQ(lm.feed_sizes, (std::vector<int64_t>{1, 1, 8, 1}));  // prompt, "1", the block in one step, "2"
  ASSERT_EQ(r.hidden.size(0), 10);  // "3" (chosen last) is not fed
  // hidden row j belongs to input token ids[j] at position 1 + j.
  for (int64_t j = 0; j < 10; ++j) {
    EXPECT_EQ(r.hidden[j].argmax().item<int64_t>(), r.ids[static_cast<size_t>(j)]);
    EXPECT_FLOAT_EQ(r.hidden[j].max().item<float>(), 1.f + 100.f * static_cast<float>(1 + j));
  }
  ASSERT_EQ(r.step_logits.size(), 4u);
}

TEST(GillDecode, ImgChosenAtTheLastStepStillHasHiddenStates) {
  ScriptedLM lm;
  lm.next_logits[0] = row({{8, 1}});
  DecodeOptions opt;
  opt.n_words = 1;  // the reference crashes here (no hidden states for the block)
  auto r = decode(lm, lm.embed({0}), opt, tiny_ids(), greedy_pick);
  EXPECT_EQ(r.ids.size(), 8u);
  ASSERT_TRUE(r.hidden.defined());
  EXPECT_EQ(r.hidden.size(0), 8);
  auto seg = split_output(r, tiny_ids(), 1, [](const std::vector<int64_t>& v) { return std::to_string(v.size()); });
  ASSERT_EQ(seg.blocks.size(), 1u);
  EXPECT_EQ(seg.blocks[0].position, 0);
}

TEST(GillDecode, MinWordTokensCountsSteps) {
  ScriptedLM lm;
  lm.next_logits[0] = row({{8, 9}, {1, 1}});
  lm.next_logits[1] = row({{8, 9}, {1, 1}});
  DecodeOptions opt;
  opt.n_words = 3;
  opt.min_word_tokens = 2;
  auto r = decode(lm, lm.embed({0}), opt, tiny_ids(), greedy_pick);
  EXPECT_EQ(r.ids, (std::vector<int64_t>{1, 1, 8, 9, 10, 11, 12, 13, 14, 15}));
}

TEST(GillDecode, NewlineCutAndCaptions) {
  auto ids = tiny_ids();
  DecodeResult r;
  r.ids = {1, 2, 8, 9, 10, 11, 12, 13, 14, 15, 3, 8, 9, 10, 11, 12, 13, 14, 15, 4, 5, 6};
  r.img0_positions = {2, 11};
  r.hidden = torch::arange(22).to(torch::kFloat32).unsqueeze(1);
  auto detok = [](const std::vector<int64_t>& v) {
    std::string s;
    for (auto x : v) s += (x == 5 ? std::string("\n") : " t" + std::to_string(x));
    return s;
  };
  auto seg = split_output(r, ids, 2, detok);
  EXPECT_EQ(seg.ids.size(), 20u);  // cut before "\n"
  ASSERT_EQ(seg.blocks.size(), 2u);
  EXPECT_EQ(seg.blocks[0].caption, " t1 t2");
  EXPECT_EQ(seg.blocks[1].caption, " t3");  // starts after the first block's end
  EXPECT_FLOAT_EQ(seg.blocks[1].hidden[0].item<float>(), 11.f);
  // max blocks honoured.
  EXPECT_EQ(split_output(r, ids, 1, detok).blocks.size(), 1u);
  // A newline at index 0 is not cut (the reference's quirk).
  DecodeResult r0;
  r0.ids = {5, 1, 5, 2};
  auto s0 = split_output(r0, ids, 1, detok);
  EXPECT_EQ(s0.ids.size(), 4u);
  EXPECT_EQ(s0.text, " t1\n");
}

TEST(GillDecode, TruncateCaption) {
  EXPECT_EQ(truncate_caption("\n\na cat. on a mat.\n"), "a cat.");
  EXPECT_EQ(truncate_caption("a cat\non. a mat"), "a cat\n");
  EXPECT_EQ(truncate_caption(" no stop"), " no stop");
  EXPECT_EQ(truncate_caption("\n\n"), "");
}

TEST(GillDecode, ZeroWordsIsAnError) {
  ScriptedLM lm;
  DecodeOptions opt;
  opt.n_words = 0;
  try {
    decode(lm, lm.embed({0}), opt, tiny_ids(), greedy_pick);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "the number of words to generate must be > 0 (got 0)");
  }
}

TEST(GillDecode, PromptLongerThanTheContextIsAnError) {
  ScriptedLM lm;
  lm.max_pos = 2;
  DecodeOptions opt;
  try {
    decode(lm, lm.embed({0, 1, 2}), opt, tiny_ids(), greedy_pick);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(std::string(e.what()),
              "the prompt needs 3 positions (its text tokens plus the visual tokens of its images), more than the "
              "LM's context of 2 positions (max_position_embeddings)");
  }
  EXPECT_TRUE(lm.feed_sizes.empty());  // refused before running the model
}

TEST(GillDecode, StopsAtTheContextLimit) {
  // Text: the token chosen when the context is full is kept but not fed.
  ScriptedLM lm;
  lm.max_pos = 3;
  lm.next_logits[0] = row({{1, 5}});
  lm.next_logits[1] = row({{1, 5}});
  DecodeOptions opt;
  opt.n_words = 5;
  auto r = decode(lm, lm.embed({0}), opt, tiny_ids(), greedy_pick);
  EXPECT_EQ(r.ids, (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(r.stop_reason, "max_positions");
  EXPECT_EQ(lm.n_past(), 3);
  // An [IMG] block that no longer fits is dropped (it would have no hidden states).
  ScriptedLM lm2;
  lm2.max_pos = 4;
  lm2.next_logits[0] = row({{1, 5}});
  lm2.next_logits[1] = row({{8, 5}});
  auto r2 = decode(lm2, lm2.embed({0}), opt, tiny_ids(), greedy_pick);
  EXPECT_EQ(r2.ids, (std::vector<int64_t>{1}));
  EXPECT_TRUE(r2.img0_positions.empty());
  EXPECT_EQ(r2.stop_reason, "max_positions");
  auto seg = split_output(r2, tiny_ids(), 1, [](const std::vector<int64_t>& v) { return std::to_string(v.size()); });
  EXPECT_TRUE(seg.blocks.empty());
}
