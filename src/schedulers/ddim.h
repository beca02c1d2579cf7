// DDIMScheduler with eta = 0 (deterministic, what StableDiffusionPipeline passes), "leading" (SD) or "trailing"
// timestep spacing, epsilon / sample / v_prediction, sample clipping or dynamic thresholding of x0.
#pragma once
#include "schedulers/scheduler.h"

namespace gill::schedulers {

// Ref: diffusers v0.17.1 DDIMScheduler.__init__: the keys it reads and their defaults (note clip_sample and
// set_alpha_to_one default to true here, unlike PNDM).
struct DDIMSchedulerConfig : BetaScheduleConfig {
  bool clip_sample = true;
  bool set_alpha_to_one = true;
  int64_t steps_offset = 0;
  bool thresholding = false;
  double dynamic_thresholding_ratio = 0.995;
  double clip_sample_range = 1.0;
  double sample_max_value = 1.0;
  std::string timestep_spacing = "leading";  // leading | trailing
  bool rescale_betas_zero_snr = false;
  static DDIMSchedulerConfig from(const SchedulerConfig& c);
};

class DDIMScheduler : public Scheduler {
 public:
  explicit DDIMScheduler(const SchedulerConfig& cfg) : DDIMScheduler(DDIMSchedulerConfig::from(cfg)) {}
  explicit DDIMScheduler(DDIMSchedulerConfig cfg);
  std::string name() const override { return "ddim"; }
  void set_timesteps(int64_t n_steps) override;
  torch::Tensor step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample,
                     at::Generator* gen = nullptr) override;
  const DDIMSchedulerConfig& config() const { return cfg_; }
  // _get_variance(t, t_prev) (0-dim float32).
  torch::Tensor variance(int64_t t, int64_t t_prev) const;

 private:
  DDIMSchedulerConfig cfg_;
  torch::Tensor final_alpha_cumprod_;  // 0-dim float32
  int64_t n_steps_ = 0;
};

}  // namespace gill::schedulers
