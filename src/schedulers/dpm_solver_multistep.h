// DPMSolverMultistepScheduler as DPM-Solver++ 2M (algorithm_type dpmsolver++, solver_order 2, midpoint,
// lower_order_final), 0.17.1 behaviour: the last step goes to t = 0 (alpha_0, sigma_0), not to sigma = 0.
#pragma once
#include "schedulers/scheduler.h"

namespace gill::schedulers {

class DPMSolverMultistepScheduler : public Scheduler {
 public:
  explicit DPMSolverMultistepScheduler(SchedulerConfig cfg);
  std::string name() const override { return "dpm++2m"; }
  void set_timesteps(int64_t n_steps) override;
  torch::Tensor step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample,
                     at::Generator* gen = nullptr) override;
  const torch::Tensor& alpha_t() const { return alpha_t_; }
  const torch::Tensor& sigma_t() const { return sigma_t_; }
  const torch::Tensor& lambda_t() const { return lambda_t_; }

 private:
  torch::Tensor alpha_t_, sigma_t_, lambda_t_;  // float32 [T]
  std::vector<torch::Tensor> model_outputs_;    // [m_{i-1}, m_i] (x0 predictions)
  int64_t lower_order_nums_ = 0;
};

}  // namespace gill::schedulers
