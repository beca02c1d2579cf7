#include "api_options.h"

#include "cli_common.h"

namespace gill::cli {

std::string device_help() {
  std::string list;
  for (const auto& d : available_devices()) list += (list.empty() ? "" : " | ") + d;
  return "Device (this build: " + list + ")";
}

std::string scheduler_help() {
  std::string list;
  for (const auto& s : scheduler_names()) list += (list.empty() ? "" : " | ") + s;
  return list;
}

void add_compute_option(CLI::App* app, std::string& compute) {
  app->add_option("--compute", compute,
                  "Arithmetic for bf16 weights: auto | fp32 | bf16 (auto: bf16 where the CPU has native bf16; "
                  "see gill info)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
}

void add_mmap_option(CLI::App* app, bool& mmap) {
  app->add_flag("--no-mmap{false}", mmap,
                "Read the weights into memory (huge pages) instead of mapping them: faster decode, slower load");
}

void add_engine_options(CLI::App* app, EngineOptions& o) {
  app->add_option("-m,--weights", o.weights_root, "Weights root (layout of weights/README.md)");
  app->add_option("--lm", o.lm_dir, "LLM folder (overrides the root)");
  app->add_option("--clip", o.clip_dir, "CLIP folder (overrides the root)");
  app->add_option("--sd", o.sd_dir, "Stable Diffusion folder (overrides the root)");
  app->add_option("--gill", o.gill_dir, "GILL checkpoint folder (overrides the root)");
  app->add_option("--index", o.index_path, "Retrieval embeddings file (overrides the GILL folder's)");
  // A device this build cannot run is refused while parsing, before anything is loaded (the library's rule).
  app->add_option("--device", o.device, device_help())
      ->capture_default_str()
      ->each([](const std::string& d) { check_device(d, "--device"); });
  app->add_option("--dtype", o.dtype, "auto | fp32 | bf16 | fp16 (gill run --lm: auto | fp32 | bf16)")
      ->capture_default_str();
  add_compute_option(app, o.compute);
  add_mmap_option(app, o.mmap);
  app->add_flag("--no-sd{false}", o.load_sd, "Do not load Stable Diffusion (retrieval and text only)");
}

void add_generate_options(CLI::App* app, GenerateOptions& o) {
  app->add_option("-n,--num-words", o.num_words, "Maximum new tokens")->capture_default_str();
  app->add_option("--temp", o.temperature, "Sampling temperature (0 = greedy)")->capture_default_str();
  app->add_option("--top-p", o.top_p, "Nucleus sampling threshold")->capture_default_str();
  app->add_option("--top-k", o.top_k, "Keep the k most likely tokens when sampling (0 = off)")->capture_default_str();
  app->add_option("--seed", o.seed, "Random seed (sampling and SD latents)")->capture_default_str();
  app->add_option("--steps", o.steps, "Stable Diffusion denoising steps")->capture_default_str();
  app->add_option("--cfg-scale", o.guidance_scale, "Classifier-free guidance scale")->capture_default_str();
  app->add_option("--scheduler", o.scheduler, scheduler_help())->capture_default_str();
  app->add_option("--ret-scale-factor", o.ret_scale_factor, "Scale on the [IMG0] logit (reference rule)")
      ->capture_default_str();
  app->add_option("--gen-scale-factor", o.gen_scale_factor, "Scale on the decision's generate probability")
      ->capture_default_str();
  app->add_option("--min-word-tokens", o.min_word_tokens, "Steps before [IMG0] may be produced")
      ->capture_default_str();
  app->add_option("--max-num-rets", o.max_num_rets, "Images retrieved per [IMG] block")->capture_default_str();
  app->add_flag("--always-generate", o.always_generate, "Run Stable Diffusion for every [IMG] block");
}

}  // namespace gill::cli
