// Batch runs over JSONL (see batch.h): reading items, sharding, resuming, line-atomic results, images.
#include <fcntl.h>
#include <gill/batch.h>
#include <gill/result_json.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "io/atomic_file.h"
#include "util/error.h"
#include "util/json.h"

namespace gill::batch {

namespace fs = std::filesystem;
using detail::str_cat;
using json = nlohmann::json;

Shard parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  auto bad = [&] {
    detail::fail(ErrorCode::kInvalidArgument,
                 str_cat("--shard ", text, ": expected I/N with 0 <= I < N (e.g. 0/4 ... 3/4)"));
  };
  if (slash == std::string::npos || slash == 0 || slash + 1 == text.size()) bad();
  Shard s;
  try {
    size_t n1 = 0, n2 = 0;
    s.index = std::stoi(text.substr(0, slash), &n1);
    s.count = std::stoi(text.substr(slash + 1), &n2);
    if (n1 != slash || n2 != text.size() - slash - 1) bad();
  } catch (const std::logic_error&) {
    bad();
  }
  if (s.count < 1 || s.index < 0 || s.index >= s.count) bad();
  return s;
}

std::string results_file_name(const Shard& shard) {
  if (shard.count == 1) return "results.jsonl";
  return str_cat("results.shard-", shard.index, "-of-", shard.count, ".jsonl");
}

