// Ref: diffusers v0.17.1 schedulers/scheduling_pndm.py (__init__, set_timesteps, step, step_prk, step_plms,
// _get_prev_sample).
#include "schedulers/pndm.h"

#include "util/error.h"

namespace gill::schedulers {

PNDMSchedulerConfig PNDMSchedulerConfig::from(const SchedulerConfig& c) {
  PNDMSchedulerConfig p;
  p.read(c);
  if (c.skip_prk_steps) p.skip_prk_steps = *c.skip_prk_steps;
  if (c.set_alpha_to_one) p.set_alpha_to_one = *c.set_alpha_to_one;
  if (c.steps_offset) p.steps_offset = *c.steps_offset;
  return p;
}

PNDMScheduler::PNDMScheduler(PNDMSchedulerConfig cfg)
    : Scheduler(NoiseTables::make(cfg), cfg.num_train_timesteps), cfg_(std::move(cfg)) {
  check_one_of(name(), "prediction_type", cfg_.prediction_type, {"epsilon", "v_prediction"});
  final_alpha_cumprod_ = cfg_.set_alpha_to_one ? torch::tensor(1.0f) : tables_.alphas_cumprod[0].clone();
}

void PNDMScheduler::set_timesteps(int64_t n_steps) {
  check_n_steps(name(), n_steps, n_train_);
  GILL_CHECK(cfg_.skip_prk_steps || n_steps >= 4, ErrorCode::kUnsupported,
             "pndm scheduler: skip_prk_steps=false (Runge-Kutta warm-up) needs at least 4 steps, got ", n_steps,
             " (diffusers 0.17.1 cannot build its PRK timesteps either)");
  n_steps_ = n_steps;
  const int64_t ratio = n_train_ / n_steps;
  std::vector<int64_t> base(n_steps);
  for (int64_t k = 0; k < n_steps; ++k) base[k] = k * ratio + cfg_.steps_offset;
  std::vector<int64_t> ts;
  if (cfg_.skip_prk_steps) {
    // plms = base[:-1] ++ base[-2:-1] ++ base[-1:], reversed
    ts.assign(base.begin(), base.end() - 1);
    if (n_steps >= 2) ts.push_back(base[n_steps - 2]);
    ts.push_back(base[n_steps - 1]);
    std::reverse(ts.begin(), ts.end());
    n_prk_ = 0;
  } else {
    // prk = (repeat(base[-4:], 2) + tile([0, T // N // 2], 4))[:-1].repeat(2)[1:-1], reversed (12 calls)
    const int64_t half = n_train_ / n_steps / 2;
    std::vector<int64_t> a;
    for (int64_t k = n_steps - 4; k < n_steps; ++k) {
      a.push_back(base[k]);
      a.push_back(base[k] + half);
    }
    a.pop_back();
    std::vector<int64_t> rep;
    for (int64_t v : a) rep.insert(rep.end(), {v, v});
    ts.assign(rep.begin() + 1, rep.end() - 1);
    std::reverse(ts.begin(), ts.end());
    n_prk_ = static_cast<int64_t>(ts.size());
    // plms = base[:-3], reversed
    for (int64_t k = n_steps - 4; k >= 0; --k) ts.push_back(base[k]);
  }
  check_timesteps_in_range(name(), ts, n_steps, cfg_.steps_offset, n_train_);
  timesteps_ = torch::tensor(ts, torch::kInt64);
  ets_.clear();
  counter_ = 0;
  cur_sample_ = torch::Tensor();
  cur_model_output_ = torch::Tensor();
}

torch::Tensor PNDMScheduler::step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample,
                                  at::Generator* /*gen*/) {
  check_index(i);
  const int64_t t = timesteps_[i].item<int64_t>();
  if (counter_ < n_prk_ && !cfg_.skip_prk_steps) return step_prk(model_output, t, sample);
  return step_plms(model_output, t, sample);
}

torch::Tensor PNDMScheduler::step_prk(const torch::Tensor& model_output_in, int64_t t_in, const torch::Tensor& sample) {
  const int64_t diff_to_prev = counter_ % 2 ? 0 : n_train_ / n_steps_ / 2;
  const int64_t t_prev = t_in - diff_to_prev;
  const int64_t t = timesteps_[counter_ / 4 * 4].item<int64_t>();
  // upstream's cur_model_output starts as the integer 0: 0 + x is x
  auto accumulate = [&](const torch::Tensor& x) { return cur_model_output_.defined() ? cur_model_output_ + x : x + 0; };
  torch::Tensor model_output = model_output_in;
  if (counter_ % 4 == 0) {
    cur_model_output_ = accumulate((1.0 / 6) * model_output);
    ets_.push_back(model_output);
    cur_sample_ = sample;
  } else if ((counter_ - 1) % 4 == 0 || (counter_ - 2) % 4 == 0) {
    cur_model_output_ = accumulate((1.0 / 3) * model_output);
  } else {
    model_output = accumulate((1.0 / 6) * model_output);
    cur_model_output_ = torch::Tensor();
  }
  const torch::Tensor& cur = cur_sample_.defined() ? cur_sample_ : sample;
  torch::Tensor out = prev_sample(cur, t, t_prev, model_output);
  ++counter_;
  return out;
}

torch::Tensor PNDMScheduler::step_plms(const torch::Tensor& model_output, int64_t t_in, const torch::Tensor& sample) {
  GILL_CHECK(cfg_.skip_prk_steps || ets_.size() >= 3, ErrorCode::kInternal,
             "pndm scheduler: PLMS step before the 12 PRK steps");
  const int64_t ratio = n_train_ / n_steps_;
  int64_t t = t_in;
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
                                         torch::Tensor model_output) const {
  // Formula (9) of the PNDM paper, with 0-dim float32 coefficients as upstream.
  const torch::Tensor a = tables_.alphas_cumprod[t];
  const torch::Tensor a_prev = t_prev >= 0 ? tables_.alphas_cumprod[t_prev] : final_alpha_cumprod_;
  const torch::Tensor b = 1 - a;
  const torch::Tensor b_prev = 1 - a_prev;
  if (cfg_.prediction_type == "v_prediction")
    model_output = torch::pow(a, 0.5) * model_output + torch::pow(b, 0.5) * sample;
  const torch::Tensor sample_coeff = torch::pow(a_prev / a, 0.5);
  const torch::Tensor denom = a * torch::pow(b_prev, 0.5) + torch::pow(a * b * a_prev, 0.5);
  return sample_coeff * sample - (a_prev - a) * model_output / denom;
}

}  // namespace gill::schedulers
