// gill sd — Stable Diffusion text-to-image from a diffusers SD folder, as diffusers 0.17.1's
// StableDiffusionPipeline (no safety checker). Writes a PNG with the prompt, seed, steps, scale and scheduler in
// text chunks.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli_common.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/tensor_dump.h"
#include "io/tensor_source.h"
#include "output_checks.h"
#include "pipeline/sd_pipeline.h"
#include "schedulers/scheduler.h"
#include "util/error.h"
#include "util/utf8.h"

namespace gill::cli {

namespace {

struct SdArgs {
  std::string sd_dir, output, dtype = "fp32", dump_path, init_latents_path;
  pipeline::SDParams params;
};

int run_sd(const SdArgs& a, const Context& ctx) {
  check_output_file(a.output, "-o", /*parents_created=*/false);
  if (!a.dump_path.empty()) check_output_file(a.dump_path, "--dump-tensors");
  pipeline::SDParams params = a.params;
  if (!a.init_latents_path.empty()) {
    auto src = io::open_tensors(a.init_latents_path);
    GILL_CHECK(src->contains("sd.latents.init"), ErrorCode::kNotFound, a.init_latents_path,
               " has no tensor 'sd.latents.init'");
    params.init_latents = src->get("sd.latents.init", torch::kFloat32);
  }
  pipeline::SDOptions opts;
  opts.dtype = io::parse_torch_dtype(a.dtype);
  GILL_CHECK(opts.dtype == torch::kFloat32 || opts.dtype == torch::kBFloat16 || opts.dtype == torch::kFloat16,
             ErrorCode::kInvalidArgument, "--dtype must be fp32, bf16 or fp16, got '", a.dtype, "'");
  auto sd = pipeline::StableDiffusion::load(a.sd_dir, opts);

  const bool bar = show_progress(ctx);
  pipeline::ProgressCallback progress = [bar](int64_t done, int64_t total) {
    if (!bar) return;
    const int width = 30;
    const int filled = static_cast<int>(width * done / std::max<int64_t>(total, 1));
    std::fprintf(stderr, "\rsd [%s%s] %lld/%lld UNet calls", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), static_cast<long long>(done),
                 static_cast<long long>(total));
    if (done == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
  io::TensorDump dump;
  io::TensorDump* dump_ptr = a.dump_path.empty() ? nullptr : &dump;
  Image image = sd.generate(params, progress, dump_ptr);

  std::vector<std::pair<std::string, std::string>> text = {{"prompt", params.prompt}};
  if (!params.negative_prompt.empty()) text.emplace_back("negative_prompt", params.negative_prompt);
  text.emplace_back("seed", params.init_latents.defined() ? std::string("init-latents:") + a.init_latents_path
                                                          : std::to_string(params.seed));
  text.emplace_back("steps", std::to_string(params.n_steps));
  text.emplace_back("cfg_scale", detail::str_cat(params.guidance_scale));
  text.emplace_back("scheduler", params.scheduler);
  text.emplace_back("size", detail::str_cat(image.width, "x", image.height));
  text.emplace_back("Software", "gill sd");
  io::write_png(a.output, image, text);
  if (dump_ptr) dump.write(a.dump_path);
  spdlog::info("wrote {} ({}x{})", a.output, image.width, image.height);
  return 0;
}

}  // namespace

void register_sd(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand("sd", "Stable Diffusion v1.x text-to-image (diffusers 0.17.1 numerics; no safety checker)");
  auto a = std::make_shared<SdArgs>();
  const pipeline::SDParams defaults;
  sub->add_option("--sd", a->sd_dir, "Stable Diffusion folder (diffusers layout: unet/ vae/ text_encoder/ tokenizer/ scheduler/)")
      ->required();
  sub->add_option("-p,--prompt", a->params.prompt, "Prompt")->required();
  sub->add_option("-n,--negative-prompt", a->params.negative_prompt, "Negative prompt (default: empty)");
  sub->add_option("--steps", a->params.n_steps, "Inference steps (PNDM makes steps+1 UNet calls)")
      ->default_val(defaults.n_steps);
  sub->add_option("--cfg-scale", a->params.guidance_scale, "Classifier-free guidance scale (off when <= 1)")
      ->default_val(defaults.guidance_scale);
  sub->add_option("--seed", a->params.seed, "Seed of the CPU generator the initial latents are drawn from")
      ->default_val(defaults.seed);
  sub->add_option("--scheduler", a->params.scheduler, "pndm | ddim | euler | dpm++2m")
      ->default_val(defaults.scheduler);
  sub->add_option("-W,--width", a->params.width, "Image width, a multiple of 8 (default: from the UNet config)");
  sub->add_option("-H,--height", a->params.height, "Image height, a multiple of 8 (default: from the UNet config)");
  sub->add_option("-o,--output", a->output, "Output PNG")->required();
  sub->add_option("--dtype", a->dtype, "Weight dtype: fp32 | bf16 | fp16")->default_val(a->dtype);
  sub->add_option("--dump-tensors", a->dump_path, "Write the sd.* stage tensors to this safetensors file");
  sub->add_option("--init-latents", a->init_latents_path,
                  "Start from the 'sd.latents.init' tensor of this safetensors file instead of the seed");
  sub->callback([&ctx, a] {
    // Validate before loading anything.
    auto& p = a->params;
    GILL_CHECK(std::find(schedulers::scheduler_names().begin(), schedulers::scheduler_names().end(), p.scheduler) !=
                   schedulers::scheduler_names().end(),
               ErrorCode::kInvalidArgument, "unknown scheduler '", p.scheduler,
               "' (expected one of: pndm, ddim, euler, dpm++2m)");
    GILL_CHECK(p.n_steps >= 1, ErrorCode::kInvalidArgument, "--steps must be at least 1, got ", p.n_steps);
    detail::require_utf8(p.prompt, "-p");
    detail::require_utf8(p.negative_prompt, "--negative-prompt");
    GILL_CHECK(p.width >= 0 && p.width % 8 == 0, ErrorCode::kInvalidArgument,
               "--width must be a positive multiple of 8, got ", p.width);
    GILL_CHECK(p.height >= 0 && p.height % 8 == 0, ErrorCode::kInvalidArgument,
               "--height must be a positive multiple of 8, got ", p.height);
    ctx.action = [&ctx, a] { return run_sd(*a, ctx); };
  });
}

}  // namespace gill::cli