std::string safe_name(const std::string& id) {
  std::string out;
  bool changed = id.empty() || id[0] == '.';
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '-' || c == '_';
    out += ok ? c : '_';
    changed |= !ok;
  }
  if (out.size() > 80) {
    out.resize(80);
    changed = true;
  }
  if (changed) {
    uint32_t h = 2166136261u;  // FNV-1a
    for (unsigned char c : id) h = (h ^ c) * 16777619u;
    char buf[16];
    std::snprintf(buf, sizeof buf, "-%08x", h);
    out += buf;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Options

namespace {

int64_t get_int(const json& v, const std::string& key) {
  if (v.is_number()) {
    try {
      return util::json_get<int64_t>(v);  // integral and in range
    } catch (const json::exception&) {
    }
  }
  detail::fail(ErrorCode::kInvalidArgument, str_cat("options.", key, " = ", v.dump(), ": expected an integer"));
}

float get_float(const json& v, const std::string& key) {
  if (!v.is_number())
    detail::fail(ErrorCode::kInvalidArgument, str_cat("options.", key, " = ", v.dump(), ": expected a number"));
  try {
    return util::json_get<float>(v);
  } catch (const json::exception&) {
    detail::fail(ErrorCode::kInvalidArgument, str_cat("options.", key, " = ", v.dump(), ": out of range"));
  }
}

int get_int32(const json& v, const std::string& key) {
  const int64_t i = get_int(v, key);
  if (i < INT32_MIN || i > INT32_MAX)
    detail::fail(ErrorCode::kInvalidArgument, str_cat("options.", key, " = ", v.dump(), ": out of range"));
  return static_cast<int>(i);
}

}  // namespace

void apply_options(const json& j, GenerateOptions& o) {
  if (!j.is_object())
    detail::fail(ErrorCode::kInvalidArgument, str_cat("options: expected an object, got ", j.dump()));
  for (const auto& [key, v] : j.items()) {
    if (key == "num_words" || key == "n") {
      o.num_words = get_int32(v, key);
    } else if (key == "temp" || key == "temperature") {
      o.temperature = get_float(v, key);
    } else if (key == "top_p") {
      o.top_p = get_float(v, key);
    } else if (key == "seed") {
      const int64_t s = get_int(v, key);
      if (s < 0) detail::fail(ErrorCode::kInvalidArgument, str_cat("options.seed = ", s, ": must be >= 0"));
      o.seed = static_cast<uint64_t>(s);
    } else if (key == "steps") {
      o.steps = get_int32(v, key);
    } else if (key == "cfg_scale" || key == "guidance_scale") {
      o.guidance_scale = get_float(v, key);
    } else if (key == "ret_scale_factor") {
      o.ret_scale_factor = get_float(v, key);
    } else if (key == "gen_scale_factor") {
      o.gen_scale_factor = get_float(v, key);
    } else if (key == "min_word_tokens") {
      o.min_word_tokens = get_int32(v, key);
    } else if (key == "max_num_rets") {
      o.max_num_rets = get_int32(v, key);
    } else if (key == "always_generate") {
      if (!v.is_boolean())
        detail::fail(ErrorCode::kInvalidArgument, str_cat("options.", key, " = ", v.dump(), ": expected true or false"));
      o.always_generate = v.get<bool>();
    } else if (key == "scheduler") {
      if (!v.is_string())
        detail::fail(ErrorCode::kInvalidArgument, str_cat("options.", key, " = ", v.dump(), ": expected a string"));
      o.scheduler = v.get<std::string>();
    } else {
      detail::fail(ErrorCode::kInvalidArgument,
                   str_cat("options.", key, ": unknown option (known: num_words, temp, top_p, seed, steps, cfg_scale, "
                           "ret_scale_factor, gen_scale_factor, min_word_tokens, max_num_rets, always_generate, "
                           "scheduler)"));
    }
  }
  o.validate();
}

// ---------------------------------------------------------------------------------------------------------------
// Reading items

namespace {

void parse_prompt(const json& p, const fs::path& base, Item& item) {
  if (p.is_string()) {
    item.prompt.push_back(Segment::Text(p.get<std::string>()));
    item.prompt_json = json::array({json{{"text", p}}});
    return;
  }
  GILL_CHECK(p.is_array() && !p.empty(), ErrorCode::kFormat,
             "\"prompt\": expected a string or a non-empty array of {\"text\": ...} / {\"image\": ...}");
  for (size_t k = 0; k < p.size(); ++k) {
    const json& seg = p[k];
    GILL_CHECK(seg.is_object() && seg.size() == 1 && (seg.contains("text") || seg.contains("image")),
               ErrorCode::kFormat, "prompt[", k, "]: expected {\"text\": \"...\"} or {\"image\": \"path\"}, got ",
               seg.dump());
    if (seg.contains("text")) {
      GILL_CHECK(seg["text"].is_string(), ErrorCode::kFormat, "prompt[", k, "].text: expected a string");
      item.prompt.push_back(Segment::Text(seg["text"].get<std::string>()));
      item.prompt_json.push_back(seg);
    } else {
      GILL_CHECK(seg["image"].is_string() && !seg["image"].get<std::string>().empty(), ErrorCode::kFormat,
                 "prompt[", k, "].image: expected a non-empty path");
      fs::path path = seg["image"].get<std::string>();
      if (path.is_relative()) path = base / path;
      path = path.lexically_normal();
      std::error_code ec;
      GILL_CHECK(fs::is_regular_file(path, ec), ErrorCode::kNotFound, "prompt[", k, "].image: ", path.string(),
                 ": no such file");
      item.prompt.push_back(Segment::ImageFile(path.string()));
      item.prompt_json.push_back(json{{"image", seg["image"]}, {"path", path.string()}});
    }
  }
}

}  // namespace

std::vector<Item> read_items(const fs::path& jsonl, const GenerateOptions& defaults) {
  const std::string text = io::read_file(jsonl);
  const fs::path base = fs::absolute(jsonl).parent_path();
  std::vector<Item> items;
  std::map<std::string, int64_t> seen;  // id -> line
  std::istringstream in(text);
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    Item item;
    item.line = line_no;
    item.ordinal = static_cast<int64_t>(items.size());
    item.options = defaults;
    item.id = str_cat("line:", line_no);
    try {
      json j;
      try {
        j = json::parse(line);
      } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers like 1e999
        detail::fail(ErrorCode::kFormat, str_cat("bad JSON: ", e.what()));
      }
      GILL_CHECK(j.is_object(), ErrorCode::kFormat, "expected a JSON object, got ", j.type_name());
      if (j.contains("id")) {
        const json& id = j["id"];
        GILL_CHECK(id.is_string() || id.is_number_integer() || id.is_number_unsigned(), ErrorCode::kFormat,
                   "\"id\": expected a string or an integer, got ", id.dump());
        std::string s = id.is_string() ? id.get<std::string>() : id.dump();
        GILL_CHECK(!s.empty(), ErrorCode::kFormat, "\"id\": empty");
        auto [it, fresh] = seen.emplace(s, line_no);
        GILL_CHECK(fresh, ErrorCode::kInvalidArgument, "id \"", s, "\" repeats line ", it->second);
        item.id = s;
      } else {
        detail::fail(ErrorCode::kFormat, "missing \"id\"");
      }
      GILL_CHECK(j.contains("prompt"), ErrorCode::kFormat, "missing \"prompt\"");
      for (const auto& [key, v] : j.items())
        GILL_CHECK(key == "id" || key == "prompt" || key == "options" || key == "candidates", ErrorCode::kFormat,
                   "unknown key \"", key, "\" (expected id, prompt, options, candidates)");
      if (j.contains("candidates")) {
        const json& c = j["candidates"];
        GILL_CHECK(c.is_array() && !c.empty(), ErrorCode::kFormat,
                   "\"candidates\": expected a non-empty array of strings");
        for (size_t k = 0; k < c.size(); ++k) {
          GILL_CHECK(c[k].is_string(), ErrorCode::kFormat, "candidates[", k, "]: expected a string, got ", c[k].dump());
          item.candidates.push_back(c[k].get<std::string>());
        }
      }
      if (j.contains("options")) {
        item.options_json = j["options"];
        apply_options(j["options"], item.options);
      }
      parse_prompt(j["prompt"], base, item);
    } catch (const Error& e) {
      item.ok = false;
      item.error_code = e.code();
      item.error = str_cat(jsonl.filename().string(), ":", line_no, ": ", e.what());
    }
    items.push_back(std::move(item));
  }
  return items;
}

