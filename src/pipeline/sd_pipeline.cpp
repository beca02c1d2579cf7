// Ref: diffusers v0.17.1 pipelines/stable_diffusion/pipeline_stable_diffusion.py (__call__, _encode_prompt,
// prepare_latents, check_inputs), image_processor.py (VaeImageProcessor.postprocess, numpy_to_pil).
#include "pipeline/sd_pipeline.h"

#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/utf8.h"

namespace gill::pipeline {

using detail::str_cat;
namespace fs = std::filesystem;

StableDiffusion::StableDiffusion(StableDiffusion&&) noexcept = default;
StableDiffusion& StableDiffusion::operator=(StableDiffusion&&) noexcept = default;
StableDiffusion::~StableDiffusion() = default;

StableDiffusion StableDiffusion::load(const fs::path& dir, const SDOptions& options) {
  return load_impl(dir, options, true);
}

StableDiffusion StableDiffusion::load_without_text_encoder(const fs::path& dir, const SDOptions& options) {
  return load_impl(dir, options, false);
}

StableDiffusion StableDiffusion::from_modules(models::UNet2DConditionModel unet, models::AutoencoderKL vae,
                                              const schedulers::SchedulerConfig& scheduler, const SDOptions& options) {
  GILL_CHECK(!unet.is_empty() && !vae.is_empty(), ErrorCode::kInvalidArgument,
             "StableDiffusion::from_modules: a UNet and a VAE are required");
  StableDiffusion sd;
  sd.options_ = options;
  sd.scheduler_config_ = scheduler;
  sd.unet_ = std::move(unet);
  sd.unet_->eval();
  sd.vae_ = std::move(vae);
  sd.vae_->eval();
  return sd;
}

StableDiffusion StableDiffusion::load_impl(const fs::path& dir, const SDOptions& options, bool text) {
  return detail::with_context(str_cat("loading Stable Diffusion from ", dir.string()), [&] {
    GILL_CHECK(fs::is_directory(dir), ErrorCode::kNotFound, "no such folder: ", dir.string());
    StableDiffusion sd;
    sd.options_ = options;
    sd.dir_ = dir;
    models::ModuleOptions mo;
    mo.dtype = options.dtype;
    mo.device = options.device;
    mo.compute = options.compute;
    mo.residency = options.residency;
    sd.scheduler_config_ = schedulers::SchedulerConfig::from_file(dir / "scheduler" / "scheduler_config.json");
    if (text) {
      tokenizer::LoadOptions to;
      to.kind = "clip";
      to.clip_mode = tokenizer::ClipMode::kNoFtfyPre431;  // transformers 4.30.2 without ftfy, as GILL runs it
      sd.tokenizer_ = tokenizer::load_tokenizer(dir / "tokenizer", to);
      sd.text_encoder_ = models::load_clip_text(dir / "text_encoder", mo);
      sd.text_encoder_->eval();
    }
    sd.unet_ = models::load_unet(dir / "unet", mo);
    sd.unet_->eval();
    sd.vae_ = models::load_vae(dir / "vae", mo);
    sd.vae_->eval();
    return sd;
  });
}

int64_t StableDiffusion::vae_scale_factor() const {
  return int64_t{1} << (static_cast<int64_t>(vae_->config.block_out_channels.size()) - 1);
}
int64_t StableDiffusion::default_width() const {
  return unet_->config.sample_size * vae_scale_factor();
}
int64_t StableDiffusion::default_height() const {
  return default_width();
}

torch::Tensor StableDiffusion::encode_prompt(const std::string& prompt) {
  GILL_CHECK(text_encoder_ && tokenizer_, ErrorCode::kInvalidArgument,
             "this Stable Diffusion was loaded without its text encoder: pass prompt embeddings");
  torch::InferenceMode guard;
  const int64_t max_len = text_encoder_->config.max_position_embeddings;
  std::vector<int64_t> ids = tokenizer::encode_padded(*tokenizer_, prompt, static_cast<size_t>(max_len));
  auto t = torch::tensor(ids, torch::kInt64).reshape({1, -1}).to(options_.device);  // [1, 77]
  return text_encoder_->forward(t).to(torch::kFloat32);                             // [1, 77, D]
}

torch::Tensor StableDiffusion::uncond_embeddings(const std::string& negative_prompt, int64_t length) {
  auto key = std::make_pair(negative_prompt, length);
  auto it = uncond_cache_.find(key);
  if (it != uncond_cache_.end()) return it->second;
  GILL_CHECK(text_encoder_ && tokenizer_, ErrorCode::kInvalidArgument,
             "this Stable Diffusion was loaded without its text encoder: pass negative prompt embeddings");
  torch::InferenceMode guard;
  std::vector<int64_t> ids = tokenizer::encode_padded(*tokenizer_, negative_prompt, static_cast<size_t>(length));
  auto t = torch::tensor(ids, torch::kInt64).reshape({1, -1}).to(options_.device);
  torch::Tensor emb = text_encoder_->forward(t).to(torch::kFloat32);
  uncond_cache_.emplace(key, emb);
  return emb;
}

torch::Tensor StableDiffusion::denoise(const SDParams& p, const ProgressCallback& progress, io::TensorDump* dump) {
  torch::InferenceMode guard;
  const int64_t width = p.width > 0 ? p.width : default_width();
  const int64_t height = p.height > 0 ? p.height : default_height();
  GILL_CHECK(p.width >= 0 && p.height >= 0 && width % 8 == 0 && height % 8 == 0, ErrorCode::kInvalidArgument,
             "width and height must be positive multiples of 8, got ", width, "x", height);
  GILL_CHECK(p.n_steps >= 1, ErrorCode::kInvalidArgument, "the number of steps must be at least 1, got ", p.n_steps);
  auto scheduler = schedulers::make_scheduler(p.scheduler, scheduler_config_);
  const int64_t D = unet_->config.cross_attention_dim;

  // _encode_prompt: cond from the prompt or the given embeddings; uncond from the negative prompt ("" default).
  torch::Tensor cond;
  if (p.prompt_embeds.defined()) {
    cond = p.prompt_embeds.to(torch::kFloat32);
    if (cond.dim() == 2) cond = cond.unsqueeze(0);
    GILL_CHECK(cond.dim() == 3 && cond.size(0) == 1 && cond.size(2) == D, ErrorCode::kShapeMismatch,
               "prompt embeddings have shape ", detail::shape_str(cond.sizes().vec()), ", expected [1, T, ", D, "]");
  } else {
    detail::require_utf8(p.prompt, "the prompt");
    cond = encode_prompt(p.prompt);
  }
  const bool do_cfg = p.guidance_scale > 1.0;
  torch::Tensor uncond;
  if (p.negative_prompt_embeds.defined()) {
    uncond = p.negative_prompt_embeds.to(torch::kFloat32);
    if (uncond.dim() == 2) uncond = uncond.unsqueeze(0);
    GILL_CHECK(uncond.sizes() == cond.sizes(), ErrorCode::kShapeMismatch, "negative prompt embeddings have shape ",
               detail::shape_str(uncond.sizes().vec()), ", expected ", detail::shape_str(cond.sizes().vec()));
  } else if (do_cfg) {
    detail::require_utf8(p.negative_prompt, "the negative prompt");
    uncond = uncond_embeddings(p.negative_prompt, cond.size(1));
  }
  io::dump_tensor(dump, "sd.text_emb", cond);
  if (uncond.defined()) io::dump_tensor(dump, "sd.uncond_emb", uncond);
  const auto dev = options_.device;
  torch::Tensor embeds = do_cfg ? torch::cat({uncond, cond}, 0) : cond;  // [uncond, cond]: [2, T, D]
  embeds = embeds.to(dev);

  scheduler->set_timesteps(p.n_steps);
  io::dump_tensor(dump, "sd.timesteps", scheduler->timesteps());

  // prepare_latents: randn on a CPU generator in float32, or the given latents; times init_noise_sigma.
  const int64_t C = unet_->config.in_channels;
  const int64_t h = height / vae_scale_factor(), w = width / vae_scale_factor();
  at::Generator gen = schedulers::make_cpu_generator(p.seed);
  torch::Tensor noise;
  if (p.init_latents.defined()) {
    noise = p.init_latents.to(torch::kCPU, torch::kFloat32);
    GILL_CHECK(noise.sizes() == at::IntArrayRef({1, C, h, w}), ErrorCode::kShapeMismatch, "initial latents have shape ",
               detail::shape_str(noise.sizes().vec()), ", expected [1, ", C, ", ", h, ", ", w, "] for ", width, "x",
               height);
  } else {
    noise = torch::randn({1, C, h, w}, gen, torch::TensorOptions().dtype(torch::kFloat32));
  }
  io::dump_tensor(dump, "sd.latents.init", noise);
  torch::Tensor latents = (noise * scheduler->init_noise_sigma()).to(dev);  // [1, C, h, w] float32

  const int64_t n_calls = scheduler->n_calls();
  std::vector<torch::Tensor> unet_outs, guided, steps;
  for (int64_t i = 0; i < n_calls; ++i) {
    torch::Tensor model_in = do_cfg ? torch::cat({latents, latents}, 0) : latents;
    model_in = scheduler->scale_model_input(model_in, i);
    const torch::Tensor t = scheduler->timestep(i).to(dev);
    torch::Tensor out = unet_->forward(model_in, t, embeds).to(torch::kFloat32);  // [B, C, h, w]
    torch::Tensor eps;
    if (do_cfg) {
      auto parts = out.chunk(2, 0);
      eps = parts[0] + p.guidance_scale * (parts[1] - parts[0]);  // uncond + s * (cond - uncond)
    } else {
      eps = out;
    }
    latents = scheduler->step(eps, i, latents, &gen);
    if (dump) {
      unet_outs.push_back(out.cpu());
      guided.push_back(eps.cpu());
      steps.push_back(latents.cpu());
    }
    if (progress) progress(i + 1, n_calls);
  }
  if (dump) {
    dump->add("sd.unet_out", torch::stack(unet_outs));
    dump->add("sd.eps", torch::stack(guided));
    dump->add("sd.latents.steps", torch::stack(steps));
    dump->add("sd.latents.final", latents);
  }
  return latents;
}

torch::Tensor StableDiffusion::decode_latents(const torch::Tensor& latents, io::TensorDump* dump) {
  torch::InferenceMode guard;
  const torch::Tensor z = latents.to(options_.device) / vae_->config.scaling_factor;  // __call__'s division
  io::dump_tensor(dump, "sd.vae_in", z);
  torch::Tensor img = vae_->decode(z);  // [1, 3, H, W]
  io::dump_tensor(dump, "sd.vae_out", img);
  // VaeImageProcessor.denormalize in the model's dtype, then .float()
  return (img / 2 + 0.5).clamp(0, 1).to(torch::kCPU, torch::kFloat32);
}

Image StableDiffusion::to_image(const torch::Tensor& image01) {
  GILL_CHECK(image01.dim() == 4 && image01.size(0) == 1 && image01.size(1) == 3, ErrorCode::kShapeMismatch,
             "expected an image tensor [1, 3, H, W], got ", detail::shape_str(image01.sizes().vec()));
  // numpy_to_pil: (x * 255).round().astype(uint8) on the HWC float32 array; round is half-to-even.
  torch::Tensor hwc = image01[0].permute({1, 2, 0}).to(torch::kCPU, torch::kFloat32);
  torch::Tensor u8 = torch::round(hwc * 255).to(torch::kUInt8).contiguous();  // [H, W, 3]
  Image im;
  im.height = static_cast<int>(u8.size(0));
  im.width = static_cast<int>(u8.size(1));
  im.pixels.assign(u8.data_ptr<uint8_t>(), u8.data_ptr<uint8_t>() + u8.numel());
  return im;
}

Image StableDiffusion::generate(const SDParams& params, const ProgressCallback& progress, io::TensorDump* dump) {
  torch::InferenceMode guard;
  torch::Tensor latents = denoise(params, progress, dump);
  torch::Tensor image01 = decode_latents(latents, dump);
  Image im = to_image(image01);
  if (dump) dump->add("sd.image", torch::from_blob(im.pixels.data(), {im.height, im.width, 3}, torch::kUInt8).clone());
  return im;
}

}  // namespace gill::pipeline
