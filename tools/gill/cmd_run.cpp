// gill run --lm DIR -p TEXT -n N ... — text generation with a plain OPT model, streamed to stdout.
// (The GILL pipeline adds -m/--image on top; the LM-only path is pipeline::run_lm.)
#include <iostream>
#include <spdlog/spdlog.h>
#include <sstream>

#include "cli_common.h"
#include "io/tensor_dump.h"
#include "pipeline/lm_generate.h"
#include "util/error.h"

namespace gill::cli {

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

}  // namespace

void register_run(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand("run", "Generate text with an OPT language model (streams to stdout)");
  auto o = std::make_shared<pipeline::LmRunOptions>();
  auto ids = std::make_shared<std::string>();
  auto dump_path = std::make_shared<std::string>();
  auto no_eos = std::make_shared<bool>(false);
  auto no_cache = std::make_shared<bool>(false);
  sub->add_option("--lm", o->lm_dir, "Hugging Face OPT folder (config.json, weights, tokenizer files)")->required();
  sub->add_option("-p,--prompt", o->prompt, "Prompt text");
  sub->add_option("--ids", *ids, "Prompt as comma-separated token ids (instead of -p)");
  sub->add_option("-n,--max-new-tokens", o->max_new_tokens, "Tokens to generate")->capture_default_str();
  sub->add_option("--temp", o->sampling.temperature, "Sampling temperature (0 = greedy)")->capture_default_str();
  sub->add_option("--top-p", o->sampling.top_p, "Nucleus sampling mass")->capture_default_str();
  sub->add_option("--top-k", o->sampling.top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str();
  sub->add_option("--seed", o->sampling.seed, "Random seed for sampling")->capture_default_str();
  sub->add_option("--dtype", o->dtype, "Weight storage: fp32 | bf16 (compute is fp32 on the CPU)")
      ->capture_default_str();
  sub->add_flag("--stop-newline", o->stop_on_newline, "Stop at the first generated newline");
  sub->add_option("--stop", o->stop_strings, "Stop when the continuation contains this string (repeatable)");
  sub->add_flag("--no-eos-stop", *no_eos, "Keep generating after </s>");
  sub->add_flag("--no-cache", *no_cache, "Recompute the whole sequence each step (no KV cache)");
  sub->add_option("--dump-tensors", *dump_path, "Write lm.* tensors to this .safetensors file");
  sub->add_flag("--dump-hidden", o->dump_hidden, "With --dump-tensors: also lm.hidden_states of the prompt");
  sub->callback([&ctx, o, ids, dump_path, no_eos, no_cache] {
    ctx.action = [o, ids, dump_path, no_eos, no_cache] {
      if (!ids->empty()) o->prompt_ids = parse_ids(*ids);
      GILL_CHECK(!o->prompt.empty() || !o->prompt_ids.empty(), ErrorCode::kInvalidArgument,
                 "gill run: give a prompt with -p TEXT or --ids");
      o->stop_on_eos = !*no_eos;
      o->use_cache = !*no_cache;
      io::TensorDump dump;
      auto r = pipeline::run_lm(*o, &std::cout, dump_path->empty() ? nullptr : &dump);
      if (!dump_path->empty()) dump.write(*dump_path);
      spdlog::info("load {:.2f} s, prefill {:.3f} s ({} tokens), decode {:.3f} s ({} tokens), stop: {}", r.load_s,
                   r.prefill_s, r.prompt_ids.size(), r.decode_s, r.new_ids.size(), r.stop_reason);
      return 0;
    };
  });
}

}  // namespace gill::cli
