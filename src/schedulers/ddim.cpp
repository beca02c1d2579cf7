// Ref: diffusers v0.17.1 schedulers/scheduling_ddim.py (set_timesteps, _get_variance, step with eta = 0).
#include "schedulers/ddim.h"

#include "util/error.h"

namespace gill::schedulers {

DDIMScheduler::DDIMScheduler(SchedulerConfig cfg) : Scheduler(std::move(cfg)) {
  GILL_CHECK(!cfg_.clip_sample, ErrorCode::kUnsupported, "ddim scheduler: clip_sample=true is not supported");
  GILL_CHECK(!cfg_.thresholding, ErrorCode::kUnsupported, "ddim scheduler: thresholding=true is not supported");
  GILL_CHECK(cfg_.timestep_spacing == "leading" || cfg_.timestep_spacing == "trailing", ErrorCode::kUnsupported,
             "ddim scheduler: timestep_spacing '", cfg_.timestep_spacing, "' is not supported (leading, trailing)");
  final_alpha_cumprod_ = cfg_.set_alpha_to_one ? torch::tensor(1.0f) : tables_.alphas_cumprod[0].clone();
}

void DDIMScheduler::set_timesteps(int64_t n_steps) {
  check_n_steps(name(), n_steps, cfg_.num_train_timesteps);
  n_steps_ = n_steps;
  std::vector<int64_t> ts(n_steps);
  if (cfg_.timestep_spacing == "leading") {
    const int64_t ratio = cfg_.num_train_timesteps / n_steps;
    for (int64_t k = 0; k < n_steps; ++k) ts[n_steps - 1 - k] = k * ratio + cfg_.steps_offset;
  } else {
    // trailing: round(arange(T, 0, -T/N)) - 1, np.round is half-to-even
    const double ratio = static_cast<double>(cfg_.num_train_timesteps) / static_cast<double>(n_steps);
    for (int64_t k = 0; k < n_steps; ++k)
      ts[k] = static_cast<int64_t>(std::nearbyint(static_cast<double>(cfg_.num_train_timesteps) - k * ratio)) - 1;
  }
  timesteps_ = torch::tensor(ts, torch::kInt64);
}

torch::Tensor DDIMScheduler::step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample,
                                  at::Generator* /*gen*/) {
  check_index(i);
  const int64_t t = timesteps_[i].item<int64_t>();
  const int64_t t_prev = t - cfg_.num_train_timesteps / n_steps_;
  const torch::Tensor a = tables_.alphas_cumprod[t];
  const torch::Tensor a_prev = t_prev >= 0 ? tables_.alphas_cumprod[t_prev] : final_alpha_cumprod_;
  const torch::Tensor b = 1 - a;
  const torch::Tensor x0 = (sample - torch::pow(b, 0.5) * model_output) / torch::pow(a, 0.5);
  const torch::Tensor b_prev = 1 - a_prev;
  const torch::Tensor variance = (b_prev / b) * (1 - a / a_prev);
  const torch::Tensor std_dev = 0.0 * torch::pow(variance, 0.5);  // eta = 0
  const torch::Tensor direction = torch::pow(1 - a_prev - torch::pow(std_dev, 2), 0.5) * model_output;
  return torch::pow(a_prev, 0.5) * x0 + direction;
}

}  // namespace gill::schedulers
