// Ref: diffusers v0.17.1 schedulers/scheduling_euler_discrete.py (__init__, set_timesteps with
// interpolation_type "linear", scale_model_input, step with s_churn = 0), numpy's linspace and interp.
#include "schedulers/euler_discrete.h"

#include "util/error.h"

namespace gill::schedulers {

EulerDiscreteScheduler::EulerDiscreteScheduler(SchedulerConfig cfg) : Scheduler(std::move(cfg)) {
  const torch::Tensor& ac = tables_.alphas_cumprod;
  train_sigmas_ = torch::pow((1 - ac) / ac, 0.5);  // float32, as the torch expression upstream
  init_noise_sigma_ = train_sigmas_.max().item<float>();
}

void EulerDiscreteScheduler::set_timesteps(int64_t n_steps) {
  check_n_steps(name(), n_steps, cfg_.num_train_timesteps);
  const int64_t T = cfg_.num_train_timesteps;
  // numpy.linspace(0, T-1, N, dtype=float): k * step + 0 with step = (T-1)/(N-1), last element exactly T-1.
  std::vector<double> ts(n_steps);
  if (n_steps == 1) {
    ts[0] = 0.0;
  } else {
    const double stop = static_cast<double>(T - 1);
    const double stepsize = stop / static_cast<double>(n_steps - 1);
    for (int64_t k = 0; k < n_steps; ++k) ts[k] = static_cast<double>(k) * stepsize + 0.0;
    ts[n_steps - 1] = stop;
  }
  std::reverse(ts.begin(), ts.end());
  // numpy.interp(ts, arange(T), train_sigmas) in float64, then float32, then a trailing 0.
  auto tab = train_sigmas_.to(torch::kFloat64).contiguous();
  const double* fp = tab.data_ptr<double>();
  std::vector<float> sig(n_steps + 1, 0.0f);
  for (int64_t k = 0; k < n_steps; ++k) {
    const double x = ts[k];
    double y;
    if (x >= static_cast<double>(T - 1)) {
      y = fp[T - 1];
    } else if (x <= 0.0) {
      y = fp[0];
    } else {
      const auto j = static_cast<int64_t>(std::floor(x));
      if (x == static_cast<double>(j)) {
        y = fp[j];
      } else {
        const double slope = (fp[j + 1] - fp[j]) / (static_cast<double>(j + 1) - static_cast<double>(j));
        y = slope * (x - static_cast<double>(j)) + fp[j];
      }
    }
    sig[k] = static_cast<float>(y);
  }
  timesteps_ = torch::tensor(ts, torch::kFloat64);
  sigmas_ = torch::tensor(sig, torch::kFloat32);
}

torch::Tensor EulerDiscreteScheduler::scale_model_input(const torch::Tensor& sample, int64_t i) const {
  check_index(i);
  const torch::Tensor sigma = sigmas_[i];
  return sample / torch::pow(torch::pow(sigma, 2) + 1, 0.5);
}

torch::Tensor EulerDiscreteScheduler::step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample,
                                           at::Generator* gen) {
  check_index(i);
  // 0.17.1 always draws the (unused, s_churn = 0) noise from the generator it is given.
  if (gen) (void)torch::randn(model_output.sizes(), *gen, model_output.options().device(torch::kCPU));
  const torch::Tensor sigma = sigmas_[i];
  const torch::Tensor sigma_hat = sigma * (0.0 + 1);  // gamma = 0
  const torch::Tensor x0 = sample - sigma_hat * model_output;
  const torch::Tensor derivative = (sample - x0) / sigma_hat;
  const torch::Tensor dt = sigmas_[i + 1] - sigma_hat;
  return sample + derivative * dt;
}

}  // namespace gill::schedulers