// ---------------------------------------------------------------------------------------------------------------
// Results files

namespace {

bool is_results_file(const fs::path& p) {
  const std::string n = p.filename().string();
  return n.rfind("results", 0) == 0 && p.extension() == ".jsonl";
}

template <typename Fn>
void for_each_result_line(const fs::path& out_dir, Fn&& fn) {
  std::error_code ec;
  if (!fs::is_directory(out_dir, ec)) return;
  for (const auto& entry : fs::directory_iterator(out_dir, ec)) {
    if (!entry.is_regular_file() || !is_results_file(entry.path())) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // no '\n': a torn last line, written by a process that was killed
      try {
        json j = json::parse(line);
        if (j.is_object() && j.contains("id") && j["id"].is_string()) fn(std::move(j));
      } catch (const json::exception&) {
      }
    }
  }
}

// Opens the results file for appending; a last line without '\n' (the process was killed mid-write) is cut off.
int open_results(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) detail::fail(ErrorCode::kIo, str_cat(path.string(), ": cannot open: ", std::strerror(errno)));
  struct stat st {};
  ::fstat(fd, &st);
  if (st.st_size > 0) {
    // Find the last '\n' by reading backwards in blocks.
    off_t end = st.st_size, keep = 0;
    char buf[4096];
    while (end > 0) {
      const off_t start = end > static_cast<off_t>(sizeof buf) ? end - static_cast<off_t>(sizeof buf) : 0;
      const ssize_t n = ::pread(fd, buf, static_cast<size_t>(end - start), start);
      if (n <= 0) break;
      bool found = false;
      for (ssize_t i = n - 1; i >= 0; --i)
        if (buf[i] == '\n') {
          keep = start + i + 1;
          found = true;
          break;
        }
      if (found) break;
      end = start;
    }
    if (keep != st.st_size && ::ftruncate(fd, keep) != 0) {
      ::close(fd);
      detail::fail(ErrorCode::kIo, str_cat(path.string(), ": cannot cut a torn last line: ", std::strerror(errno)));
    }
  }
  return fd;
}

void append_line(int fd, const fs::path& path, const std::string& line) {
  // One write(2) of the whole line with O_APPEND, then fsync: a reader sees the line whole or not at all.
  const std::string data = line + "\n";
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) detail::fail(ErrorCode::kIo, str_cat(path.string(), ": write failed: ", std::strerror(errno)));
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) detail::fail(ErrorCode::kIo, str_cat(path.string(), ": fsync failed: ", std::strerror(errno)));
}

// Removes temporaries (NAME.tmp-PID-RAND) left by killed runs: only when that PID is not running here, and for
// shards (whose other processes may run on other machines sharing OUT_DIR) only when older than an hour.
void remove_stale_temps(const fs::path& dir, bool sharded) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string n = entry.path().filename().string();
    const auto pos = n.rfind(".tmp-");
    if (pos == std::string::npos || !entry.is_regular_file()) continue;
    const long pid = std::strtol(n.c_str() + pos + 5, nullptr, 10);
    if (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH)) continue;
    if (sharded) {
      const auto age = fs::file_time_type::clock::now() - fs::last_write_time(entry.path(), ec);
      if (ec || age < std::chrono::hours(1)) continue;
    }
    fs::remove(entry.path(), ec);
  }
}

}  // namespace

std::set<std::string> done_ids(const fs::path& out_dir) {
  std::set<std::string> ids;
  for_each_result_line(out_dir, [&](json j) { ids.insert(j["id"].get<std::string>()); });
  return ids;
}

std::vector<json> read_results(const fs::path& out_dir) {
  std::vector<json> all;
  std::set<std::string> ids;
  for_each_result_line(out_dir, [&](json j) {
    if (ids.insert(j["id"].get<std::string>()).second) all.push_back(std::move(j));
  });
  std::stable_sort(all.begin(), all.end(), [](const json& a, const json& b) {
    return a.value("line", int64_t{0}) < b.value("line", int64_t{0});
  });
  return all;
}

// ---------------------------------------------------------------------------------------------------------------
// The run

