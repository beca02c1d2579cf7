// Ref: diffusers v0.17.1 schedulers/scheduling_dpmsolver_multistep.py (__init__, set_timesteps,
// convert_model_output, dpm_solver_first_order_update, multistep_dpm_solver_second_order_update,
// multistep_dpm_solver_third_order_update, step), numpy 1.x linspace, round and unique.
#include "schedulers/dpm_solver_multistep.h"

#include <cmath>

#include "util/error.h"

namespace gill::schedulers {

using detail::str_cat;

DPMSolverMultistepSchedulerConfig DPMSolverMultistepSchedulerConfig::from(const SchedulerConfig& c) {
  DPMSolverMultistepSchedulerConfig d;
  d.read(c);
  if (c.solver_order) d.solver_order = *c.solver_order;
  if (c.thresholding) d.thresholding = *c.thresholding;
  if (c.dynamic_thresholding_ratio) d.dynamic_thresholding_ratio = *c.dynamic_thresholding_ratio;
  if (c.sample_max_value) d.sample_max_value = *c.sample_max_value;
  if (c.algorithm_type) d.algorithm_type = *c.algorithm_type;
  if (c.solver_type) d.solver_type = *c.solver_type;
  if (c.lower_order_final) d.lower_order_final = *c.lower_order_final;
  if (c.use_karras_sigmas) d.use_karras_sigmas = *c.use_karras_sigmas;
  if (c.lambda_min_clipped) d.lambda_min_clipped = *c.lambda_min_clipped;
  if (c.variance_type) d.variance_type = c.variance_type;
  return d;
}

DPMSolverMultistepScheduler::DPMSolverMultistepScheduler(DPMSolverMultistepSchedulerConfig cfg)
    : Scheduler(NoiseTables::make(cfg), cfg.num_train_timesteps), cfg_(std::move(cfg)) {
  // __init__ registers deis as dpmsolver++ and logrho / bh1 / bh2 as midpoint.
  if (cfg_.algorithm_type == "deis") cfg_.algorithm_type = "dpmsolver++";
  if (cfg_.solver_type == "logrho" || cfg_.solver_type == "bh1" || cfg_.solver_type == "bh2")
    cfg_.solver_type = "midpoint";
  check_one_of(name(), "algorithm_type", cfg_.algorithm_type,
               {"dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++"});
  check_one_of(name(), "solver_type", cfg_.solver_type, {"midpoint", "heun"});
  check_one_of(name(), "prediction_type", cfg_.prediction_type, {"epsilon", "sample", "v_prediction"});
  GILL_CHECK(cfg_.solver_order >= 1 && cfg_.solver_order <= 3, ErrorCode::kUnsupported, name(),
             " scheduler: solver_order ", cfg_.solver_order, " is not supported (1, 2, 3)");
  plus_plus_ = cfg_.algorithm_type == "dpmsolver++" || cfg_.algorithm_type == "sde-dpmsolver++";
  sde_ = cfg_.algorithm_type.rfind("sde-", 0) == 0;
  // 0.17.1's third-order update has no SDE form (it fails with an unbound result).
  GILL_CHECK(!(sde_ && cfg_.solver_order == 3), ErrorCode::kUnsupported, name(), " scheduler: solver_order 3 with ",
             "algorithm_type '", cfg_.algorithm_type,
             "' is not supported (diffusers 0.17.1 has no third-order SDE step)");
  if (cfg_.thresholding)
    GILL_CHECK(cfg_.dynamic_thresholding_ratio >= 0 && cfg_.dynamic_thresholding_ratio <= 1, ErrorCode::kUnsupported,
               name(), " scheduler: dynamic_thresholding_ratio ", cfg_.dynamic_thresholding_ratio,
               " is not supported (a quantile in [0, 1])");
  GILL_CHECK(!std::isnan(cfg_.lambda_min_clipped), ErrorCode::kUnsupported, name(),
             " scheduler: lambda_min_clipped NaN is not supported");
  const torch::Tensor& ac = tables_.alphas_cumprod;
  alpha_t_ = torch::sqrt(ac);
  sigma_t_ = torch::sqrt(1 - ac);
  lambda_t_ = torch::log(alpha_t_) - torch::log(sigma_t_);
}

void DPMSolverMultistepScheduler::set_timesteps(int64_t n_steps) {
  check_n_steps(name(), n_steps, n_train_);
  std::vector<int64_t> lin;
  if (!cfg_.use_karras_sigmas) {
    // numpy.linspace(0, T - 1 - clipped_idx, N + 1).round()[::-1][:-1], round half to even
    const int64_t clipped_idx =
        torch::searchsorted(torch::flip(lambda_t_, {0}), c10::Scalar(cfg_.lambda_min_clipped)).item<int64_t>();
    const std::vector<double> v = np_linspace(0, static_cast<double>(n_train_ - 1 - clipped_idx), n_steps + 1);
    for (int64_t k = n_steps; k >= 1; --k) lin.push_back(static_cast<int64_t>(std::nearbyint(v[k])));
  } else {
    // Karras sigmas between the smallest and the largest training sigma, mapped back to rounded timesteps, flipped
    const torch::Tensor sig = torch::pow((1 - tables_.alphas_cumprod) / tables_.alphas_cumprod, 0.5).contiguous();
    const float* fp = sig.data_ptr<float>();
    std::vector<float> log_sigmas(n_train_);
    for (int64_t k = 0; k < n_train_; ++k) log_sigmas[k] = std::log(fp[k]);  // np.log of the float32 array: float32
    const std::vector<double> ks = karras_sigmas(fp[0], fp[n_train_ - 1], n_steps);
    for (auto it = ks.rbegin(); it != ks.rend(); ++it)
      lin.push_back(static_cast<int64_t>(std::nearbyint(sigma_to_t(*it, log_sigmas))));
  }
  // numpy.unique(return_index) then sorted indices: the first occurrence of each value, in order
  std::vector<int64_t> ts;
  for (int64_t t : lin)
    if (std::find(ts.begin(), ts.end(), t) == ts.end()) ts.push_back(t);
  timesteps_ = torch::tensor(ts, torch::kInt64);
  model_outputs_.assign(cfg_.solver_order, torch::Tensor());
  lower_order_nums_ = 0;
}

torch::Tensor DPMSolverMultistepScheduler::convert_model_output(const torch::Tensor& model_output, int64_t t,
                                                                const torch::Tensor& sample) const {
  const bool learned =
      cfg_.variance_type && (*cfg_.variance_type == "learned" || *cfg_.variance_type == "learned_range");
  const torch::Tensor alpha_t = alpha_t_[t], sigma_t = sigma_t_[t];
  const std::string& pred = cfg_.prediction_type;
  if (plus_plus_) {
    torch::Tensor x0;
    if (pred == "epsilon") {
      const torch::Tensor eps = learned ? model_output.slice(1, 0, 3) : model_output;  // upstream's [:, :3]
      x0 = (sample - sigma_t * eps) / alpha_t;
    } else if (pred == "sample") {
      x0 = model_output;
    } else {
      x0 = alpha_t * sample - sigma_t * model_output;
    }
    if (cfg_.thresholding) x0 = threshold_sample(x0, cfg_.dynamic_thresholding_ratio, cfg_.sample_max_value);
    return x0;
  }
  torch::Tensor eps;
  if (pred == "epsilon") {
    eps = learned ? model_output.slice(1, 0, 3) : model_output;
  } else if (pred == "sample") {
    eps = (sample - alpha_t * model_output) / sigma_t;
  } else {
    eps = alpha_t * model_output + sigma_t * sample;
  }
  if (cfg_.thresholding) {
    torch::Tensor x0 = (sample - sigma_t * eps) / alpha_t;
    x0 = threshold_sample(x0, cfg_.dynamic_thresholding_ratio, cfg_.sample_max_value);
    eps = (sample - alpha_t * x0) / sigma_t;
  }
  return eps;
}

torch::Tensor DPMSolverMultistepScheduler::first_order(const torch::Tensor& m, int64_t s, int64_t t,
                                                       const torch::Tensor& sample, const torch::Tensor& noise) const {
  const torch::Tensor lambda_t = lambda_t_[t], lambda_s = lambda_t_[s];
  const torch::Tensor alpha_t = alpha_t_[t], alpha_s = alpha_t_[s];
  const torch::Tensor sigma_t = sigma_t_[t], sigma_s = sigma_t_[s];
  const torch::Tensor h = lambda_t - lambda_s;
  const std::string& a = cfg_.algorithm_type;
  if (a == "dpmsolver++") return (sigma_t / sigma_s) * sample - (alpha_t * (torch::exp(-h) - 1.0)) * m;
  if (a == "dpmsolver") return (alpha_t / alpha_s) * sample - (sigma_t * (torch::exp(h) - 1.0)) * m;
  if (a == "sde-dpmsolver++")
    return (sigma_t / sigma_s * torch::exp(-h)) * sample + (alpha_t * (1 - torch::exp(-2.0 * h))) * m +
           sigma_t * torch::sqrt(1.0 - torch::exp(-2 * h)) * noise;
  return (alpha_t / alpha_s) * sample - 2.0 * (sigma_t * (torch::exp(h) - 1.0)) * m +
         sigma_t * torch::sqrt(torch::exp(2 * h) - 1.0) * noise;  // sde-dpmsolver
}

torch::Tensor DPMSolverMultistepScheduler::second_order(int64_t s1, int64_t s0, int64_t t, const torch::Tensor& sample,
                                                        const torch::Tensor& noise) const {
  const size_t n = model_outputs_.size();
  const torch::Tensor& m0 = model_outputs_[n - 1];
  const torch::Tensor& m1 = model_outputs_[n - 2];
  const torch::Tensor lambda_t = lambda_t_[t], lambda_s0 = lambda_t_[s0], lambda_s1 = lambda_t_[s1];
  const torch::Tensor alpha_t = alpha_t_[t], alpha_s0 = alpha_t_[s0];
  const torch::Tensor sigma_t = sigma_t_[t], sigma_s0 = sigma_t_[s0];
  const torch::Tensor h = lambda_t - lambda_s0, h_0 = lambda_s0 - lambda_s1;
  const torch::Tensor r0 = h_0 / h;
  const torch::Tensor& D0 = m0;
  const torch::Tensor D1 = torch::reciprocal(r0) * 1.0 * (m0 - m1);  // Python 1.0 / r0 = r0.reciprocal() * 1.0
  const bool midpoint = cfg_.solver_type == "midpoint";
  const std::string& a = cfg_.algorithm_type;
  if (a == "dpmsolver++") {
    const torch::Tensor base = (sigma_t / sigma_s0) * sample - (alpha_t * (torch::exp(-h) - 1.0)) * D0;
    if (midpoint) return base - 0.5 * (alpha_t * (torch::exp(-h) - 1.0)) * D1;
    return base + (alpha_t * ((torch::exp(-h) - 1.0) / h + 1.0)) * D1;
  }
  if (a == "dpmsolver") {
    const torch::Tensor base = (alpha_t / alpha_s0) * sample - (sigma_t * (torch::exp(h) - 1.0)) * D0;
    if (midpoint) return base - 0.5 * (sigma_t * (torch::exp(h) - 1.0)) * D1;
    return base - (sigma_t * ((torch::exp(h) - 1.0) / h - 1.0)) * D1;
  }
  if (a == "sde-dpmsolver++") {
    const torch::Tensor base =
        (sigma_t / sigma_s0 * torch::exp(-h)) * sample + (alpha_t * (1 - torch::exp(-2.0 * h))) * D0;
    const torch::Tensor with_d1 = midpoint ? base + 0.5 * (alpha_t * (1 - torch::exp(-2.0 * h))) * D1
                                           : base + (alpha_t * ((1.0 - torch::exp(-2.0 * h)) / (-2.0 * h) + 1.0)) * D1;
    return with_d1 + sigma_t * torch::sqrt(1.0 - torch::exp(-2 * h)) * noise;
  }
  // sde-dpmsolver
  const torch::Tensor base = (alpha_t / alpha_s0) * sample - 2.0 * (sigma_t * (torch::exp(h) - 1.0)) * D0;
  const torch::Tensor with_d1 = midpoint ? base - (sigma_t * (torch::exp(h) - 1.0)) * D1
                                         : base - 2.0 * (sigma_t * ((torch::exp(h) - 1.0) / h - 1.0)) * D1;
  return with_d1 + sigma_t * torch::sqrt(torch::exp(2 * h) - 1.0) * noise;
}

torch::Tensor DPMSolverMultistepScheduler::third_order(int64_t s2, int64_t s1, int64_t s0, int64_t t,
                                                       const torch::Tensor& sample) const {
  const size_t n = model_outputs_.size();
  const torch::Tensor& m0 = model_outputs_[n - 1];
  const torch::Tensor& m1 = model_outputs_[n - 2];
  const torch::Tensor& m2 = model_outputs_[n - 3];
  const torch::Tensor lambda_t = lambda_t_[t], lambda_s0 = lambda_t_[s0], lambda_s1 = lambda_t_[s1],
                      lambda_s2 = lambda_t_[s2];
  const torch::Tensor alpha_t = alpha_t_[t], alpha_s0 = alpha_t_[s0];
  const torch::Tensor sigma_t = sigma_t_[t], sigma_s0 = sigma_t_[s0];
  const torch::Tensor h = lambda_t - lambda_s0, h_0 = lambda_s0 - lambda_s1, h_1 = lambda_s1 - lambda_s2;
  const torch::Tensor r0 = h_0 / h, r1 = h_1 / h;
  const torch::Tensor& D0 = m0;
  const torch::Tensor D1_0 = torch::reciprocal(r0) * 1.0 * (m0 - m1);
  const torch::Tensor D1_1 = torch::reciprocal(r1) * 1.0 * (m1 - m2);
  const torch::Tensor D1 = D1_0 + (r0 / (r0 + r1)) * (D1_0 - D1_1);
  const torch::Tensor D2 = torch::reciprocal(r0 + r1) * 1.0 * (D1_0 - D1_1);
  if (cfg_.algorithm_type == "dpmsolver++")
    return (sigma_t / sigma_s0) * sample - (alpha_t * (torch::exp(-h) - 1.0)) * D0 +
           (alpha_t * ((torch::exp(-h) - 1.0) / h + 1.0)) * D1 -
           (alpha_t * ((torch::exp(-h) - 1.0 + h) / torch::pow(h, 2) - 0.5)) * D2;
  return (alpha_t / alpha_s0) * sample - (sigma_t * (torch::exp(h) - 1.0)) * D0 -
         (sigma_t * ((torch::exp(h) - 1.0) / h - 1.0)) * D1 -
         (sigma_t * ((torch::exp(h) - 1.0 - h) / torch::pow(h, 2) - 0.5)) * D2;  // dpmsolver
}

torch::Tensor DPMSolverMultistepScheduler::step(const torch::Tensor& model_output, int64_t i,
                                                const torch::Tensor& sample, at::Generator* gen) {
  check_index(i);
  const int64_t n = timesteps_.size(0);
  const int64_t s0 = timesteps_[i].item<int64_t>();
  const int64_t t = i == n - 1 ? 0 : timesteps_[i + 1].item<int64_t>();
  const bool lower_order_final = i == n - 1 && cfg_.lower_order_final && n < 15;
  const bool lower_order_second = i == n - 2 && cfg_.lower_order_final && n < 15;

  const torch::Tensor m0 = convert_model_output(model_output, s0, sample);
  model_outputs_.erase(model_outputs_.begin());
  model_outputs_.push_back(m0);

  torch::Tensor noise;
  if (sde_) {
    GILL_CHECK(gen != nullptr, ErrorCode::kInvalidArgument, name(), " scheduler: algorithm_type '", cfg_.algorithm_type,
               "' draws noise at every step and needs a generator");
    noise = torch::randn(m0.sizes(), *gen, m0.options().device(torch::kCPU)).to(m0.device());
  }
  const int64_t order = cfg_.solver_order;
  torch::Tensor out;
  if (order == 1 || lower_order_nums_ < 1 || lower_order_final) {
    out = first_order(m0, s0, t, sample, noise);
  } else if (order == 2 || lower_order_nums_ < 2 || lower_order_second) {
    out = second_order(timesteps_[i - 1].item<int64_t>(), s0, t, sample, noise);
  } else {
    out = third_order(timesteps_[i - 2].item<int64_t>(), timesteps_[i - 1].item<int64_t>(), s0, t, sample);
  }
  if (lower_order_nums_ < order) ++lower_order_nums_;
  return out;
}

}  // namespace gill::schedulers
