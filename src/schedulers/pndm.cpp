// Ref: diffusers v0.17.1 schedulers/scheduling_pndm.py (set_timesteps, step_plms, _get_prev_sample).
#include "schedulers/pndm.h"

#include "util/error.h"

namespace gill::schedulers {

PNDMScheduler::PNDMScheduler(SchedulerConfig cfg) : Scheduler(std::move(cfg)) {
  GILL_CHECK(cfg_.skip_prk_steps, ErrorCode::kUnsupported,
             "pndm scheduler: skip_prk_steps=false (Runge-Kutta warm-up) is not supported; SD configs set it true");
  final_alpha_cumprod_ =
      cfg_.set_alpha_to_one ? torch::tensor(1.0f) : tables_.alphas_cumprod[0].clone();
}

void PNDMScheduler::set_timesteps(int64_t n_steps) {
  check_n_steps(name(), n_steps, cfg_.num_train_timesteps);
  n_steps_ = n_steps;
  const int64_t ratio = cfg_.num_train_timesteps / n_steps;
  std::vector<int64_t> base(n_steps);
  for (int64_t k = 0; k < n_steps; ++k) base[k] = k * ratio + cfg_.steps_offset;
  // plms = base[:-1] ++ base[-2:-1] ++ base[-1:], reversed
  std::vector<int64_t> plms(base.begin(), base.end() - 1);
  if (n_steps >= 2) plms.push_back(base[n_steps - 2]);
  plms.push_back(base[n_steps - 1]);
  std::reverse(plms.begin(), plms.end());
  timesteps_ = torch::tensor(plms, torch::kInt64);
  ets_.clear();
  counter_ = 0;
  cur_sample_ = torch::Tensor();
}

torch::Tensor PNDMScheduler::step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample,
                                  at::Generator* /*gen*/) {
  check_index(i);
  const int64_t ratio = cfg_.num_train_timesteps / n_steps_;
  int64_t t = timesteps_[i].item<int64_t>();
  int64_t t_prev = t - ratio;
  if (counter_ != 1) {
    if (ets_.size() > 3) ets_.erase(ets_.begin(), ets_.end() - 3);
    ets_.push_back(model_output);
  } else {
    t_prev = t;
    t = t + ratio;
  }
  torch::Tensor e;
  torch::Tensor x = sample;
  const size_t n = ets_.size();
  if (n == 1 && counter_ == 0) {
    e = model_output;
    cur_sample_ = sample;
  } else if (n == 1 && counter_ == 1) {
    e = (model_output + ets_[n - 1]) / 2;
    GILL_CHECK(cur_sample_.defined(), ErrorCode::kInternal, "pndm scheduler: missing saved sample");
    x = cur_sample_;
    cur_sample_ = torch::Tensor();
  } else if (n == 2) {
    e = (3 * ets_[n - 1] - ets_[n - 2]) / 2;
  } else if (n == 3) {
    e = (23 * ets_[n - 1] - 16 * ets_[n - 2] + 5 * ets_[n - 3]) / 12;
  } else {
    e = (1.0 / 24) * (55 * ets_[n - 1] - 59 * ets_[n - 2] + 37 * ets_[n - 3] - 9 * ets_[n - 4]);
  }
  torch::Tensor out = prev_sample(x, t, t_prev, e);
  ++counter_;
  return out;
}

torch::Tensor PNDMScheduler::prev_sample(const torch::Tensor& sample, int64_t t, int64_t t_prev,
                                         const torch::Tensor& model_output) const {
  // Formula (9) of the PNDM paper, with 0-dim float32 coefficients as upstream.
  const torch::Tensor a = tables_.alphas_cumprod[t];
  const torch::Tensor a_prev = t_prev >= 0 ? tables_.alphas_cumprod[t_prev] : final_alpha_cumprod_;
  const torch::Tensor b = 1 - a;
  const torch::Tensor b_prev = 1 - a_prev;
  const torch::Tensor sample_coeff = torch::pow(a_prev / a, 0.5);
  const torch::Tensor denom = a * torch::pow(b_prev, 0.5) + torch::pow(a * b * a_prev, 0.5);
  return sample_coeff * sample - (a_prev - a) * model_output / denom;
}

}  // namespace gill::schedulers
