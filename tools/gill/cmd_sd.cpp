// gill sd — Stable Diffusion text-to-image from a diffusers SD folder (gill::text_to_image), as diffusers 0.17.1's
// StableDiffusionPipeline (no safety checker). Writes a PNG with the prompt, seed, steps, scale and scheduler in
// text chunks.
#include <gill/gill.h>
#include <gill/tools.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "api_options.h"
#include "cli_common.h"
#include "output_checks.h"

namespace gill::cli {

namespace {

// "7.5", "1", "0.25": the shortest form that reads back as the same float (as the PNG text chunks always wrote).
std::string number_text(float v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

int run_sd(const SdOptions& o, const std::string& output, const Context& ctx) {
  check_output_file(output, "-o", /*parents_created=*/false);
  if (!o.dump_tensors.empty()) check_output_file(o.dump_tensors, "--dump-tensors");
  SdOptions so = o;
  so.threads = ctx.threads;
  const bool bar = show_progress(ctx);
  so.on_progress = [bar](const std::string&, int64_t done, int64_t total) {
    if (!bar) return;
    const int width = 30;
    const int filled = static_cast<int>(width * done / std::max<int64_t>(total, 1));
    std::fprintf(stderr, "\rsd [%s%s] %lld/%lld UNet calls", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), static_cast<long long>(done),
                 static_cast<long long>(total));
    if (done == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
  const Image image = text_to_image(so);

  std::vector<std::pair<std::string, std::string>> text = {{"prompt", o.prompt}};
  if (!o.negative_prompt.empty()) text.emplace_back("negative_prompt", o.negative_prompt);
  text.emplace_back("seed", o.init_latents.empty() ? std::to_string(o.seed) : "init-latents:" + o.init_latents);
  text.emplace_back("steps", std::to_string(o.steps));
  text.emplace_back("cfg_scale", number_text(o.guidance_scale));
  text.emplace_back("scheduler", o.scheduler);
  text.emplace_back("size", cat(image.width, "x", image.height));
  text.emplace_back("Software", "gill sd");
  write_png(image, output, text);
  spdlog::info("wrote {} ({}x{})", output, image.width, image.height);
  return 0;
}

}  // namespace

void register_sd(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand("sd", "Stable Diffusion v1.x text-to-image (diffusers 0.17.1 numerics; no safety checker)");
  auto o = std::make_shared<SdOptions>();
  auto output = std::make_shared<std::string>();
  sub->add_option("--sd", o->sd_dir, "Stable Diffusion folder (diffusers layout: unet/ vae/ text_encoder/ tokenizer/ scheduler/)")
      ->required();
  sub->add_option("-p,--prompt", o->prompt, "Prompt")->required();
  sub->add_option("-n,--negative-prompt", o->negative_prompt, "Negative prompt (default: empty)");
  sub->add_option("--steps", o->steps, "Inference steps (PNDM makes steps+1 UNet calls)")->capture_default_str();
  sub->add_option("--cfg-scale", o->guidance_scale, "Classifier-free guidance scale (off when <= 1)")
      ->capture_default_str();
  sub->add_option("--seed", o->seed, "Seed of the CPU generator the initial latents are drawn from")
      ->capture_default_str();
  sub->add_option("--scheduler", o->scheduler, scheduler_help())->capture_default_str();
  sub->add_option("-W,--width", o->width, "Image width, a multiple of 8 (default: from the UNet config)");
  sub->add_option("-H,--height", o->height, "Image height, a multiple of 8 (default: from the UNet config)");
  sub->add_option("-o,--output", *output, "Output PNG")->required();
  sub->add_option("--dtype", o->dtype, "Weight dtype: fp32 | bf16 | fp16")->capture_default_str();
  add_compute_option(sub, o->compute);
  add_mmap_option(sub, o->mmap);
  sub->add_option("--dump-tensors", o->dump_tensors, "Write the sd.* stage tensors to this safetensors file");
  sub->add_option("--init-latents", o->init_latents,
                  "Start from the 'sd.latents.init' tensor of this safetensors file instead of the seed");
  sub->callback([&ctx, o, output] {
    // Validate before loading anything.
    const auto& names = scheduler_names();
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    require(std::find(names.begin(), names.end(), o->scheduler) != names.end(), ErrorCode::kInvalidArgument,
            cat("unknown scheduler '", o->scheduler, "' (expected one of: ", list, ")"));
    require(o->steps >= 1, ErrorCode::kInvalidArgument, cat("--steps must be at least 1, got ", o->steps));
    check_utf8(o->prompt, "-p");
    check_utf8(o->negative_prompt, "--negative-prompt");
    require(o->width >= 0 && o->width % 8 == 0, ErrorCode::kInvalidArgument,
            cat("--width must be a positive multiple of 8, got ", o->width));
    require(o->height >= 0 && o->height % 8 == 0, ErrorCode::kInvalidArgument,
            cat("--height must be a positive multiple of 8, got ", o->height));
    ctx.action = [&ctx, o, output] { return run_sd(*o, *output, ctx); };
  });
}

}  // namespace gill::cli
