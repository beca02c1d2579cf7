// gill run — one GILL turn on an interleaved prompt (-m ROOT or --gill DIR; -p/--image in command-line order),
// or, with only --lm, plain OPT text generation. Text streams to stdout; images and the transcript go to -o.
#include <gill/gill.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "api_options.h"
#include "cli_common.h"
#include "gill_outputs.h"
#include "io/tensor_dump.h"
#include "output_checks.h"
#include "pipeline/lm_generate.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/utf8.h"

namespace gill::cli {

namespace fs = std::filesystem;

namespace {

std::vector<int64_t> parse_ids(const std::string& s) {
  std::vector<int64_t> ids;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      ids.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      detail::fail(ErrorCode::kInvalidArgument, "--ids: '" + item + "' is not an integer");
    }
  }
  return ids;
}

struct RunArgs {
  EngineOptions engine;
  GenerateOptions gen;
  std::vector<std::string> prompts, images;
  Prompt prompt;  // -p / --image in command-line order
  std::string ids, dump_path, out_dir, json_path;
  // LM-only options.
  int64_t top_k = 0;
  bool stop_newline = false, no_eos = false, no_cache = false, dump_hidden = false;
  std::vector<std::string> stops;
};

int run_lm_only(RunArgs& a) {
  pipeline::LmRunOptions o;
  o.lm_dir = a.engine.lm_dir;
  GILL_CHECK(a.images.empty(), ErrorCode::kInvalidArgument,
             "gill run: --image needs a GILL model (-m WEIGHTS_ROOT or --gill DIR); --lm alone runs the LLM only");
  GILL_CHECK(a.prompts.size() <= 1, ErrorCode::kInvalidArgument, "gill run --lm: give one -p TEXT (got ",
             a.prompts.size(), ")");
  if (!a.prompts.empty()) o.prompt = a.prompts[0];
  if (!a.ids.empty()) o.prompt_ids = parse_ids(a.ids);
  GILL_CHECK(!o.prompt.empty() || !o.prompt_ids.empty(), ErrorCode::kInvalidArgument,
             "gill run: give a prompt with -p TEXT or --ids");
  o.max_new_tokens = a.gen.num_words;
  o.sampling.temperature = a.gen.temperature;
  o.sampling.top_p = a.gen.top_p;
  o.sampling.top_k = a.top_k;
  o.sampling.seed = a.gen.seed;
  o.dtype = a.engine.dtype == "auto" ? "fp32" : a.engine.dtype;
  o.stop_on_newline = a.stop_newline;
  o.stop_strings = a.stops;
  o.stop_on_eos = !a.no_eos;
  o.use_cache = !a.no_cache;
  o.dump_hidden = a.dump_hidden;
  if (!a.dump_path.empty()) check_output_file(a.dump_path, "--dump-tensors");
  io::TensorDump dump;
  auto r = pipeline::run_lm(o, &std::cout, a.dump_path.empty() ? nullptr : &dump);
  if (!a.dump_path.empty()) dump.write(a.dump_path);
  spdlog::info("load {:.2f} s, prefill {:.3f} s ({} tokens), decode {:.3f} s ({} tokens), stop: {}", r.load_s,
               r.prefill_s, r.prompt_ids.size(), r.decode_s, r.new_ids.size(), r.stop_reason);
  return 0;
}

