// diffusers v0.17.1 tests/schedulers, ported: the full-loop tests of test_scheduler_{pndm,ddim,euler,dpm_multi}.py
// with SchedulerCommonTest's dummy_sample_deter and dummy_model (sample * t / (t + 1)), each scheduler built from
// the test's get_scheduler_config (absent keys take the class's own defaults), checked against the published
// sums / means with the published tolerances. Then the keys each class honours or refuses (docs/schedulers.md).
#include <nlohmann/json.hpp>

#include "schedulers/ddim.h"
#include "schedulers/dpm_solver_multistep.h"
#include "schedulers/euler_discrete.h"
#include "schedulers/pndm.h"
#include "test_support.h"

using namespace gill;
using namespace gill::schedulers;
using gill::test::expect_error;

namespace {

// SchedulerCommonTest.dummy_sample_deter: arange(4*3*8*8).reshape(3, 8, 8, 4) / n, permuted to [4, 3, 8, 8].
torch::Tensor dummy_sample_deter() {
  const int64_t n = 4 * 3 * 8 * 8;
  return (torch::arange(n).reshape({3, 8, 8, 4}) / n).permute({3, 0, 1, 2});  // [4, 3, 8, 8] float32
}

// SchedulerCommonTest.dummy_model.
torch::Tensor dummy_model(const torch::Tensor& sample, const torch::Tensor& t) { return sample * t / (t + 1); }

// get_scheduler_config(**kwargs): the test's base dict updated with the overrides.
SchedulerConfig diffusers_config(nlohmann::json base, const nlohmann::json& overrides) {
  for (const auto& [k, v] : overrides.items()) base[k] = v;
  return SchedulerConfig::from_json(base);
}

const nlohmann::json kPndmBase = {
    {"num_train_timesteps", 1000}, {"beta_start", 0.0001}, {"beta_end", 0.02}, {"beta_schedule", "linear"}};
const nlohmann::json kDdimBase = {{"num_train_timesteps", 1000},
                                  {"beta_start", 0.0001},
                                  {"beta_end", 0.02},
                                  {"beta_schedule", "linear"},
                                  {"clip_sample", true}};
const nlohmann::json kEulerBase = {
    {"num_train_timesteps", 1100}, {"beta_start", 0.0001}, {"beta_end", 0.02}, {"beta_schedule", "linear"}};
const nlohmann::json kDpmBase = {{"num_train_timesteps", 1000},
                                 {"beta_start", 0.0001},
                                 {"beta_end", 0.02},
                                 {"beta_schedule", "linear"},
                                 {"solver_order", 2},
                                 {"prediction_type", "epsilon"},
                                 {"thresholding", false},
                                 {"sample_max_value", 1.0},
                                 {"algorithm_type", "dpmsolver++"},
                                 {"solver_type", "midpoint"},
                                 {"lower_order_final", false},
                                 {"variance_type", nullptr}};  // lambda_min_clipped -inf: the class default

// The full_loop of the PNDM / DDIM / DPM tests: model on the sample, step, 10 steps (DDIM: eta 0).
torch::Tensor full_loop(Scheduler& s, torch::Tensor sample, int64_t n_steps = 10, at::Generator* gen = nullptr) {
  s.set_timesteps(n_steps);
  for (int64_t i = 0; i < s.n_calls(); ++i) sample = s.step(dummy_model(sample, s.timestep(i)), i, sample, gen);
  return sample;
}

// EulerDiscreteSchedulerTest's loop: the scaled input replaces the sample, generator torch.manual_seed(0).
torch::Tensor euler_loop(EulerDiscreteScheduler& s) {
  s.set_timesteps(10);
  at::Generator gen = make_cpu_generator(0);
  torch::Tensor sample = dummy_sample_deter() * s.init_noise_sigma();
  for (int64_t i = 0; i < s.n_calls(); ++i) {
    sample = s.scale_model_input(sample, i);
    sample = s.step(dummy_model(sample, s.timestep(i)), i, sample, &gen);
  }
  return sample;
}

double abs_sum(const torch::Tensor& x) { return torch::sum(torch::abs(x)).item<double>(); }
double abs_mean(const torch::Tensor& x) { return torch::mean(torch::abs(x)).item<double>(); }

std::vector<int64_t> to_vec(const torch::Tensor& t) {
  auto c = t.contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

}  // namespace

// ---- test_scheduler_pndm.py (skip_prk_steps absent: the class default false, so the PRK warm-up runs) ----

TEST(DiffusersPNDM, FullLoops) {
  struct Case {
    const char* what;
    nlohmann::json overrides;
    double sum, mean;
  };
  const std::vector<Case> cases = {
      {"test_full_loop_no_noise", nlohmann::json::object(), 198.1318, 0.2580},
      {"test_full_loop_with_v_prediction", {{"prediction_type", "v_prediction"}}, 67.3986, 0.0878},
      {"test_full_loop_with_set_alpha_to_one", {{"set_alpha_to_one", true}, {"beta_start", 0.01}}, 230.0399, 0.2995},
      {"test_full_loop_with_no_set_alpha_to_one", {{"set_alpha_to_one", false}, {"beta_start", 0.01}}, 186.9482,
       0.2434},
  };
  for (const auto& c : cases) {
    PNDMScheduler s(diffusers_config(kPndmBase, c.overrides));
    const torch::Tensor x = full_loop(s, dummy_sample_deter());
    EXPECT_EQ(s.n_prk_calls(), 12) << c.what;
    EXPECT_NEAR(abs_sum(x), c.sum, 1e-2) << c.what;
    EXPECT_NEAR(abs_mean(x), c.mean, 1e-3) << c.what;
  }
}

TEST(DiffusersPNDM, StepsOffsetTimesteps) {
  PNDMScheduler s(diffusers_config(kPndmBase, {{"steps_offset", 1}}));
  s.set_timesteps(10);
  const std::vector<int64_t> expected = {901, 851, 851, 801, 801, 751, 751, 701, 701, 651,
                                         651, 601, 601, 501, 401, 301, 201, 101, 1};
  EXPECT_EQ(to_vec(s.timesteps()), expected);
}

TEST(DiffusersPNDM, PowOf3InferenceSteps) {
  // An earlier set_timesteps failed indexing the alphas at the first PRK step for 27 steps.
  PNDMScheduler s(diffusers_config(kPndmBase, {}));
  s.set_timesteps(27);
  torch::Tensor sample = dummy_sample_deter();
  const torch::Tensor residual = 0.1 * sample;
  for (int64_t i = 0; i < 2; ++i) sample = s.step(residual, i, sample);
  EXPECT_FALSE(torch::isnan(sample).any().item<bool>());
}

// ---- test_scheduler_ddim.py (clip_sample true in the test config; eta 0) ----

TEST(DiffusersDDIM, FullLoops) {
  struct Case {
    const char* what;
    nlohmann::json overrides;
    double sum, mean;
  };
  const std::vector<Case> cases = {
      {"test_full_loop_no_noise", nlohmann::json::object(), 172.0067, 0.223967},
      {"test_full_loop_with_v_prediction", {{"prediction_type", "v_prediction"}}, 52.5302, 0.0684},
      {"test_full_loop_with_set_alpha_to_one", {{"set_alpha_to_one", true}, {"beta_start", 0.01}}, 149.8295, 0.1951},
      {"test_full_loop_with_no_set_alpha_to_one", {{"set_alpha_to_one", false}, {"beta_start", 0.01}}, 149.0784,
       0.1941},
  };
  for (const auto& c : cases) {
    DDIMScheduler s(diffusers_config(kDdimBase, c.overrides));
    const torch::Tensor x = full_loop(s, dummy_sample_deter());
    EXPECT_NEAR(abs_sum(x), c.sum, 1e-2) << c.what;
    EXPECT_NEAR(abs_mean(x), c.mean, 1e-3) << c.what;
  }
}

TEST(DiffusersDDIM, StepsOffsetTimesteps) {
  DDIMScheduler s(diffusers_config(kDdimBase, {{"steps_offset", 1}}));
  s.set_timesteps(5);
  EXPECT_EQ(to_vec(s.timesteps()), (std::vector<int64_t>{801, 601, 401, 201, 1}));
}

TEST(DiffusersDDIM, Variance) {
  DDIMScheduler s(diffusers_config(kDdimBase, {}));
  const std::vector<std::tuple<int64_t, int64_t, double>> cases = {
      {0, 0, 0.0}, {420, 400, 0.14771}, {980, 960, 0.32460}, {487, 486, 0.00979}, {999, 998, 0.02}};
  for (const auto& [t, t_prev, v] : cases) EXPECT_LT(std::abs(s.variance(t, t_prev).item<double>() - v), 1e-5) << t;
}

// ---- test_scheduler_euler.py (num_train_timesteps 1100, 10 steps) ----

TEST(DiffusersEuler, FullLoops) {
  {
    EulerDiscreteScheduler s(diffusers_config(kEulerBase, {}));
    const torch::Tensor x = euler_loop(s);  // test_full_loop_no_noise, test_full_loop_device
    EXPECT_NEAR(abs_sum(x), 10.0807, 1e-2);
    EXPECT_NEAR(abs_mean(x), 0.0131, 1e-3);
  }
  {
    EulerDiscreteScheduler s(diffusers_config(kEulerBase, {{"prediction_type", "v_prediction"}}));
    const torch::Tensor x = euler_loop(s);  // test_full_loop_with_v_prediction
    EXPECT_NEAR(abs_sum(x), 0.0002, 1e-2);
    EXPECT_NEAR(abs_mean(x), 2.2676e-06, 1e-3);
  }
  {
    EulerDiscreteScheduler s(diffusers_config(kEulerBase, {{"use_karras_sigmas", true}}));
    const torch::Tensor x = euler_loop(s);  // test_full_loop_device_karras_sigmas
    EXPECT_NEAR(abs_sum(x), 124.52299499511719, 1e-2);
    EXPECT_NEAR(abs_mean(x), 0.16213932633399963, 1e-3);
  }
}

// ---- test_scheduler_dpm_multi.py (lower_order_final false in the test config, 10 steps) ----

TEST(DiffusersDPMMultistep, FullLoops) {
  struct Case {
    const char* what;
    nlohmann::json overrides;
    double mean;
  };
  const std::vector<Case> cases = {
      {"test_full_loop_no_noise (and test_switch's first loop)", nlohmann::json::object(), 0.3301},
      {"test_full_loop_no_noise_thres",
       {{"thresholding", true}, {"dynamic_thresholding_ratio", 0.87}, {"sample_max_value", 0.5}},
       1.1364},
      {"test_full_loop_with_v_prediction", {{"prediction_type", "v_prediction"}}, 0.2251},
      {"test_full_loop_with_karras_and_v_prediction",
       {{"prediction_type", "v_prediction"}, {"use_karras_sigmas", true}},
       0.2096},
  };
  for (const auto& c : cases) {
    DPMSolverMultistepScheduler s(diffusers_config(kDpmBase, c.overrides));
    const torch::Tensor x = full_loop(s, dummy_sample_deter());
    EXPECT_NEAR(abs_mean(x), c.mean, 1e-3) << c.what;
  }
}

TEST(DiffusersDPMMultistep, SolverOrderAndTypeNoNaN) {
  // test_solver_order_and_type: every algorithm, solver type, order (no third order for the SDE variants) and
  // prediction type runs a full loop without NaN. The SDE variants draw their noise from the generator.
  at::Generator gen = make_cpu_generator(0);
  for (const char* algorithm : {"dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++"})
    for (const char* solver : {"midpoint", "heun"})
      for (int order : {1, 2, 3})
        for (const char* prediction : {"epsilon", "sample"}) {
          if (std::string(algorithm).rfind("sde-", 0) == 0 && order == 3) continue;
          DPMSolverMultistepScheduler s(diffusers_config(kDpmBase, {{"solver_order", order},
                                                                    {"solver_type", solver},
                                                                    {"prediction_type", prediction},
                                                                    {"algorithm_type", algorithm}}));
          const torch::Tensor x = full_loop(s, dummy_sample_deter(), 10, &gen);
          EXPECT_FALSE(torch::isnan(x).any().item<bool>()) << algorithm << " " << solver << " " << order << " "
                                                           << prediction;
        }
}

TEST(DiffusersDPMMultistep, Fp16Support) {
  // test_fp16_support: thresholding (ratio 0) on a half sample keeps the half dtype.
  DPMSolverMultistepScheduler s(
      diffusers_config(kDpmBase, {{"thresholding", true}, {"dynamic_thresholding_ratio", 0}}));
  const torch::Tensor x = full_loop(s, dummy_sample_deter().to(torch::kHalf));
  EXPECT_EQ(x.scalar_type(), torch::kHalf);
}

TEST(DiffusersDPMMultistep, UniqueTimesteps) {
  // test_unique_timesteps: set_timesteps(num_train_timesteps) keeps only distinct timesteps.
  DPMSolverMultistepScheduler s(diffusers_config(kDpmBase, {}));
  s.set_timesteps(1000);
  EXPECT_EQ(std::get<0>(at::_unique(s.timesteps())).numel(), s.n_calls());
}
