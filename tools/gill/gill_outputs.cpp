#include "gill_outputs.h"

#include <cstdio>

#include "cli_common.h"

namespace gill::cli {

namespace fs = std::filesystem;

namespace {
bool is_url(const std::string& p) { return p.find("://") != std::string::npos; }
std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}
}  // namespace

TurnFiles write_turn_files(const Result& r, const fs::path& out_dir, const std::string& prefix,
                           const GenerateOptions& gen) {
  TurnFiles files;
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  require(!ec && fs::is_directory(out_dir), ErrorCode::kIo,
          cat(out_dir.string(), ": cannot create the output folder", ec ? ": " + ec.message() : std::string()));
  for (size_t k = 0; k < r.images.size(); ++k) {
    const ImageBlock& b = r.images[k];
    std::string gen_path;
    if (b.generated) {
      const fs::path p = out_dir / cat(prefix, "gen_", k, ".png");
      write_png(*b.generated, p.string(),
                    {{"caption", b.caption},
                     {"seed", std::to_string(b.seed)},
                     {"steps", std::to_string(gen.steps)},
                     {"cfg_scale", fmt(gen.guidance_scale)},
                     {"scheduler", gen.scheduler},
                     {"Software", "gill run"}});
      gen_path = p.string();
    }
    files.generated.push_back(gen_path);
    std::vector<std::string> rets;
    for (size_t i = 0; i < b.retrieved.size(); ++i) {
      const auto& h = b.retrieved[i];
      std::string copy;
      if (!is_url(h.path) && fs::is_regular_file(h.path, ec)) {
        const fs::path dst = out_dir / cat(prefix, "ret_", k, "_", i, fs::path(h.path).extension().string());
        // Copy under a temporary name, then rename: never a half-written file.
        write_file_atomic(dst.string(), read_file(h.path));
        copy = dst.string();
      }
      rets.push_back(copy);
    }
    files.retrieved.push_back(rets);
  }
  return files;
}

void print_image_lines(const Result& r, const TurnFiles& files, std::ostream& out) {
  for (size_t k = 0; k < r.images.size(); ++k) {
    const ImageBlock& b = r.images[k];
    const std::string probs = cat("p_gen ", fmt(b.p_gen), ", p_ret ", fmt(b.p_ret));
    if (b.decision == "gen" && !files.generated[k].empty()) {
      out << "[image " << k + 1 << ": generated (" << probs << ") -> " << files.generated[k] << "]\n";
    } else if (!b.retrieved.empty()) {
      const auto& h = b.retrieved[0];
      const std::string where = files.retrieved[k][0].empty() ? h.path : files.retrieved[k][0];
      out << "[image " << k + 1 << ": retrieved #" << h.index << " (score " << fmt(h.score) << "; " << probs << ") -> "
          << where << "]\n";
      if (!files.generated[k].empty())
        out << "[image " << k + 1 << ": also generated (--always-generate) -> " << files.generated[k] << "]\n";
    } else if (!files.generated[k].empty()) {
      out << "[image " << k + 1 << ": generated (" << probs << ") -> " << files.generated[k] << "]\n";
    } else {
      out << "[image " << k + 1 << ": decision '" << b.decision << "' (" << probs
          << ") but nothing to show: no retrieval index and Stable Diffusion not loaded]\n";
    }
  }
}

nlohmann::json turn_json(const Result& r, const TurnFiles& files, const GenerateOptions& gen) {
  nlohmann::json blocks = nlohmann::json::array();
  for (size_t k = 0; k < r.images.size(); ++k) {
    const ImageBlock& b = r.images[k];
    nlohmann::json rets = nlohmann::json::array();
    for (size_t i = 0; i < b.retrieved.size(); ++i) {
      const auto& h = b.retrieved[i];
      nlohmann::json jr{{"index", h.index}, {"score", h.score}, {"source", h.path}};
      if (!files.retrieved[k][i].empty()) jr["file"] = files.retrieved[k][i];
      if (is_url(h.path)) jr["url"] = h.path;  // reported, never fetched
      rets.push_back(jr);
    }
    nlohmann::json jb{{"caption", b.caption},
                      {"decision", b.decision},
                      {"probabilities", {{"gen", b.p_gen}, {"ret", b.p_ret}}},
                      {"retrieved", rets}};
    if (!files.generated[k].empty())
      jb["generated"] = {{"file", files.generated[k]}, {"seed", b.seed}, {"rank_score", b.gen_rank_score}};
    blocks.push_back(jb);
  }
  return {{"text", r.text},
          {"trailing_text", r.trailing_text},
          {"token_ids", r.token_ids},
          {"images", blocks},
          {"settings",
           {{"num_words", gen.num_words},
            {"min_word_tokens", gen.min_word_tokens},
            {"ret_scale_factor", gen.ret_scale_factor},
            {"gen_scale_factor", gen.gen_scale_factor},
            {"temperature", gen.temperature},
            {"top_p", gen.top_p},
            {"top_k", gen.top_k},
            {"max_num_rets", gen.max_num_rets},
            {"seed", gen.seed},
            {"steps", gen.steps},
            {"cfg_scale", gen.guidance_scale},
            {"scheduler", gen.scheduler},
            {"always_generate", gen.always_generate}}},
          {"timings",
           {{"prompt_s", r.timings.prompt_s},
            {"decode_s", r.timings.decode_s},
            {"retrieval_s", r.timings.retrieval_s},
            {"generation_s", r.timings.generation_s},
            {"total_s", r.timings.total_s},
            {"prompt_tokens", r.timings.prompt_tokens},
            {"new_tokens", r.timings.new_tokens},
            {"threads", r.timings.threads}}}};
}

void write_json_file(const fs::path& path, const nlohmann::json& j) { write_file_atomic(path.string(), j.dump(2) + "\n"); }

}  // namespace gill::cli
