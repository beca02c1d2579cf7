// EulerDiscreteScheduler (0.17.1): float64 linspace timesteps, sigmas by linear or log-linear interpolation or
// Karras et al., s_churn 0 (what StableDiffusionPipeline passes), epsilon / v_prediction / sample.
#pragma once
#include "schedulers/scheduler.h"

namespace gill::schedulers {

// Ref: diffusers v0.17.1 EulerDiscreteScheduler.__init__: the keys it reads and their defaults.
struct EulerDiscreteSchedulerConfig : BetaScheduleConfig {
  std::string interpolation_type = "linear";  // linear | log_linear
  bool use_karras_sigmas = false;
  static EulerDiscreteSchedulerConfig from(const SchedulerConfig& c);
};

class EulerDiscreteScheduler : public Scheduler {
 public:
  explicit EulerDiscreteScheduler(const SchedulerConfig& cfg)
      : EulerDiscreteScheduler(EulerDiscreteSchedulerConfig::from(cfg)) {}
  explicit EulerDiscreteScheduler(EulerDiscreteSchedulerConfig cfg);
  std::string name() const override { return "euler"; }
  void set_timesteps(int64_t n_steps) override;
  double init_noise_sigma() const override { return init_noise_sigma_; }
  torch::Tensor scale_model_input(const torch::Tensor& sample, int64_t i) const override;
  torch::Tensor step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample,
                     at::Generator* gen = nullptr) override;
  const EulerDiscreteSchedulerConfig& config() const { return cfg_; }
  // The sigmas of the current run (float32): N+1 with a trailing 0 (log_linear: N+2, as 0.17.1 builds them).
  const torch::Tensor& sigmas() const { return sigmas_; }
  // sqrt((1 - alphas_cumprod) / alphas_cumprod), float32 [T].
  const torch::Tensor& train_sigmas() const { return train_sigmas_; }

 private:
  EulerDiscreteSchedulerConfig cfg_;
  torch::Tensor train_sigmas_;
  torch::Tensor sigmas_;
  double init_noise_sigma_ = 1.0;
};

}  // namespace gill::schedulers
