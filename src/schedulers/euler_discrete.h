// EulerDiscreteScheduler (0.17.1: linspace timesteps as float64, linear sigma interpolation, s_churn 0).
#pragma once
#include "schedulers/scheduler.h"

namespace gill::schedulers {

class EulerDiscreteScheduler : public Scheduler {
 public:
  explicit EulerDiscreteScheduler(SchedulerConfig cfg);
  std::string name() const override { return "euler"; }
  void set_timesteps(int64_t n_steps) override;
  double init_noise_sigma() const override { return init_noise_sigma_; }
  torch::Tensor scale_model_input(const torch::Tensor& sample, int64_t i) const override;
  torch::Tensor step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample,
                     at::Generator* gen = nullptr) override;
  // The N+1 sigmas of the current run (float32, trailing 0).
  const torch::Tensor& sigmas() const { return sigmas_; }
  // sqrt((1 - alphas_cumprod) / alphas_cumprod), float32 [T].
  const torch::Tensor& train_sigmas() const { return train_sigmas_; }

 private:
  torch::Tensor train_sigmas_;
  torch::Tensor sigmas_;
  double init_noise_sigma_ = 1.0;
};

}  // namespace gill::schedulers
