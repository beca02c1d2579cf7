// gill — the one JSON form of a result, and the one writer of a turn's files (no torch here).
//
// Every transcript gill writes goes through these functions: `gill run --json` (a turn, or the LLM alone),
// `gill chat` /save (Chat::transcript_json), `gill batch` results.jsonl (and the HTML report read from it) and
// `gill serve`'s image blocks and timings. The schema, with every key, its type and unit, is docs/result-schema.md;
// `schema_version` changes whenever a key changes meaning or goes away (adding a key keeps the version).
#pragma once
#include <gill/gill.h>
#include <gill/tools.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace gill {

inline constexpr int kResultSchemaVersion = 1;

// What a turn object says besides the Result itself; each member is optional (null / 0: the key is left out).
struct TurnRecord {
  const Prompt* prompt = nullptr;             // "prompt": the segments as sent
  const GenerateOptions* settings = nullptr;  // "settings": the options the turn ran with
  int64_t turn = 0;                           // "turn": 1, 2, ... in a chat
};

// The turn object: schema_version, mode "gill", prompt, text, trailing_text, token_ids, images, settings,
// timings, compute (and turn).
nlohmann::json result_json(const Result& r, const TurnRecord& record = {});
// One [IMG] block: caption, decision, probabilities, retrieved items, generated image (or null).
nlohmann::json block_json(const ImageBlock& b);
nlohmann::json timings_json(const Timings& t);
nlohmann::json settings_json(const GenerateOptions& o);
nlohmann::json compute_json(const ComputeInfo& c);
nlohmann::json prompt_json(const Prompt& p);
// The LLM alone (`gill run --lm`): schema_version, mode "lm", prompt, prompt_ids, text, token_ids, stop_reason,
// settings, timings, compute.
nlohmann::json lm_result_json(const LmResult& r, const LmOptions& o);
// result_json(...).dump(indent); invalid UTF-8 in generated text is replaced (U+FFFD), never an exception.
std::string to_json(const Result& r, const TurnRecord& record = {}, int indent = 2);
// A JSON value as text, with the same UTF-8 replacement (indent -1: one line).
std::string dump_json(const nlohmann::json& j, int indent = 2);

// One line per image block, for a terminal: "[image 1: generated (p_gen 0.62, p_ret 0.38) -> out/gen_0.png]",
// "[image 1: retrieved #5 (score 12.3; p_gen ...) -> FILE or URL]", ...; each line ends with '\n'.
std::string image_lines(const Result& r);

// The PNG text chunks of a generated image: caption, seed, steps, cfg_scale, scheduler, gen_scale_factor,
// Software (`software`, e.g. "gill run").
std::vector<std::pair<std::string, std::string>> png_settings(const ImageBlock& b, const GenerateOptions& o,
                                                              const std::string& software);

// Where write_turn_files puts a turn's images.
struct OutputFiles {
  std::string dir;                // created when missing
  std::string prefix;             // file names: PREFIXgen_K.png, PREFIXret_K_I.EXT
  bool copy_retrieved = true;     // copy retrieved local files (URLs are never fetched)
  std::string software = "gill";  // the PNG's Software chunk
};

// Writes each generated image as a PNG with png_settings (atomically) and copies each retrieved local file
// (atomically), recording the paths in r (ImageBlock::generated_file, RetrievedImage::file). kIo naming the
// folder or file.
void write_turn_files(Result& r, const OutputFiles& where, const GenerateOptions& settings);

}  // namespace gill
