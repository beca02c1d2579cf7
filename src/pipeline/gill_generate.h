// One GILL turn: prompt assembly (gill-spec §1), the decoding loop (gill_decode.h), and for each [IMG] block
// the decision, retrieval and generation (gill-spec §8.2-8.4), with the fixes of docs/reference-differences.md.
// The backbones are reached through `Backbones` (functions + the DecoderLM), so this file depends only on
// GILL's own modules; gill_model.cpp binds them to OPT, CLIP, the tokenizer and Stable Diffusion.
// Ref: kohjingyu/gill @4600b71 gill/models.py GILL.generate_for_images_and_texts.
#pragma once
#include <gill/image.h>
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/tensor_dump.h"
#include "pipeline/gill_decode.h"
#include "pipeline/gill_weights.h"
#include "pipeline/retrieval.h"

namespace gill::pipeline {

// One item of an interleaved prompt.
struct PromptItem {
  bool is_image = false;
  std::string text;         // text item
  gill::Image image;        // image item (decoded pixels)
  std::string image_path;   // where the image came from (for the transcript), may be empty
};

struct BlockResult;

struct TurnOptions {
  DecodeOptions decode;             // n_words, min_word_tokens, scale factors
  Sampler sampler;                  // null: greedy
  int64_t max_num_rets = 1;         // [IMG] blocks processed AND images retrieved per block
  bool always_generate = false;     // run SD for every block, like the reference
  uint64_t seed = 1337;             // SD seed of the first block; block k uses seed + k
  bool bos_on_first_text = true;    // false for a continued chat turn (BOS was already given)
  // Each block as it is reached: done = false after its decision and retrieval (before generation), done = true
  // once processed. May throw (the turn stops).
  std::function<void(int64_t k, const BlockResult& block, bool done)> on_block;
};

// What the pipeline needs from the backbones.
struct Backbones {
  DecoderLM* lm = nullptr;
  GillTokenIds token_ids;
  std::function<std::vector<int64_t>(const std::string& text, bool add_bos)> tokenize;
  std::function<std::string(const std::vector<int64_t>& ids)> detokenize;
  std::function<torch::Tensor(const gill::Image& img)> clip_pooled;  // -> [1, C] CLIP pooled output
  // prompt_embeds [1, 77, S] -> image; null when Stable Diffusion is not loaded.
  std::function<gill::Image(const torch::Tensor& prompt_embeds, uint64_t seed)> generate_image;
};

struct BlockResult {
  int64_t position = 0;           // index of [IMG0] in the generated ids
  std::string caption;
  std::string decision;           // "gen" | "ret"
  double p_gen = 0, p_ret = 0;
  bool decision_from_head = false;  // false when there is no decision model (then "gen")
  std::vector<RetrievalHit> retrieved;
  std::optional<gill::Image> generated;
  uint64_t seed = 0;
  // The reference's re-ranking score of the generated image (gill-spec §8.4): cosine between the image's
  // retrieval embedding (224x224 bicubic -> CLIP -> visual retrieval map) and the block's [IMG] retrieval
  // embedding; set only when an index is loaded (as the reference), else 0.
  double gen_rank_score = 0;
  bool has_gen_rank_score = false;
  double retrieval_s = 0, generation_s = 0;
};

struct TurnResult {
  std::string text;               // decoded generated ids after the newline cut ([IMG] tokens included)
  std::string caption_text;       // the reference's return value joined: captions + " [IMG0]...[IMG7]" per block
                                  //  (or the truncated caption when there is no block)
  std::string trailing_text;
  std::vector<int64_t> ids;       // all generated ids (before the newline cut)
  std::vector<BlockResult> blocks;
  int64_t prompt_tokens = 0;
  double prompt_s = 0, decode_s = 0;
};

// The label of a row that is not scored (an image row): HF CrossEntropyLoss's ignore_index.
inline constexpr int64_t kIgnoreLabel = -100;

// Builds the prompt embeddings [1, L0, D]: BOS only before the first text (when bos_on_first_text), each image
// as n_visual_tokens rows of visual_embeddings(CLIP pooled). Dumps gill.input_embeds, gill.visual_embs.
// With `labels`: appends one label per row, the reference's get_log_likelihood_scores labels (the token id for a
// text row, -100 for an image row).
torch::Tensor assemble_prompt(GILLWeights& w, Backbones& b, const std::vector<PromptItem>& items,
                              bool bos_on_first_text, io::TensorDump* dump, std::vector<int64_t>* labels = nullptr);

// A whole turn. kInvalidArgument for an empty prompt (no item, or no text at all as the reference requires).
TurnResult run_turn(GILLWeights& w, Backbones& b, const std::vector<PromptItem>& items, const TurnOptions& opt,
                    io::TensorDump* dump = nullptr);

// Decision, retrieval and generation for one block's hidden states [8, D]. `seen` accumulates the retrieved
// indices of earlier blocks (down-weighted by 1000, as the reference).
BlockResult process_block(GILLWeights& w, Backbones& b, const ImgBlock& block, const TurnOptions& opt, int64_t k,
                          std::vector<int64_t>& seen, io::TensorDump* dump);

}  // namespace gill::pipeline
