#include "tokenizer/bpe_train.h"

#include <map>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "tokenizer/bpe.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace gill::tokenizer {

namespace fs = std::filesystem;

const std::string& english_sample_text() {
  static const std::string text =
      "The lighthouse keeper walked down to the harbour every morning before the sun was up. He carried a small "
      "lamp, a notebook and a thermos of strong tea, and he wrote down the colour of the sea, the direction of the "
      "wind and the number of boats that had already left for the fishing grounds. Nobody had asked him to keep "
      "these notes. He kept them because his father had done the same, and because a page that was filled every "
      "day made the long winter feel shorter.\n"
      "In the spring the village painted its houses. Some chose white, some chose a pale blue, and one family "
      "always painted their door a bright yellow that could be seen from the top of the hill. Children ran between "
      "the ladders, and the older people sat on benches and gave advice that nobody followed. When the work was "
      "finished there was bread, cheese and music in the square until late in the evening.\n"
      "A photograph of the harbour hangs in the small museum near the church. It shows twelve boats, a dog sleeping "
      "on a coil of rope, and a woman in a long coat who is looking straight at the camera. Visitors often ask who "
      "she was. The museum does not know, but the guide likes to say that she was waiting for someone, and that "
      "the person she was waiting for came home safely that night.\n"
      "Learning to sail takes patience. You learn to read the water, to feel the wind change on your face, and to "
      "trust the boat when it leans over further than seems possible. The first lesson is always the same: keep "
      "one hand for yourself and one hand for the ship. The second lesson is that the weather does not care about "
      "your plans, so you should make plans that respect the weather.\n"
      "On clear nights the sky above the island is full of stars. The keeper knew the names of many of them, and "
      "he would point them out to anyone who climbed the narrow stairs to the lamp room. He said that sailors had "
      "used the same stars for thousands of years, and that a person who can find the north star is never "
      "completely lost. Then he would laugh and admit that he preferred a good map.\n"
      "Years later, when the light was replaced by an automatic beacon, the notebooks were given to the museum. "
      "There are forty-three of them, written in pencil, with drawings of birds, clouds and the occasional whale. "
      "Researchers have used them to study how the climate of the coast has changed. The keeper would have found "
      "that amusing: he always said he was only writing things down so that he would not forget them.\n"
      "If you visit today, you can walk along the old path to the point, past the gardens and the ruined chapel, "
      "and sit on the rocks where he used to watch the boats come in. Bring a warm jacket. Even in summer the wind "
      "is cold, the waves are loud, and the gulls are curious about anything that looks like lunch.\n";
  return text;
}

std::vector<std::pair<std::string, std::string>> train_bpe(
    const std::vector<std::pair<std::vector<std::string>, int64_t>>& words, size_t num_merges) {
  // Symbols are interned; pair statistics are recounted each round (the corpora here are tiny).
  std::vector<std::string> names;
  std::map<std::string, int32_t> ids;
  auto intern = [&](const std::string& s) {
    auto [it, inserted] = ids.emplace(s, static_cast<int32_t>(names.size()));
    if (inserted) names.push_back(s);
    return it->second;
  };
  std::vector<std::pair<std::vector<int32_t>, int64_t>> corpus;
  for (const auto& [syms, count] : words) {
    std::vector<int32_t> w;
    for (const auto& s : syms) w.push_back(intern(s));
    corpus.emplace_back(std::move(w), count);
  }
  std::vector<std::pair<std::string, std::string>> merges;
  while (merges.size() < num_merges) {
    std::map<std::pair<int32_t, int32_t>, int64_t> counts;
    for (const auto& [w, c] : corpus)
      for (size_t i = 0; i + 1 < w.size(); ++i) counts[{w[i], w[i + 1]}] += c;
    if (counts.empty()) break;
    const std::pair<int32_t, int32_t>* best = nullptr;
    int64_t best_count = 0;
    for (const auto& [p, c] : counts) {
      const bool better = c > best_count || (c == best_count && std::tie(names[p.first], names[p.second]) <
                                                                    std::tie(names[best->first], names[best->second]));
      if (better) {
        best = &p;
        best_count = c;
      }
    }
    const auto [a, b] = *best;
    const int32_t m = intern(names[a] + names[b]);
    merges.emplace_back(names[a], names[b]);
    for (auto& [w, c] : corpus) {
      std::vector<int32_t> next;
      next.reserve(w.size());
      for (size_t i = 0; i < w.size();) {
        if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) {
          next.push_back(m);
          i += 2;
        } else {
          next.push_back(w[i++]);
        }
      }
      w.swap(next);
    }
  }
  return merges;
}

