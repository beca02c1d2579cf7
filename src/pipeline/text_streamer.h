// The one incremental text streamer: `gill run --lm` and the GILL turn hand each step's ids to it and print what
// it returns. It emits only text that later tokens cannot change, so the pieces together are the final text.
// Ref: transformers v4.30.2 generation/streamers.py TextStreamer (print up to the last space, flush after "\n").
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace gill::pipeline {

// Emits the decoded text up to its last space (later tokens can still change what follows it: clean-up rules
// such as " ." -> ".", a word that goes on), everything when the text ends in "\n" or the last id is one of
// `flush_after` (tokens decoded atomically, such as GILL's [IMG] tokens), and never a trailing incomplete UTF-8
// sequence or a U+FFFD that later bytes may complete (the tokenizers decode an incomplete sequence as U+FFFD),
// and nothing from where one of `stop_strings` begins (or may begin: a suffix that starts one), since the final
// text is cut there. finish() gives the rest of the final text.
class TextStreamer {
 public:
  using Decode = std::function<std::string(const std::vector<int64_t>&)>;
  explicit TextStreamer(Decode decode, std::vector<int64_t> flush_after = {},
                        std::vector<std::string> stop_strings = {})
      : decode_(std::move(decode)), flush_after_(std::move(flush_after)), stop_strings_(std::move(stop_strings)) {}
  std::string push(int64_t id) { return push(std::vector<int64_t>{id}); }
  std::string push(const std::vector<int64_t>& ids);  // the new printable text (maybe empty)
  std::string finish(const std::string& final_text);  // the rest of final_text not yet emitted
  const std::string& emitted() const { return emitted_; }

 private:
  Decode decode_;
  std::vector<int64_t> flush_after_;
  std::vector<std::string> stop_strings_;
  std::vector<int64_t> ids_;
  std::string emitted_;
};

}  // namespace gill::pipeline
