// Ref: diffusers v0.17.1 schedulers/scheduling_euler_discrete.py (__init__, set_timesteps, _sigma_to_t,
// _convert_to_karras, scale_model_input, step with s_churn = 0), numpy 1.x linspace and interp.
#include "schedulers/euler_discrete.h"

#include <cmath>

#include "util/error.h"

namespace gill::schedulers {

EulerDiscreteSchedulerConfig EulerDiscreteSchedulerConfig::from(const SchedulerConfig& c) {
  EulerDiscreteSchedulerConfig e;
  e.read(c);
  if (c.interpolation_type) e.interpolation_type = *c.interpolation_type;
  if (c.use_karras_sigmas) e.use_karras_sigmas = *c.use_karras_sigmas;
  return e;
}

EulerDiscreteScheduler::EulerDiscreteScheduler(EulerDiscreteSchedulerConfig cfg)
    : Scheduler(NoiseTables::make(cfg), cfg.num_train_timesteps), cfg_(std::move(cfg)) {
  check_one_of(name(), "prediction_type", cfg_.prediction_type,
               {"epsilon", "v_prediction", "sample", "original_sample"});
  check_one_of(name(), "interpolation_type", cfg_.interpolation_type, {"linear", "log_linear"});
  const torch::Tensor& ac = tables_.alphas_cumprod;
  train_sigmas_ = torch::pow((1 - ac) / ac, 0.5);  // float32, as the torch expression upstream
  init_noise_sigma_ = train_sigmas_.max().item<float>();
}

void EulerDiscreteScheduler::set_timesteps(int64_t n_steps) {
  check_n_steps(name(), n_steps, n_train_);
  const int64_t T = n_train_;
  // numpy.linspace(0, T-1, N, dtype=float), reversed
  std::vector<double> ts = np_linspace(0.0, static_cast<double>(T - 1), n_steps);
  std::reverse(ts.begin(), ts.end());
  auto tab32 = train_sigmas_.contiguous();
  const float* fp = tab32.data_ptr<float>();
  std::vector<double> sig;  // float64 as numpy holds them (log_linear: float32 values)
  if (cfg_.interpolation_type == "linear") {
    // numpy.interp(ts, arange(T), train_sigmas): float64 arithmetic on the float32 table
    for (const double x : ts) {
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
          const double slope = (static_cast<double>(fp[j + 1]) - fp[j]) / (static_cast<double>(j + 1) - j);
          y = slope * (x - static_cast<double>(j)) + fp[j];
        }
      }
      sig.push_back(y);
    }
  } else {
    // torch.linspace(log(sigmas[-1]), log(sigmas[0]), N + 1).exp(): float32, N + 1 values
    const float hi = std::log(fp[T - 1]), lo = std::log(fp[0]);  // np.log of a float32 is a float32
    torch::Tensor l = torch::linspace(hi, lo, n_steps + 1, torch::kFloat32).exp().contiguous();
    sig.assign(l.data_ptr<float>(), l.data_ptr<float>() + l.numel());
  }
  if (cfg_.use_karras_sigmas) {
    std::vector<float> log_sigmas(T);
    for (int64_t k = 0; k < T; ++k) log_sigmas[k] = std::log(fp[k]);  // np.log of the float32 array: float32
    sig = karras_sigmas(sig.front(), sig.back(), n_steps);
    ts.clear();
    for (const double s : sig) ts.push_back(sigma_to_t(s, log_sigmas));
  }
  std::vector<float> sig32;
  for (const double s : sig) sig32.push_back(static_cast<float>(s));
  sig32.push_back(0.0f);
  timesteps_ = torch::tensor(ts, torch::kFloat64);
  sigmas_ = torch::tensor(sig32, torch::kFloat32);
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
  torch::Tensor x0;
  if (cfg_.prediction_type == "epsilon") {
    x0 = sample - sigma_hat * model_output;
  } else if (cfg_.prediction_type == "v_prediction") {
    x0 = model_output * (-sigma / torch::pow(torch::pow(sigma, 2) + 1, 0.5)) + (sample / (torch::pow(sigma, 2) + 1));
  } else {  // sample, original_sample
    x0 = model_output;
  }
  const torch::Tensor derivative = (sample - x0) / sigma_hat;
  const torch::Tensor dt = sigmas_[i + 1] - sigma_hat;
  return sample + derivative * dt;
}

}  // namespace gill::schedulers
