// libFuzzer target: the batch JSONL reader (src/api/batch.h read_items: one JSON object a line, ids, prompts with
// text and image segments, per-item options) and --shard parsing. A bad line must become an item carrying its
// error, never an exception; only the file itself may throw. Seeds: tests/bad_inputs/data/*.jsonl and the
// batch test inputs.
#include <gill/error.h>

#include <gill/batch.h>
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = gill::fuzz::write_input("in.jsonl", data, size);
  const auto items = gill::batch::read_items(path, gill::GenerateOptions{});  // must not throw for any content
  for (const auto& item : items) {
    if (item.id.empty() || item.line < 1) std::abort();
    if (!item.ok && item.error.empty()) std::abort();
    if (item.ok) item.options.validate();  // an accepted item has valid options
    (void)gill::batch::safe_name(item.id);
  }
  if (size < 64) {
    try {
      const auto s = gill::batch::parse_shard(std::string(reinterpret_cast<const char*>(data), size));
      if (s.count < 1 || s.index < 0 || s.index >= s.count) std::abort();
    } catch (const gill::Error&) {
    }
  }
  return 0;
}
