// Batch runs over a JSONL file: `gill batch IN.jsonl -o OUT_DIR`. The runner is abstract (a function
// Prompt + GenerateOptions -> Result), so the CLI wires it to gill::Engine and tests use a fake one.
//
// Input, one JSON object a line (blank lines are skipped):
//   {"id": "a1", "prompt": [{"text": "..."}, {"image": "cat.png"}], "options": {"temp": 0.7, "seed": 3}}
//   {"id": "s1", "prompt": [...], "candidates": ["a dog.", "a cat."]}     (scored, not generated: Engine::score)
// "prompt" may also be a plain string; image paths are relative to the JSONL file; "options" uses the names of
// `gill run`'s flags (apply_options). Output in OUT_DIR:
//   results.jsonl            one line per input line (id, text, image blocks, timings, or an error);
//                            with --shard i/N: results.shard-i-of-N.jsonl
//   images/ID.K.png          generated images
//   index.html               a report built from every results*.jsonl in OUT_DIR
// Resumable: ids already present in any results*.jsonl are skipped. Every file is written under a temporary
// name and renamed; results lines are appended with one write + fsync each, and a torn last line (a killed
// process) is cut off on the next run.
#pragma once
#include <gill/gill.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace gill::batch {

using Runner = std::function<Result(const Prompt&, const GenerateOptions&)>;
// Runs the lines that carry "candidates" (Engine::score).
using Scorer = std::function<std::vector<CandidateScore>(const Prompt&, const std::vector<std::string>&)>;

struct Shard {
  int index = 0;  // 0-based: shard i takes items i, i+N, i+2N, ... (in input order, blank lines not counted)
  int count = 1;
};
// Parses "i/N" with 0 <= i < N. Throws kInvalidArgument naming the value.
Shard parse_shard(const std::string& text);

struct BatchOptions {
  std::filesystem::path input;    // the JSONL file
  std::filesystem::path out_dir;  // created when missing
  Shard shard;
  GenerateOptions defaults;       // each line's "options" override these
  // When set to true (e.g. by a SIGINT handler): the current item finishes, then run_batch returns.
  const std::atomic<bool>* stop = nullptr;
  // Called before each item is run (done = items finished so far, total = items to run in this call).
  std::function<void(const std::string& id, int64_t done, int64_t total)> on_item;
  bool write_report = true;
  // For lines with "candidates"; without it such a line is an error result naming the missing scorer.
  Scorer scorer;
};

struct BatchSummary {
  int64_t n_items = 0;     // items in the input (non-blank lines)
  int64_t n_in_shard = 0;  // of which in this shard
  int64_t n_skipped = 0;   // already done in an earlier run
  int64_t n_ok = 0, n_errors = 0;  // run now
  bool stopped = false;    // the stop flag ended the run early
  // The items that failed in this run, in order: their error code and message (as in the results file).
  std::vector<std::pair<ErrorCode, std::string>> errors;
  std::filesystem::path results_path, report_path;
};

// Runs every item of the shard not yet done. Item failures (bad lines, missing images, runner errors) become
// error results; only problems with the input file or OUT_DIR itself throw.
BatchSummary run_batch(const BatchOptions& options, const Runner& runner);

// ---- pieces, exposed for tests ----

struct Item {
  int64_t line = 0;     // 1-based line number in the JSONL file
  int64_t ordinal = 0;  // 0-based index among non-blank lines (sharding uses it)
  std::string id;
  Prompt prompt;
  GenerateOptions options;
  std::vector<std::string> candidates;  // "candidates": score these instead of generating
  nlohmann::json prompt_json = nlohmann::json::array();  // as given, plus "path": the resolved image path
  nlohmann::json options_json = nlohmann::json::object();
  bool ok = true;       // false: the line itself is bad; `error` says why
  ErrorCode error_code = ErrorCode::kFormat;
  std::string error;
};

// Reads every non-blank line. Never throws for a bad line (the item carries the error): a line without a usable
// id gets "line:N"; a repeated id is an error recorded as "line:N". Throws kNotFound / kIo for the file.
std::vector<Item> read_items(const std::filesystem::path& jsonl, const GenerateOptions& defaults);

// Applies a JSON "options" object to `options`. Keys: num_words (n), temp (temperature), top_p, seed, steps,
// cfg_scale (guidance_scale), ret_scale_factor, gen_scale_factor, min_word_tokens, max_num_rets,
// always_generate, scheduler. Throws kInvalidArgument naming the key; then runs options.validate().
void apply_options(const nlohmann::json& j, GenerateOptions& options);

std::string results_file_name(const Shard& shard);  // results.jsonl | results.shard-I-of-N.jsonl
// Ids present in every results*.jsonl of out_dir (unparsable lines are ignored).
std::set<std::string> done_ids(const std::filesystem::path& out_dir);
// All result lines of out_dir (every results*.jsonl), sorted by input line.
std::vector<nlohmann::json> read_results(const std::filesystem::path& out_dir);
// A file-name-safe form of an id: [A-Za-z0-9._-] kept, others '_', plus a hash suffix when anything changed.
std::string safe_name(const std::string& id);

// index.html: each item's prompt (text and images) next to its outputs, decisions and timings.
std::string render_report(const std::vector<nlohmann::json>& results, const std::filesystem::path& out_dir,
                          const std::string& title);
// Writes OUT_DIR/index.html (atomically) from read_results(out_dir). Returns its path.
std::filesystem::path write_report(const std::filesystem::path& out_dir, const std::string& title);

}  // namespace gill::batch
