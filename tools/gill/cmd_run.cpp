// gill run — one GILL turn on an interleaved prompt (-m ROOT or --gill DIR; -p/--image in command-line order),
// or, with only --lm, plain OPT text generation (gill::generate_text). Text streams to stdout; images go to -o,
// the transcript to --json. Every option is used by the mode it is given in, or refused by name.
#include <gill/gill.h>
#include <gill/progress.h>
#include <gill/result_json.h>
#include <gill/tools.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>

#include "api_options.h"
#include "cli_common.h"
#include "gill_outputs.h"
#include "output_checks.h"

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
      fail(ErrorCode::kInvalidArgument, "--ids: '" + item + "' is not an integer");
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
  bool stop_newline = false, no_eos = false, no_cache = false, dump_hidden = false;
  std::vector<std::string> stops;
};

// Each mode honours every option it accepts; an option of the other mode is refused by name (mode_options()).
struct ModeOptions {
  std::vector<const CLI::Option*> gill_only, lm_only;
};

void refuse_other_mode(const ModeOptions& m, bool gill_mode) {
  for (const CLI::Option* o : gill_mode ? m.lm_only : m.gill_only) {
    if (o->count() == 0) continue;
    if (gill_mode)
      fail(ErrorCode::kInvalidArgument,
           cat("gill run: ", o->get_name(), " is for the LLM-only mode (--lm DIR without -m/--gill); a GILL run (-m ",
               "or --gill) decodes with the reference's rules and does not use it"));
    fail(ErrorCode::kInvalidArgument,
         cat("gill run --lm: ", o->get_name(), " is for GILL runs (-m WEIGHTS_ROOT or --gill DIR); the LLM-only ",
             "mode does not use it"));
  }
}

int run_lm_only(RunArgs& a, const Context& ctx) {
  LmOptions o;
  o.lm_dir = a.engine.lm_dir;
  require(a.images.empty(), ErrorCode::kInvalidArgument,
          "gill run: --image needs a GILL model (-m WEIGHTS_ROOT or --gill DIR); --lm alone runs the LLM only");
  require(a.prompts.size() <= 1, ErrorCode::kInvalidArgument,
          cat("gill run --lm: give one -p TEXT (got ", a.prompts.size(), ")"));
  require(a.engine.dtype != "fp16", ErrorCode::kInvalidArgument,
          "gill run --lm: --dtype fp16 is for GILL runs; the LLM-only mode stores auto, fp32 or bf16 weights");
  if (!a.prompts.empty()) o.prompt = a.prompts[0];
  if (!a.ids.empty()) o.prompt_ids = parse_ids(a.ids);
  require(!o.prompt.empty() || !o.prompt_ids.empty(), ErrorCode::kInvalidArgument,
          "gill run: give a prompt with -p TEXT or --ids");
  o.device = a.engine.device;
  o.dtype = a.engine.dtype;
  o.compute = a.engine.compute;
  o.mmap = a.engine.mmap;
  o.threads = ctx.threads;
  o.max_new_tokens = a.gen.num_words;
  o.temperature = a.gen.temperature;
  o.top_p = a.gen.top_p;
  o.top_k = a.gen.top_k;
  o.seed = a.gen.seed;
  o.stop_on_newline = a.stop_newline;
  o.stop_strings = a.stops;
  o.stop_on_eos = !a.no_eos;
  o.use_cache = !a.no_cache;
  o.dump_hidden = a.dump_hidden;
  o.dump_tensors = a.dump_path;
  if (!a.dump_path.empty()) check_output_file(a.dump_path, "--dump-tensors");
  if (!a.json_path.empty()) check_output_file(a.json_path, "--json");
  o.on_token = [](const std::string& piece) {
    std::cout << piece << std::flush;
    return true;
  };
  const LmResult r = generate_text(o);
  std::cout << std::endl;
  if (!a.json_path.empty()) write_json_file(a.json_path, lm_result_json(r, o));
  spdlog::info("load {:.2f} s, prefill {:.3f} s ({} tokens), decode {:.3f} s ({} tokens), stop: {}, {} thread(s)",
               r.load_s, r.prefill_s, r.prompt_ids.size(), r.decode_s, r.new_ids.size(), r.stop_reason, r.threads);
  return 0;
}