int run_gill(RunArgs& a, const Context& ctx) {
  GILL_CHECK(a.ids.empty(), ErrorCode::kInvalidArgument, "gill run: --ids is for the LLM-only mode (--lm without -m)");
  GILL_CHECK(!a.prompt.empty(), ErrorCode::kInvalidArgument,
             "empty prompt: give at least one -p TEXT or --image FILE");
  GILL_CHECK(!a.out_dir.empty(), ErrorCode::kInvalidArgument, "gill run: give the output folder with -o OUT_DIR");
  for (size_t k = 0, n = 0; k < a.prompt.size(); ++k)
    if (a.prompt[k].kind == Segment::Kind::kText) detail::require_utf8(a.prompt[k].text, detail::str_cat("-p #", ++n));
  // Every output must be writable before gigabytes of weights are loaded.
  check_output_dir(a.out_dir, "-o");
  if (!a.json_path.empty()) check_output_file(a.json_path, "--json");
  if (!a.dump_path.empty()) check_output_file(a.dump_path, "--dump-tensors");
  // Decode every image before loading gigabytes of weights.
  Prompt prompt = a.prompt;
  for (auto& s : prompt)
    if (s.kind == Segment::Kind::kImageFile) s = Segment::Pixels(read_image(s.image_path));
  a.gen.dump_tensors = a.dump_path;
  a.gen.validate();

  const ProgressStyle style = progress_style_for(stderr, ctx.verbosity < 0);
  EngineOptions eo = a.engine;
  eo.on_progress = make_progress_callback(style);
  Engine engine(eo);
  GenerateOptions go = a.gen;
  // Text streams to stdout; the bar shows denoising only (a token bar would interleave with the text).
  go.on_progress = [bar = make_progress_callback(style)](const std::string& stage, int64_t done, int64_t total) {
    if (stage != "tokens") bar(stage, done, total);
  };
  go.on_token = [](const std::string& piece) {
    std::cout << piece << std::flush;
    return true;
  };
  Result r = engine.generate(prompt, go);
  std::cout << "\n";
  TurnFiles files = write_turn_files(r, a.out_dir, "", a.gen);
  print_image_lines(r, files, std::cout);
  if (!a.json_path.empty()) {
    nlohmann::json j = turn_json(r, files, a.gen);
    nlohmann::json pj = nlohmann::json::array();
    for (const auto& s : a.prompt)
      pj.push_back(s.kind == Segment::Kind::kText ? nlohmann::json{{"text", s.text}}
                                                  : nlohmann::json{{"image", s.image_path}});
    j["prompt"] = pj;
    write_json_file(a.json_path, j);
  }
  spdlog::info("prompt {} tokens in {:.2f} s, {} new tokens in {:.2f} s, retrieval {:.2f} s, generation {:.2f} s",
               r.timings.prompt_tokens, r.timings.prompt_s, r.timings.new_tokens, r.timings.decode_s,
               r.timings.retrieval_s, r.timings.generation_s);
  return 0;
}

}  // namespace

void register_run(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand(
      "run",
      "One GILL turn on an interleaved prompt (-m ROOT, -p/--image in order), or OPT text generation (--lm only)");
  auto a = std::make_shared<RunArgs>();
  add_engine_options(sub, a->engine);
  add_generate_options(sub, a->gen);
  auto* p_opt = sub->add_option("-p,--prompt", a->prompts, "Prompt text (repeatable; order with --image matters)");
  auto* i_opt = sub->add_option("--image", a->images, "Prompt image file (repeatable)");
  sub->add_option("-o,--out", a->out_dir, "Output folder for images (created when missing)");
  sub->add_option("--json", a->json_path, "Write the transcript (text, decisions, scores, images, ids, timings)");
  sub->add_option("--dump-tensors", a->dump_path, "Write every stage's tensors to this .safetensors file");
  sub->add_option("--ids", a->ids, "LLM-only: prompt as comma-separated token ids");
  sub->add_option("--top-k", a->top_k, "LLM-only: keep the k most likely tokens (0 = off)")->capture_default_str();
  sub->add_flag("--stop-newline", a->stop_newline, "LLM-only: stop at the first generated newline");
  sub->add_option("--stop", a->stops, "LLM-only: stop when the continuation contains this string (repeatable)");
  sub->add_flag("--no-eos-stop", a->no_eos, "LLM-only: keep generating after </s>");
  sub->add_flag("--no-cache", a->no_cache, "LLM-only: recompute the whole sequence each step (no KV cache)");
  sub->add_flag("--dump-hidden", a->dump_hidden, "LLM-only: with --dump-tensors, also lm.hidden_states");
  sub->callback([&ctx, a, sub, p_opt, i_opt] {
    // The interleaved prompt: -p and --image values in the order they were given.
    a->prompt.clear();
    size_t np = 0, ni = 0;
    for (const CLI::Option* o : sub->parse_order()) {
      if (o == p_opt) a->prompt.push_back(Segment::Text(a->prompts.at(np++)));
      if (o == i_opt) a->prompt.push_back(Segment::ImageFile(a->images.at(ni++)));
    }
    const bool gill_mode = !a->engine.weights_root.empty() || !a->engine.gill_dir.empty();
    GILL_CHECK(gill_mode || !a->engine.lm_dir.empty(), ErrorCode::kInvalidArgument,
               "gill run: give -m WEIGHTS_ROOT (or --gill DIR with --lm, --clip, --sd), or --lm DIR for the LLM only");
    ctx.action = [&ctx, a, gill_mode] { return gill_mode ? run_gill(*a, ctx) : run_lm_only(*a); };
  });
}

}  // namespace gill::cli
