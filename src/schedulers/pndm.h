// PNDMScheduler: the Runge-Kutta (PRK) warm-up then PLMS, or PLMS only with skip_prk_steps (SD v1.5's config).
// PLMS only: N steps = N+1 UNet calls. With PRK: 12 warm-up calls then N-3 PLMS calls (N >= 4).
#pragma once
#include "schedulers/scheduler.h"

namespace gill::schedulers {

// Ref: diffusers v0.17.1 PNDMScheduler.__init__: the keys it reads and their defaults.
struct PNDMSchedulerConfig : BetaScheduleConfig {
  bool skip_prk_steps = false;
  bool set_alpha_to_one = false;
  int64_t steps_offset = 0;
  static PNDMSchedulerConfig from(const SchedulerConfig& c);
};

class PNDMScheduler : public Scheduler {
 public:
  explicit PNDMScheduler(const SchedulerConfig& cfg) : PNDMScheduler(PNDMSchedulerConfig::from(cfg)) {}
  explicit PNDMScheduler(PNDMSchedulerConfig cfg);
  std::string name() const override { return "pndm"; }
  void set_timesteps(int64_t n_steps) override;
  torch::Tensor step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample,
                     at::Generator* gen = nullptr) override;
  const PNDMSchedulerConfig& config() const { return cfg_; }
  // The number of PRK calls at the start of the current run (0 with skip_prk_steps).
  int64_t n_prk_calls() const { return n_prk_; }

 private:
  torch::Tensor step_prk(const torch::Tensor& model_output, int64_t t_in, const torch::Tensor& sample);
  torch::Tensor step_plms(const torch::Tensor& model_output, int64_t t_in, const torch::Tensor& sample);
  torch::Tensor prev_sample(const torch::Tensor& sample, int64_t t, int64_t t_prev, torch::Tensor model_output) const;
  PNDMSchedulerConfig cfg_;
  torch::Tensor final_alpha_cumprod_;  // 0-dim float32
  int64_t n_steps_ = 0;
  int64_t n_prk_ = 0;
  int64_t counter_ = 0;
  std::vector<torch::Tensor> ets_;
  torch::Tensor cur_sample_;
  torch::Tensor cur_model_output_;  // undefined = upstream's integer 0
};

}  // namespace gill::schedulers
