// gill score — the reference's log-likelihood of each candidate text as a continuation of an interleaved prompt
// (gill::Engine::score; GILL.get_log_likelihood_scores): -m ROOT, -p/--image in command-line order, candidates
// from -c (repeatable) and/or --candidates FILE (one a line). Prints one line per candidate in input order
// (score, scored tokens, candidate) and the best one; --json writes every score to a file.
#include <gill/gill.h>
#include <gill/progress.h>

#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "api_options.h"
#include "cli_common.h"
#include "gill_outputs.h"
#include "output_checks.h"

namespace gill::cli {

namespace {

struct ScoreArgs {
  EngineOptions engine;
  std::vector<std::string> prompts, images, candidates;
  std::string candidates_file, json_path;
  Prompt prompt;  // -p / --image in command-line order
};

// One candidate a line; a trailing "\r" is dropped, blank lines are refused (they would score nothing).
std::vector<std::string> read_candidates_file(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<std::string> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    require(!line.empty(), ErrorCode::kInvalidArgument,
            cat("--candidates ", path, ": line ", n, " is empty (one candidate a line)"));
    out.push_back(line);
  }
  return out;
}

int run_score(ScoreArgs& a, const Context& ctx) {
  std::vector<std::string> candidates = a.candidates;
  if (!a.candidates_file.empty()) {
    auto more = read_candidates_file(a.candidates_file);
    candidates.insert(candidates.end(), more.begin(), more.end());
  }
  require(!candidates.empty(), ErrorCode::kInvalidArgument,
          "gill score: give at least one candidate with -c TEXT or --candidates FILE");
  for (size_t k = 0, n = 0; k < a.prompt.size(); ++k)
    if (a.prompt[k].kind == Segment::Kind::kText) check_utf8(a.prompt[k].text, cat("-p #", ++n));
  if (!a.json_path.empty()) check_output_file(a.json_path, "--json");
  Prompt prompt = a.prompt;  // images decoded before the weights are loaded
  for (auto& s : prompt)
    if (s.kind == Segment::Kind::kImageFile) s = Segment::Pixels(read_image(s.image_path));

  EngineOptions eo = a.engine;
  eo.threads = ctx.threads;
  eo.load_sd = false;  // scoring runs the LM and CLIP only
  eo.on_progress = make_progress_callback(progress_style_for(stderr, ctx.verbosity < 0));
  Engine engine(eo);
  const auto scores = engine.score(prompt, candidates);

  size_t best = 0;
  for (size_t k = 1; k < scores.size(); ++k)
    if (scores[k].log_likelihood > scores[best].log_likelihood) best = k;
  nlohmann::json j;
  nlohmann::json pj = nlohmann::json::array();
  for (const auto& s : a.prompt)
    pj.push_back(s.kind == Segment::Kind::kText ? nlohmann::json{{"text", s.text}}
                                                : nlohmann::json{{"image", s.image_path}});
  j["prompt"] = pj;
  j["best"] = best;
  for (const auto& s : scores) {
    j["scores"].push_back({{"candidate", s.candidate},
                           {"log_likelihood", s.log_likelihood},
                           {"n_scored", s.n_scored},
                           {"n_positions", s.n_positions}});
    std::cout << std::fixed << std::setprecision(6) << s.log_likelihood << "\t" << s.n_scored << "\t" << s.candidate
              << "\n";
  }
  std::cout << "best: " << best << "\t" << scores[best].candidate << std::endl;
  if (!a.json_path.empty()) write_json_file(a.json_path, j);
  return 0;
}

}  // namespace

void register_score(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand(
      "score",
      "Log-likelihood of candidate texts after an interleaved prompt (the reference's get_log_likelihood_scores)");
  auto a = std::make_shared<ScoreArgs>();
  add_engine_options(sub, a->engine);
  auto* p_opt = sub->add_option("-p,--prompt", a->prompts, "Prompt text (repeatable; order with --image matters)");
  auto* i_opt = sub->add_option("--image", a->images, "Prompt image file (repeatable)");
  sub->add_option("-c,--candidate", a->candidates, "A candidate text (repeatable)");
  sub->add_option("--candidates", a->candidates_file, "A file of candidate texts, one a line (after the -c ones)");
  sub->add_option("--json", a->json_path, "Write the prompt and every candidate's score to this JSON file");
  sub->callback([&ctx, a, sub, p_opt, i_opt] {
    a->prompt.clear();
    size_t np = 0, ni = 0;
    for (const CLI::Option* o : sub->parse_order()) {
      if (o == p_opt) a->prompt.push_back(Segment::Text(a->prompts.at(np++)));
      if (o == i_opt) a->prompt.push_back(Segment::ImageFile(a->images.at(ni++)));
    }
    require(!a->engine.weights_root.empty() || !a->engine.gill_dir.empty(), ErrorCode::kInvalidArgument,
            "gill score: give -m WEIGHTS_ROOT (or --gill DIR with --lm and --clip)");
    ctx.action = [&ctx, a] { return run_score(*a, ctx); };
  });
}

}  // namespace gill::cli
