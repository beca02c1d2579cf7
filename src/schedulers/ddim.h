// DDIMScheduler with eta = 0 (deterministic), "leading" (SD) or "trailing" timestep spacing.
#pragma once
#include "schedulers/scheduler.h"

namespace gill::schedulers {

class DDIMScheduler : public Scheduler {
 public:
  explicit DDIMScheduler(SchedulerConfig cfg);
  std::string name() const override { return "ddim"; }
  void set_timesteps(int64_t n_steps) override;
  torch::Tensor step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample,
                     at::Generator* gen = nullptr) override;

 private:
  torch::Tensor final_alpha_cumprod_;  // 0-dim float32
  int64_t n_steps_ = 0;
};

}  // namespace gill::schedulers
