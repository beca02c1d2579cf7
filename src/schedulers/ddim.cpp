// Ref: diffusers v0.17.1 schedulers/scheduling_ddim.py (__init__, set_timesteps, _get_variance, step with eta = 0
// and use_clipped_model_output false, as StableDiffusionPipeline calls it), numpy 1.x arange and round.
#include "schedulers/ddim.h"

#include <cmath>

#include "util/error.h"

namespace gill::schedulers {

DDIMSchedulerConfig DDIMSchedulerConfig::from(const SchedulerConfig& c) {
  DDIMSchedulerConfig d;
  d.read(c);
  if (c.clip_sample) d.clip_sample = *c.clip_sample;
  if (c.set_alpha_to_one) d.set_alpha_to_one = *c.set_alpha_to_one;
  if (c.steps_offset) d.steps_offset = *c.steps_offset;
  if (c.thresholding) d.thresholding = *c.thresholding;
  if (c.dynamic_thresholding_ratio) d.dynamic_thresholding_ratio = *c.dynamic_thresholding_ratio;
  if (c.clip_sample_range) d.clip_sample_range = *c.clip_sample_range;
  if (c.sample_max_value) d.sample_max_value = *c.sample_max_value;
  if (c.timestep_spacing) d.timestep_spacing = *c.timestep_spacing;
  if (c.rescale_betas_zero_snr) d.rescale_betas_zero_snr = *c.rescale_betas_zero_snr;
  return d;
}

DDIMScheduler::DDIMScheduler(DDIMSchedulerConfig cfg)
    : Scheduler(NoiseTables::make(cfg, cfg.rescale_betas_zero_snr), cfg.num_train_timesteps), cfg_(std::move(cfg)) {
  check_one_of(name(), "prediction_type", cfg_.prediction_type, {"epsilon", "sample", "v_prediction"});
  check_one_of(name(), "timestep_spacing", cfg_.timestep_spacing, {"leading", "trailing"});
  if (cfg_.thresholding)
    GILL_CHECK(cfg_.dynamic_thresholding_ratio >= 0 && cfg_.dynamic_thresholding_ratio <= 1, ErrorCode::kUnsupported,
               "ddim scheduler: dynamic_thresholding_ratio ", cfg_.dynamic_thresholding_ratio,
               " is not supported (a quantile in [0, 1])");
  final_alpha_cumprod_ = cfg_.set_alpha_to_one ? torch::tensor(1.0f) : tables_.alphas_cumprod[0].clone();
}

void DDIMScheduler::set_timesteps(int64_t n_steps) {
  check_n_steps(name(), n_steps, n_train_);
  std::vector<int64_t> ts;
  if (cfg_.timestep_spacing == "leading") {
    const int64_t ratio = n_train_ / n_steps;
    ts.resize(n_steps);
    for (int64_t k = 0; k < n_steps; ++k) ts[n_steps - 1 - k] = k * ratio + cfg_.steps_offset;
  } else {
    // trailing: round(arange(T, 0, -T/N)) - 1. numpy's arange has ceil((0 - T) / -ratio) elements, start + k * delta
    // with delta = (start - ratio) - start; np.round is half-to-even.
    const double T = static_cast<double>(n_train_);
    const double ratio = T / static_cast<double>(n_steps);
    const auto len = static_cast<int64_t>(std::ceil((0 - T) / -ratio));
    GILL_CHECK(len == n_steps, ErrorCode::kUnsupported, "ddim scheduler: timestep_spacing 'trailing' with ", n_steps,
               " steps and num_train_timesteps ", n_train_, " is not supported (diffusers 0.17.1's arange makes ", len,
               " timesteps, the last one -1)");
    const double delta = (T + -ratio) - T;
    for (int64_t k = 0; k < n_steps; ++k) {
      const double v = k == 0 ? T : k == 1 ? T + -ratio : T + static_cast<double>(k) * delta;
      ts.push_back(static_cast<int64_t>(std::nearbyint(v)) - 1);
    }
  }
  check_timesteps_in_range(name(), ts, n_steps, cfg_.steps_offset, n_train_);
  n_steps_ = n_steps;
  timesteps_ = torch::tensor(ts, torch::kInt64);
}

torch::Tensor DDIMScheduler::variance(int64_t t, int64_t t_prev) const {
  const torch::Tensor a = tables_.alphas_cumprod[t];
  const torch::Tensor a_prev = t_prev >= 0 ? tables_.alphas_cumprod[t_prev] : final_alpha_cumprod_;
  const torch::Tensor b = 1 - a;
  const torch::Tensor b_prev = 1 - a_prev;
  return (b_prev / b) * (1 - a / a_prev);
}

torch::Tensor DDIMScheduler::step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample,
                                  at::Generator* /*gen*/) {
  check_index(i);
  const int64_t t = timesteps_[i].item<int64_t>();
  const int64_t t_prev = t - n_train_ / n_steps_;
  const torch::Tensor a = tables_.alphas_cumprod[t];
  const torch::Tensor a_prev = t_prev >= 0 ? tables_.alphas_cumprod[t_prev] : final_alpha_cumprod_;
  const torch::Tensor b = 1 - a;
  torch::Tensor x0, eps;
  if (cfg_.prediction_type == "epsilon") {
    x0 = (sample - torch::pow(b, 0.5) * model_output) / torch::pow(a, 0.5);
    eps = model_output;
  } else if (cfg_.prediction_type == "sample") {
    x0 = model_output;
    eps = (sample - torch::pow(a, 0.5) * x0) / torch::pow(b, 0.5);
  } else {  // v_prediction
    x0 = torch::pow(a, 0.5) * sample - torch::pow(b, 0.5) * model_output;
    eps = torch::pow(a, 0.5) * model_output + torch::pow(b, 0.5) * sample;
  }
  if (cfg_.thresholding) {
    x0 = threshold_sample(x0, cfg_.dynamic_thresholding_ratio, cfg_.sample_max_value);
  } else if (cfg_.clip_sample) {
    x0 = x0.clamp(-cfg_.clip_sample_range, cfg_.clip_sample_range);
  }
  const torch::Tensor std_dev = 0.0 * torch::pow(variance(t, t_prev), 0.5);  // eta = 0
  const torch::Tensor direction = torch::pow(1 - a_prev - torch::pow(std_dev, 2), 0.5) * eps;
  return torch::pow(a_prev, 0.5) * x0 + direction;
}

}  // namespace gill::schedulers
