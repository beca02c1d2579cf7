// The one serialiser of results (gill/result_json.h, docs/result-schema.md) and the one writer of a turn's files.
#include <gill/result_json.h>

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "util/error.h"

namespace gill {

namespace fs = std::filesystem;
using detail::str_cat;
using json = nlohmann::json;

bool is_url(const std::string& path) {
  // RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://".
  const size_t colon = path.find("://");
  if (colon == std::string::npos || colon == 0) return false;
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (!alpha(path[0])) return false;
  for (size_t i = 1; i < colon; ++i) {
    const char c = path[i];
    if (!alpha(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

namespace {

std::string result_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

json prompt_json(const Prompt& p) {
  json out = json::array();
  for (const Segment& s : p) {
    if (s.kind == Segment::Kind::kText) {
      out.push_back({{"text", s.text}});
    } else if (s.kind == Segment::Kind::kImageFile || !s.image_path.empty()) {
      out.push_back({{"image", s.image_path}});
    } else {
      out.push_back({{"image", nullptr}, {"width", s.image.width}, {"height", s.image.height}});
    }
  }
  return out;
}

json block_json(const ImageBlock& b) {
  json rets = json::array();
  for (const RetrievedImage& h : b.retrieved) {
    json jr{{"index", h.index}, {"score", h.score}, {"path", h.path}};
    if (is_url(h.path)) jr["url"] = h.path;  // reported, never fetched
    if (!h.file.empty()) jr["file"] = h.file;
    rets.push_back(std::move(jr));
  }
  json gen = nullptr;
  if (b.generated) {
    gen = {{"seed", b.seed},
           {"rank_score", b.gen_rank_score},
           {"width", b.generated->width},
           {"height", b.generated->height}};
    if (!b.generated_file.empty()) gen["file"] = b.generated_file;
    if (!b.generated_url.empty()) gen["url"] = b.generated_url;
  }
  return {{"caption", b.caption},
          {"decision", b.decision},
          {"probabilities", {{"gen", b.p_gen}, {"ret", b.p_ret}}},
          {"retrieved", std::move(rets)},
          {"generated", std::move(gen)}};
}

json timings_json(const Timings& t) {
  return {{"load_s", t.load_s},
          {"prompt_s", t.prompt_s},
          {"decode_s", t.decode_s},
          {"retrieval_s", t.retrieval_s},
          {"generation_s", t.generation_s},
          {"total_s", t.total_s},
          {"prompt_tokens", t.prompt_tokens},
          {"new_tokens", t.new_tokens},
          {"threads", t.threads}};
}

json settings_json(const GenerateOptions& o) {
  return {{"num_words", o.num_words},
          {"min_word_tokens", o.min_word_tokens},
          {"ret_scale_factor", o.ret_scale_factor},
          {"gen_scale_factor", o.gen_scale_factor},
          {"temperature", o.temperature},
          {"top_p", o.top_p},
          {"top_k", o.top_k},
          {"max_num_rets", o.max_num_rets},
          {"seed", o.seed},
          {"steps", o.steps},
          {"cfg_scale", o.guidance_scale},
          {"scheduler", o.scheduler},
          {"always_generate", o.always_generate}};
}

json compute_json(const ComputeInfo& c) {
  return {{"device", c.device},           {"dtype", c.dtype},
          {"requested", c.requested},     {"compute", c.compute},
          {"gemv_kernel", c.gemv_kernel}, {"native_bf16", c.native_bf16},
          {"weights", c.weights}};
}

json result_json(const Result& r, const TurnRecord& record) {
  json images = json::array();
  for (const ImageBlock& b : r.images) images.push_back(block_json(b));
  json j{{"schema_version", kResultSchemaVersion}, {"mode", "gill"}};
  if (record.turn > 0) j["turn"] = record.turn;
  if (record.prompt) j["prompt"] = prompt_json(*record.prompt);
  j["text"] = r.text;
  j["trailing_text"] = r.trailing_text;
  j["token_ids"] = r.token_ids;
  j["images"] = std::move(images);
  if (record.settings) j["settings"] = settings_json(*record.settings);
  j["timings"] = timings_json(r.timings);
  j["compute"] = compute_json(r.compute);
  return j;
}

json lm_result_json(const LmResult& r, const LmOptions& o) {
  Timings t;
  t.load_s = r.load_s;
  t.prompt_s = r.prefill_s;
  t.decode_s = r.decode_s;
  t.total_s = r.load_s + r.prefill_s + r.decode_s;
  t.prompt_tokens = static_cast<int64_t>(r.prompt_ids.size());
  t.new_tokens = static_cast<int64_t>(r.new_ids.size());
  t.threads = r.threads;
  return {{"schema_version", kResultSchemaVersion},
          {"mode", "lm"},
          {"prompt", o.prompt_ids.empty() ? json::array({{{"text", o.prompt}}}) : json::array()},
          {"prompt_ids", r.prompt_ids},
          {"text", r.text},
          {"token_ids", r.new_ids},
          {"stop_reason", r.stop_reason},
          {"settings",
           {{"max_new_tokens", o.max_new_tokens},
            {"temperature", o.temperature},
            {"top_p", o.top_p},
            {"top_k", o.top_k},
            {"seed", o.seed},
            {"stop_on_eos", o.stop_on_eos},
            {"stop_on_newline", o.stop_on_newline},
            {"stop_strings", o.stop_strings},
            {"use_cache", o.use_cache}}},
          {"timings", timings_json(t)},
          {"compute", compute_json(r.compute)}};
}

std::string dump_json(const json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

std::string to_json(const Result& r, const TurnRecord& record, int indent) {
  return dump_json(result_json(r, record), indent);
}

std::string image_lines(const Result& r) {
  std::ostringstream out;
  for (size_t k = 0; k < r.images.size(); ++k) {
    const ImageBlock& b = r.images[k];
    const std::string probs = str_cat("p_gen ", result_number(b.p_gen), ", p_ret ", result_number(b.p_ret));
    const std::string& gen = b.generated_file;
    if (b.decision == "gen" && !gen.empty()) {
      out << "[image " << k + 1 << ": generated (" << probs << ") -> " << gen << "]\n";
    } else if (!b.retrieved.empty()) {
      const auto& h = b.retrieved[0];
      out << "[image " << k + 1 << ": retrieved #" << h.index << " (score " << result_number(h.score) << "; " << probs
          << ") -> " << (h.file.empty() ? h.path : h.file) << "]\n";
      if (!gen.empty()) out << "[image " << k + 1 << ": also generated (--always-generate) -> " << gen << "]\n";
    } else if (!gen.empty()) {
      out << "[image " << k + 1 << ": generated (" << probs << ") -> " << gen << "]\n";
    } else {
      out << "[image " << k + 1 << ": decision '" << b.decision << "' (" << probs
          << ") but nothing to show: no retrieval index and Stable Diffusion not loaded]\n";
    }
  }
  return out.str();
}

std::vector<std::pair<std::string, std::string>> png_settings(const ImageBlock& b, const GenerateOptions& o,
                                                              const std::string& software) {
  return {{"caption", b.caption},
          {"seed", std::to_string(b.seed)},
          {"steps", std::to_string(o.steps)},
          {"cfg_scale", result_number(o.guidance_scale)},
          {"scheduler", o.scheduler},
          {"gen_scale_factor", result_number(o.gen_scale_factor)},
          {"Software", software}};
}

void write_turn_files(Result& r, const OutputFiles& where, const GenerateOptions& settings) {
  const fs::path dir = where.dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  GILL_CHECK(!ec && fs::is_directory(dir), ErrorCode::kIo, dir.string(), ": cannot create the output folder",
             ec ? ": " + ec.message() : std::string());
  for (size_t k = 0; k < r.images.size(); ++k) {
    ImageBlock& b = r.images[k];
    if (b.generated && !b.generated->empty()) {
      const fs::path p = dir / str_cat(where.prefix, "gen_", k, ".png");
      write_png(*b.generated, p.string(), png_settings(b, settings, where.software));
      b.generated_file = p.string();
    }
    if (!where.copy_retrieved) continue;
    for (size_t i = 0; i < b.retrieved.size(); ++i) {
      RetrievedImage& h = b.retrieved[i];
      if (is_url(h.path) || !fs::is_regular_file(h.path, ec)) continue;
      const fs::path dst = dir / str_cat(where.prefix, "ret_", k, "_", i, fs::path(h.path).extension().string());
      // Copied under a temporary name, then renamed: never a half-written file.
      write_file_atomic(dst.string(), read_file(h.path));
      h.file = dst.string();
    }
  }
}

}  // namespace gill