namespace {

// Pre-tokenises text with `pattern` and maps each piece through bytes_to_unicode (+ suffix on the last symbol).
std::vector<std::pair<std::vector<std::string>, int64_t>> word_counts(const std::string& text, const char* pattern,
                                                                      const std::string& suffix) {
  const Regex re(pattern);
  std::map<std::string, int64_t> counts;
  re.for_each(text, [&](std::string_view piece) { ++counts[std::string(piece)]; });
  const auto& b2u = byte_to_unicode();
  std::vector<std::pair<std::vector<std::string>, int64_t>> out;
  for (const auto& [piece, c] : counts) {
    std::vector<std::string> syms;
    for (unsigned char ch : piece) syms.push_back(b2u[ch]);
    syms.back() += suffix;
    out.emplace_back(std::move(syms), c);
  }
  return out;
}

std::string merges_text(const std::vector<std::pair<std::string, std::string>>& merges) {
  std::string s = "#version: 0.2\n";
  for (const auto& [a, b] : merges) s += a + " " + b + "\n";
  return s;
}

// The order of GPT-2's bytes_to_unicode() table, which the real GPT-2/OPT and CLIP vocabularies follow: the
// printable ranges '!'..'~', '¡'..'¬', '®'..'ÿ' first, then the remaining bytes ascending.
std::vector<int> gpt2_byte_order() {
  std::vector<int> order;
  std::vector<bool> seen(256, false);
  for (auto [lo, hi] : {std::pair{33, 126}, {161, 172}, {174, 255}})
    for (int b = lo; b <= hi; ++b) order.push_back(b), seen[b] = true;
  for (int b = 0; b < 256; ++b)
    if (!seen[b]) order.push_back(b);
  return order;
}

nlohmann::ordered_json added_token(const std::string& content) {
  return {{"__type", "AddedToken"}, {"content", content}, {"lstrip", false},
          {"normalized", true},     {"rstrip", false},     {"single_word", false}};
}

void write_json(const fs::path& p, const nlohmann::ordered_json& j) { io::write_file_atomic(p, j.dump(2) + "\n"); }

}  // namespace

void write_tiny_opt_tokenizer(const fs::path& dir, int vocab_size, const std::string& text) {
  GILL_CHECK(vocab_size >= 260, ErrorCode::kInvalidArgument, "OPT-style vocab_size must be >= 260, got ",
             vocab_size);
  const char* pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
  const auto merges = train_bpe(word_counts(uni::decode_replace(text), pattern, ""), vocab_size - 260);
  nlohmann::ordered_json vocab;
  for (const char* s : {"<s>", "<pad>", "</s>", "<unk>"}) vocab[s] = vocab.size();
  for (int b : gpt2_byte_order()) vocab[byte_to_unicode()[b]] = vocab.size();
  for (const auto& [a, b] : merges)
    if (!vocab.contains(a + b)) vocab[a + b] = vocab.size();
  fs::create_directories(dir);
  write_json(dir / "vocab.json", vocab);
  io::write_file_atomic(dir / "merges.txt", merges_text(merges));
  nlohmann::ordered_json specials;
  for (const auto& [role, tok] : {std::pair{"bos_token", "</s>"}, {"eos_token", "</s>"}, {"pad_token", "<pad>"},
                                  {"unk_token", "</s>"}}) {
    auto t = added_token(tok);
    t.erase("__type");
    specials[role] = t;
  }
  write_json(dir / "special_tokens_map.json", specials);
  nlohmann::ordered_json config = {{"add_bos_token", true}, {"add_prefix_space", false}};
  config["bos_token"] = added_token("</s>");
  config["clean_up_tokenization_spaces"] = true;
  config["eos_token"] = added_token("</s>");
  config["errors"] = "replace";
  config["model_max_length"] = 1000000000000000019ULL;
  config["pad_token"] = added_token("<pad>");
  config["tokenizer_class"] = "GPT2Tokenizer";
  config["unk_token"] = added_token("</s>");
  write_json(dir / "tokenizer_config.json", config);
}

void write_tiny_clip_tokenizer(const fs::path& dir, int vocab_size, const std::string& text) {
  GILL_CHECK(vocab_size >= 514, ErrorCode::kInvalidArgument, "CLIP-style vocab_size must be >= 514, got ",
             vocab_size);
  const char* pattern = R"('s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)";
  const auto merges =
      train_bpe(word_counts(uni::lowercase(uni::nfc(uni::decode_replace(text))), pattern, "</w>"), vocab_size - 514);
  nlohmann::ordered_json vocab;
  for (int b : gpt2_byte_order()) vocab[byte_to_unicode()[b]] = vocab.size();
  for (int b : gpt2_byte_order()) vocab[byte_to_unicode()[b] + "</w>"] = vocab.size();
  for (const auto& [a, b] : merges)
    if (!vocab.contains(a + b)) vocab[a + b] = vocab.size();
  vocab["<|startoftext|>"] = vocab.size();
  vocab["<|endoftext|>"] = vocab.size();
  fs::create_directories(dir);
  write_json(dir / "vocab.json", vocab);
  io::write_file_atomic(dir / "merges.txt", merges_text(merges));
  nlohmann::ordered_json specials;
  for (const auto& [role, tok] : {std::pair{"bos_token", "<|startoftext|>"}, {"eos_token", "<|endoftext|>"}}) {
    auto t = added_token(tok);
    t.erase("__type");
    specials[role] = t;
  }
  specials["pad_token"] = "<|endoftext|>";
  auto unk = added_token("<|endoftext|>");
  unk.erase("__type");
  specials["unk_token"] = unk;
  write_json(dir / "special_tokens_map.json", specials);
  nlohmann::ordered_json config;
  config["bos_token"] = added_token("<|startoftext|>");
  config["clean_up_tokenization_spaces"] = true;
  config["do_lower_case"] = true;
  config["eos_token"] = added_token("<|endoftext|>");
  config["errors"] = "replace";
  config["model_max_length"] = 77;
  config["pad_token"] = "<|endoftext|>";
  config["tokenizer_class"] = "CLIPTokenizer";
  config["unk_token"] = added_token("<|endoftext|>");
  write_json(dir / "tokenizer_config.json", config);
}

}  // namespace gill::tokenizer
