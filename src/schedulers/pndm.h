// PNDMScheduler with skip_prk_steps (PLMS only): SD v1.5's default. N steps = N+1 UNet calls.
#pragma once
#include "schedulers/scheduler.h"

namespace gill::schedulers {

class PNDMScheduler : public Scheduler {
 public:
  explicit PNDMScheduler(SchedulerConfig cfg);
  std::string name() const override { return "pndm"; }
  void set_timesteps(int64_t n_steps) override;
  torch::Tensor step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample,
                     at::Generator* gen = nullptr) override;

 private:
  torch::Tensor prev_sample(const torch::Tensor& sample, int64_t t, int64_t t_prev,
                            const torch::Tensor& model_output) const;
  torch::Tensor final_alpha_cumprod_;  // 0-dim float32
  int64_t n_steps_ = 0;
  int64_t counter_ = 0;
  std::vector<torch::Tensor> ets_;
  torch::Tensor cur_sample_;
};

}  // namespace gill::schedulers
