// Ref: diffusers v0.17.1 schedulers/scheduling_dpmsolver_multistep.py (__init__, set_timesteps,
// convert_model_output, dpm_solver_first_order_update, multistep_dpm_solver_second_order_update, step) with
// algorithm_type "dpmsolver++", solver_order 2, solver_type "midpoint", lower_order_final true.
#include "schedulers/dpm_solver_multistep.h"

#include "util/error.h"

namespace gill::schedulers {

DPMSolverMultistepScheduler::DPMSolverMultistepScheduler(SchedulerConfig cfg) : Scheduler(std::move(cfg)) {
  GILL_CHECK(!cfg_.thresholding, ErrorCode::kUnsupported, "dpm++2m scheduler: thresholding=true is not supported");
  const torch::Tensor& ac = tables_.alphas_cumprod;
  alpha_t_ = torch::sqrt(ac);
  sigma_t_ = torch::sqrt(1 - ac);
  lambda_t_ = torch::log(alpha_t_) - torch::log(sigma_t_);
}

void DPMSolverMultistepScheduler::set_timesteps(int64_t n_steps) {
  check_n_steps(name(), n_steps, cfg_.num_train_timesteps);
  // lambda_min_clipped = -inf -> clipped_idx = 0.
  // numpy.linspace(0, T-1, N+1).round()[::-1][:-1], round half to even, then unique keeping first occurrences.
  const double stop = static_cast<double>(cfg_.num_train_timesteps - 1);
  const double stepsize = stop / static_cast<double>(n_steps);
  std::vector<int64_t> lin(n_steps + 1);
  for (int64_t k = 0; k <= n_steps; ++k) {
    const double v = k == n_steps ? stop : static_cast<double>(k) * stepsize + 0.0;
    lin[k] = static_cast<int64_t>(std::nearbyint(v));
  }
  std::vector<int64_t> ts;
  for (int64_t k = n_steps; k >= 1; --k) {
    if (std::find(ts.begin(), ts.end(), lin[k]) == ts.end()) ts.push_back(lin[k]);
  }
  timesteps_ = torch::tensor(ts, torch::kInt64);
  model_outputs_.assign(2, torch::Tensor());
  lower_order_nums_ = 0;
}

torch::Tensor DPMSolverMultistepScheduler::step(const torch::Tensor& model_output, int64_t i,
                                                const torch::Tensor& sample, at::Generator* /*gen*/) {
  check_index(i);
  const int64_t n = timesteps_.size(0);
  const int64_t s0 = timesteps_[i].item<int64_t>();
  const int64_t t = i == n - 1 ? 0 : timesteps_[i + 1].item<int64_t>();
  const bool lower_order_final = i == n - 1 && n < 15;

  // convert_model_output: x0 prediction from epsilon.
  const torch::Tensor m0 = (sample - sigma_t_[s0] * model_output) / alpha_t_[s0];
  model_outputs_[0] = model_outputs_[1];
  model_outputs_[1] = m0;

  const torch::Tensor lambda_t = lambda_t_[t], lambda_s0 = lambda_t_[s0];
  const torch::Tensor alpha_t = alpha_t_[t];
  const torch::Tensor sigma_t = sigma_t_[t], sigma_s0 = sigma_t_[s0];
  const torch::Tensor h = lambda_t - lambda_s0;
  torch::Tensor out;
  if (lower_order_nums_ < 1 || lower_order_final) {
    out = (sigma_t / sigma_s0) * sample - (alpha_t * (torch::exp(-h) - 1.0)) * m0;
  } else {
    const int64_t s1 = timesteps_[i - 1].item<int64_t>();
    const torch::Tensor& m1 = model_outputs_[0];
    const torch::Tensor h0 = lambda_s0 - lambda_t_[s1];
    const torch::Tensor r0 = h0 / h;
    const torch::Tensor D1 = torch::reciprocal(r0) * 1.0 * (m0 - m1);  // Python 1.0 / r0 = r0.reciprocal() * 1.0
    out = (sigma_t / sigma_s0) * sample - (alpha_t * (torch::exp(-h) - 1.0)) * m0 -
          0.5 * (alpha_t * (torch::exp(-h) - 1.0)) * D1;
  }
  if (lower_order_nums_ < 2) ++lower_order_nums_;
  return out;
}

}  // namespace gill::schedulers