int run_gill(RunArgs& a, const Context& ctx) {
  require(!a.prompt.empty(), ErrorCode::kInvalidArgument, "empty prompt: give at least one -p TEXT or --image FILE");
  require(!a.out_dir.empty(), ErrorCode::kInvalidArgument, "gill run: give the output folder with -o OUT_DIR");
  for (size_t k = 0, n = 0; k < a.prompt.size(); ++k)
    if (a.prompt[k].kind == Segment::Kind::kText) check_utf8(a.prompt[k].text, cat("-p #", ++n));
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
  eo.threads = ctx.threads;
  eo.on_progress = make_progress_callback(style);
  Engine engine(eo);
  const GenerateOptions go = streamed_to_stdout(a.gen, style);
  Result r = engine.generate(prompt, go);
  std::cout << "\n";
  write_turn_files(r, {a.out_dir, "", true, "gill run"}, a.gen);
  std::cout << image_lines(r);
  if (!a.json_path.empty()) write_json_file(a.json_path, result_json(r, {&a.prompt, &a.gen}));
  spdlog::info(
      "prompt {} tokens in {:.2f} s, {} new tokens in {:.2f} s, retrieval {:.2f} s, generation {:.2f} s, {} thread(s)",
      r.timings.prompt_tokens, r.timings.prompt_s, r.timings.new_tokens, r.timings.decode_s, r.timings.retrieval_s,
      r.timings.generation_s, r.timings.threads);
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
  auto* i_opt = sub->add_option("--image", a->images, "GILL: prompt image file (repeatable)");
  auto* o_opt = sub->add_option("-o,--out", a->out_dir, "GILL: output folder for images (created when missing)");
  sub->add_option("--json", a->json_path,
                  "Write the transcript (text, ids, settings, timings; GILL: decisions, images)");
  sub->add_option("--dump-tensors", a->dump_path, "Write every stage's tensors to this .safetensors file");
  auto m = std::make_shared<ModeOptions>();
  m->lm_only = {
      sub->add_option("--ids", a->ids, "LLM-only: prompt as comma-separated token ids"),
      sub->add_flag("--stop-newline", a->stop_newline, "LLM-only: stop at the first generated newline"),
      sub->add_option("--stop", a->stops, "LLM-only: stop when the continuation contains this string (repeatable)"),
      sub->add_flag("--no-eos-stop", a->no_eos, "LLM-only: keep generating after </s>"),
      sub->add_flag("--no-cache", a->no_cache, "LLM-only: recompute the whole sequence each step (no KV cache)"),
      sub->add_flag("--dump-hidden", a->dump_hidden, "LLM-only: with --dump-tensors, also lm.hidden_states")};
  // Options of a GILL run that the LLM-only mode has no use for (--image has its own message in run_lm_only).
  m->gill_only = {o_opt};
  for (const char* name :
       {"--clip", "--sd", "--gill", "--index", "--no-sd", "--steps", "--cfg-scale", "--scheduler", "--ret-scale-factor",
        "--gen-scale-factor", "--min-word-tokens", "--max-num-rets", "--always-generate"})
    m->gill_only.push_back(sub->get_option(name));
  sub->callback([&ctx, a, m, sub, p_opt, i_opt] {
    // The interleaved prompt: -p and --image values in the order they were given.
    a->prompt.clear();
    size_t np = 0, ni = 0;
    for (const CLI::Option* o : sub->parse_order()) {
      if (o == p_opt) a->prompt.push_back(Segment::Text(a->prompts.at(np++)));
      if (o == i_opt) a->prompt.push_back(Segment::ImageFile(a->images.at(ni++)));
    }
    const bool gill_mode = !a->engine.weights_root.empty() || !a->engine.gill_dir.empty();
    require(gill_mode || !a->engine.lm_dir.empty(), ErrorCode::kInvalidArgument,
            "gill run: give -m WEIGHTS_ROOT (or --gill DIR with --lm, --clip, --sd), or --lm DIR for the LLM only");
    if (gill_mode || a->images.empty()) refuse_other_mode(*m, gill_mode);
    ctx.action = [&ctx, a, gill_mode] { return gill_mode ? run_gill(*a, ctx) : run_lm_only(*a, ctx); };
  });
}

}  // namespace gill::cli
