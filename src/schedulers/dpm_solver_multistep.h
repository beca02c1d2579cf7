// DPMSolverMultistepScheduler (0.17.1): DPM-Solver / DPM-Solver++ and their SDE variants, orders 1-3, midpoint or
// heun, lower_order_final, Karras timesteps, lambda_min_clipped, thresholding. SD's default settings make it
// DPM-Solver++ 2M (the CLI name "dpm++2m"). The last step goes to t = 0 (alpha_0, sigma_0), not to sigma = 0.
#pragma once
#include <limits>

#include "schedulers/scheduler.h"

namespace gill::schedulers {

// Ref: diffusers v0.17.1 DPMSolverMultistepScheduler.__init__: the keys it reads and their defaults.
struct DPMSolverMultistepSchedulerConfig : BetaScheduleConfig {
  int64_t solver_order = 2;  // 1 | 2 | 3
  bool thresholding = false;
  double dynamic_thresholding_ratio = 0.995;
  double sample_max_value = 1.0;
  std::string algorithm_type =
      "dpmsolver++";  // dpmsolver | dpmsolver++ | sde-dpmsolver | sde-dpmsolver++ (deis -> dpmsolver++)
  std::string solver_type = "midpoint";  // midpoint | heun (logrho, bh1, bh2 -> midpoint)
  bool lower_order_final = true;
  bool use_karras_sigmas = false;
  double lambda_min_clipped = -std::numeric_limits<double>::infinity();
  std::optional<std::string> variance_type;  // null | learned | learned_range (others act as null)
  static DPMSolverMultistepSchedulerConfig from(const SchedulerConfig& c);
};

class DPMSolverMultistepScheduler : public Scheduler {
 public:
  explicit DPMSolverMultistepScheduler(const SchedulerConfig& cfg)
      : DPMSolverMultistepScheduler(DPMSolverMultistepSchedulerConfig::from(cfg)) {}
  explicit DPMSolverMultistepScheduler(DPMSolverMultistepSchedulerConfig cfg);
  std::string name() const override { return "dpm++2m"; }
  void set_timesteps(int64_t n_steps) override;
  torch::Tensor step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample,
                     at::Generator* gen = nullptr) override;
  const DPMSolverMultistepSchedulerConfig& config() const { return cfg_; }
  const torch::Tensor& alpha_t() const { return alpha_t_; }
  const torch::Tensor& sigma_t() const { return sigma_t_; }
  const torch::Tensor& lambda_t() const { return lambda_t_; }

 private:
  torch::Tensor convert_model_output(const torch::Tensor& model_output, int64_t t, const torch::Tensor& sample) const;
  torch::Tensor first_order(const torch::Tensor& m0, int64_t s0, int64_t t, const torch::Tensor& sample,
                            const torch::Tensor& noise) const;
  torch::Tensor second_order(int64_t s1, int64_t s0, int64_t t, const torch::Tensor& sample,
                             const torch::Tensor& noise) const;
  torch::Tensor third_order(int64_t s2, int64_t s1, int64_t s0, int64_t t, const torch::Tensor& sample) const;
  DPMSolverMultistepSchedulerConfig cfg_;
  bool plus_plus_ = true;  // dpmsolver++ / sde-dpmsolver++: x0 model outputs; else epsilon
  bool sde_ = false;
  torch::Tensor alpha_t_, sigma_t_, lambda_t_;  // float32 [T]
  std::vector<torch::Tensor> model_outputs_;    // the last solver_order converted outputs, oldest first
  int64_t lower_order_nums_ = 0;
};

}  // namespace gill::schedulers
