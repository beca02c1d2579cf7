// A small deterministic byte-level BPE trainer for the tiny model kit: writes OPT-style (GPT2Tokenizer) and
// CLIP-style tokenizer folders trained on an embedded English text. Not a port: the classic BPE training loop
// (count adjacent pairs weighted by word frequency, merge the most frequent, ties broken by the smaller pair of
// symbol strings), so the output depends only on the text and the vocabulary size.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace gill::tokenizer {

// About 4 KB of plain English prose written for gill (also the corpus of `gill bench tokenizer`).
const std::string& english_sample_text();

// words: symbol sequences with their counts. Returns up to num_merges merges (fewer when no pair is left).
std::vector<std::pair<std::string, std::string>> train_bpe(
    const std::vector<std::pair<std::vector<std::string>, int64_t>>& words, size_t num_merges);

// OPT layout: vocab.json with <s>, <pad>, </s>, <unk> = 0..3, the 256 byte symbols, then one entry per merge;
// merges.txt; special_tokens_map.json; tokenizer_config.json (GPT2Tokenizer, add_bos_token, bos = eos = unk =
// </s>, pad <pad>). vocab_size counts everything (>= 260); training stops early if the text runs out of pairs.
void write_tiny_opt_tokenizer(const std::filesystem::path& dir, int vocab_size,
                              const std::string& text = english_sample_text());
// CLIP layout: the 256 byte symbols, the same with </w>, the merges, <|startoftext|>, <|endoftext|>
// (vocab_size >= 514); lower-cased text split with CLIP's pattern; CLIPTokenizer config, pad <|endoftext|>, 77.
void write_tiny_clip_tokenizer(const std::filesystem::path& dir, int vocab_size,
                               const std::string& text = english_sample_text());

}  // namespace gill::tokenizer