BatchSummary run_batch(const BatchOptions& options, const Runner& runner) {
  GILL_CHECK(runner, ErrorCode::kInvalidArgument, "run_batch: no runner");
  GILL_CHECK(options.shard.count >= 1 && options.shard.index >= 0 && options.shard.index < options.shard.count,
             ErrorCode::kInvalidArgument, "shard ", options.shard.index, "/", options.shard.count, ": out of range");
  options.defaults.validate();
  BatchSummary summary;
  std::vector<Item> items = read_items(options.input, options.defaults);
  summary.n_items = static_cast<int64_t>(items.size());

  const fs::path out = options.out_dir;
  std::error_code ec;
  fs::create_directories(out / "images", ec);
  if (ec) detail::fail(ErrorCode::kIo, str_cat(out.string(), ": cannot create folder: ", ec.message()));
  const bool sharded = options.shard.count > 1;
  remove_stale_temps(out, sharded);
  remove_stale_temps(out / "images", sharded);

  summary.results_path = out / results_file_name(options.shard);
  const int fd = open_results(summary.results_path);  // cuts a torn last line first
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  const std::set<std::string> done = done_ids(out);

  std::vector<const Item*> todo;
  for (const Item& item : items) {
    if (item.ordinal % options.shard.count != options.shard.index) continue;
    ++summary.n_in_shard;
    if (done.count(item.id)) {
      ++summary.n_skipped;
      continue;
    }
    todo.push_back(&item);
  }

  const std::string shard_str = str_cat(options.shard.index, "/", options.shard.count);
  int64_t n_run = 0;
  for (const Item* item : todo) {
    if (options.stop && options.stop->load()) {
      summary.stopped = true;
      break;
    }
    if (options.on_item) options.on_item(item->id, n_run, static_cast<int64_t>(todo.size()));
    json r{{"id", item->id}, {"line", item->line}, {"prompt", item->prompt_json}};
    if (!item->options_json.empty()) r["options"] = item->options_json;
    if (sharded) r["shard"] = shard_str;
    const auto t0 = std::chrono::steady_clock::now();
    const std::string where = str_cat(options.input.filename().string(), ":", item->line, " (id ", item->id, ")");
    auto call = [&](auto&& fn) {
      try {
        return fn();
      } catch (const Error& e) {
        throw e.with_context(where);
      } catch (const std::exception& e) {
        throw Error(ErrorCode::kInternal, str_cat(where, ": ", e.what()));
      }
    };
    try {
      if (!item->ok) throw Error(item->error_code, item->error);
      if (!item->candidates.empty()) {
        GILL_CHECK(options.scorer, ErrorCode::kUnsupported, where, ": \"candidates\" given but this run has no scorer");
        const auto scores = call([&] { return options.scorer(item->prompt, item->candidates); });
        json js = json::array();
        size_t best = 0;
        for (size_t k = 0; k < scores.size(); ++k) {
          js.push_back(json{{"candidate", scores[k].candidate}, {"log_likelihood", scores[k].log_likelihood},
                            {"n_scored", scores[k].n_scored}, {"n_positions", scores[k].n_positions}});
          if (scores[k].log_likelihood > scores[best].log_likelihood) best = k;
        }
        r["status"] = "ok";
        r["scores"] = std::move(js);
        r["best"] = best;
        r["timings"] = {{"item_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}};
      } else {
        Result res = call([&] { return runner(item->prompt, item->options); });
        // Generated images as images/ID.gen_K.png with their settings (write_turn_files); the line names them
        // relative to OUT_DIR, as the report links them.
        write_turn_files(res, {(out / "images").string(), safe_name(item->id) + ".", false, "gill batch"},
                         item->options);
        for (ImageBlock& b : res.images)
          if (!b.generated_file.empty())
            b.generated_file = str_cat("images/", fs::path(b.generated_file).filename().string());
        json turn = result_json(res, {nullptr, &item->options});
        turn["timings"]["item_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        r["status"] = "ok";
        r.update(turn);
      }
      ++summary.n_ok;
    } catch (const Error& e) {
      r["status"] = "error";
      r["error"] = json{{"code", error_code_name(e.code())}, {"message", e.what()}};
      ++summary.n_errors;
      summary.errors.emplace_back(e.code(), e.what());
    }
    // dump() with replace: invalid UTF-8 in generated text must not lose the line.
    append_line(fd, summary.results_path, dump_json(r, -1));
    ++n_run;
  }
  if (options.on_item && !summary.stopped) options.on_item("", n_run, static_cast<int64_t>(todo.size()));
  if (options.write_report) summary.report_path = write_report(out, options.input.filename().string());
  return summary;
}

}  // namespace gill::batch
