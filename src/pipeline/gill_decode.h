// The GILL decoding rules (gill-spec §7) as a policy on the one decoding loop (decode_loop.h), and the
// post-processing of the generated ids into caption + [IMG] blocks (gill-spec §8.1). Runs with any DecoderLM:
// a CachedLM over the loaded decoder, or test doubles.
// Ref: kohjingyu/gill @4600b71 gill/models.py (GILLModel.generate, GILL.generate_for_images_and_texts),
//      gill/utils.py (truncate_caption).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "io/tensor_dump.h"
#include "pipeline/decode_loop.h"
#include "pipeline/sampling.h"

namespace gill::pipeline {

struct DecodeOptions {
  int64_t n_words = 32;           // decoding STEPS (an [IMG] block counts as one); the reference's num_words
  int64_t min_word_tokens = 0;    // steps during which [IMG0] is banned too
  double ret_scale_factor = 1.0;  // > 1: [IMG0] logit := |logit| * factor (compounds with gen_scale_factor)
  double gen_scale_factor = 1.0;
  // Feed the tokens chosen at the last step through the model as well (keeps the KV cache complete for a
  // following turn). An [IMG] block chosen at the last step is always fed (its hidden states are needed).
  bool feed_final_tokens = false;
  // Called after each step with the ids it chose (one token, or the 8 [IMG] ids); returning false stops the
  // loop with ErrorCode::kCancelled.
  std::function<bool(const std::vector<int64_t>& chosen)> on_step;
};

// Token ids the rules need.
struct GillTokenIds {
  std::vector<int64_t> img;  // [IMG0..7]
  int64_t newline = 50118;   // "\n"
};

// The reference's [IMG] rules on a logits row [V] (modified in place): [IMG1..7] -> -inf always; for
// step < min_word_tokens [IMG0] -> -inf too; otherwise |[IMG0]| * ret_scale_factor (if > 1), then
// |.| * gen_scale_factor (if > 1).
void apply_img_rules(torch::Tensor& logits, int64_t step, const DecodeOptions& opt, const GillTokenIds& ids);

struct DecodeResult {
  std::vector<int64_t> ids;                // generated ids: n_words + 7 per [IMG0] chosen
  torch::Tensor hidden;                    // [T', D] final hidden states where ids[j] was the INPUT token (T' <= T:
                                           //  tokens chosen at the last step are only fed when needed)
  std::vector<torch::Tensor> step_logits;  // per step, the row after the rules ([V] float32)
  std::vector<int64_t> img0_positions;     // indices j in ids where ids[j] == [IMG0]
  // "n_words", or "max_positions": the LM's context was full (a text token chosen then is kept but not fed; an
  // [IMG] block that no longer fits is dropped, since it would have no hidden states).
  std::string stop_reason = "n_words";
};

// Runs the loop with the [IMG] rules (the sampler sees the rows after them; greedy_pick is the reference's
// greedy). An on_step that returns false throws kCancelled. `prompt_embeds` [1, L0, D] is fed first unless it is empty
// (a continued chat turn, where the previous logits are passed in `last_logits` [V]). Dumps gill.step_logits,
// gill.generated_ids.
DecodeResult decode(DecoderLM& lm, const torch::Tensor& prompt_embeds, const DecodeOptions& opt,
                    const GillTokenIds& ids, const Sampler& sampler, io::TensorDump* dump = nullptr,
                    torch::Tensor last_logits = {});

// utils.truncate_caption: strip '\n' at both ends; cut after the first '\n', else after the first '.'.
std::string truncate_caption(const std::string& s);

// One [IMG] block of the output.
struct ImgBlock {
  int64_t position = 0;  // index of [IMG0] in the generated ids
  torch::Tensor hidden;  // [8, D] final hidden states at the block's positions
  std::string caption;   // truncate_caption(decode(text before the block))
};

struct Segments {
  std::vector<int64_t> ids;      // after the newline cut
  std::vector<ImgBlock> blocks;  // the first max_blocks [IMG] blocks
  std::string text;              // when there is no block: truncate_caption(decode(ids))
  std::string trailing_text;     // decode(text after the last processed block): the reference drops it
};

// Post-processing (gill-spec §8.1): cut at the first "\n" (not at index 0, as the reference), find the [IMG0]
// positions (first `max_blocks`), and cut the captions. Each caption is the text since the previous block's END
// (the reference restarts one token after [IMG0], so its later captions begin with "[IMG1] ... [IMG7]": fixed,
// see docs/reference-differences.md).
Segments split_output(const DecodeResult& r, const GillTokenIds& ids, int64_t max_blocks,
                      const std::function<std::string(const std::vector<int64_t>&)>& detok);

}  // namespace gill::pipeline
