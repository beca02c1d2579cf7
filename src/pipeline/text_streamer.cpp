#include "pipeline/text_streamer.h"

#include <algorithm>

namespace gill::pipeline {

namespace {

// The largest end <= `end` that does not cut a UTF-8 sequence and is not followed back by U+FFFD at the very end
// of the text (a replacement for bytes the next token may complete).
size_t streamer_stable_end(const std::string& text, size_t end) {
  static const std::string kReplacement = "\xEF\xBF\xBD";
  if (end == text.size())
    while (end >= 3 && text.compare(end - 3, 3, kReplacement) == 0) end -= 3;
  // Back up over a multi-byte sequence that `end` would cut (at most 3 continuation bytes).
  size_t lead = end;
  for (int k = 0; k < 4 && lead > 0; ++k) {
    const auto b = static_cast<unsigned char>(text[lead - 1]);
    if ((b & 0xC0) != 0x80) {  // an ASCII or lead byte at lead - 1
      const size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
      return lead - 1 + len <= end ? end : lead - 1;
    }
    --lead;
  }
  return end;
}

}  // namespace

std::string TextStreamer::push(const std::vector<int64_t>& ids) {
  if (ids.empty()) return {};
  ids_.insert(ids_.end(), ids.begin(), ids.end());
  const std::string text = decode_(ids_);
  const bool flush = std::find(flush_after_.begin(), flush_after_.end(), ids.back()) != flush_after_.end() ||
                     (!text.empty() && text.back() == '\n');
  size_t end = text.size();
  if (!flush) {
    const size_t last_space = text.rfind(' ');
    end = last_space == std::string::npos ? 0 : last_space;
  }
  for (const auto& stop : stop_strings_) {
    if (stop.empty()) continue;
    end = std::min(end, text.find(stop));
    for (size_t k = std::min(stop.size() - 1, text.size()); k > 0; --k)
      if (text.compare(text.size() - k, k, stop, 0, k) == 0) {
        end = std::min(end, text.size() - k);
        break;
      }
  }
  end = streamer_stable_end(text, end);
  if (end <= emitted_.size()) return {};
  if (text.compare(0, emitted_.size(), emitted_) != 0) return {};  // earlier text changed: wait for finish()
  std::string delta = text.substr(emitted_.size(), end - emitted_.size());
  emitted_ = text.substr(0, end);
  return delta;
}

std::string TextStreamer::finish(const std::string& final_text) {
  if (final_text.compare(0, emitted_.size(), emitted_) != 0) return {};
  std::string rest = final_text.substr(std::min(emitted_.size(), final_text.size()));
  emitted_ = final_text;
  return rest;
}

}  // namespace gill::pipeline
