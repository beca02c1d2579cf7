// diffusers v0.17.1 tests/schedulers, ported: the full-loop tests of test_scheduler_{pndm,ddim,euler,dpm_multi}.py
// with SchedulerCommonTest's dummy_sample_deter and dummy_model (sample * t / (t + 1)), each scheduler built from
// the test's get_scheduler_config (absent keys take the class's own defaults), checked against the published
// sums / means with the published tolerances. Then the keys each class honours or refuses (docs/schedulers.md).
#include <fstream>
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
torch::Tensor dummy_model(const torch::Tensor& sample, const torch::Tensor& t) {
  return sample * t / (t + 1);
}

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

double abs_sum(const torch::Tensor& x) {
  return torch::sum(torch::abs(x)).item<double>();
}
double abs_mean(const torch::Tensor& x) {
  return torch::mean(torch::abs(x)).item<double>();
}

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
      {"test_full_loop_with_no_set_alpha_to_one",
       {{"set_alpha_to_one", false}, {"beta_start", 0.01}},
       186.9482,
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
      {"test_full_loop_with_no_set_alpha_to_one",
       {{"set_alpha_to_one", false}, {"beta_start", 0.01}},
       149.0784,
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
          EXPECT_FALSE(torch::isnan(x).any().item<bool>())
              << algorithm << " " << solver << " " << order << " " << prediction;
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

// ---- Keys: each class's defaults for absent keys, honoured values, refused values (docs/schedulers.md) ----

namespace {

SchedulerConfig keys(const nlohmann::json& j) {
  return SchedulerConfig::from_json(j);
}

// SD v1.5's scheduler_config.json (a PNDMScheduler file).
const nlohmann::json kSd15 = {{"_class_name", "PNDMScheduler"},   {"beta_end", 0.012},
                              {"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085},
                              {"num_train_timesteps", 1000},      {"set_alpha_to_one", false},
                              {"skip_prk_steps", true},           {"steps_offset", 1},
                              {"trained_betas", nullptr},         {"clip_sample", false}};

torch::Tensor sd_sample() {
  return torch::sin(torch::arange(1 * 3 * 8 * 8, torch::kFloat32) * 0.37 + 0.1).reshape({1, 3, 8, 8});
}

}  // namespace

TEST(SchedulerKeys, AbsentKeysTakeTheClassDefaults) {
  const SchedulerConfig none = keys(nlohmann::json::object());
  const auto p = PNDMSchedulerConfig::from(none);
  EXPECT_EQ(p.num_train_timesteps, 1000);
  EXPECT_EQ(p.beta_start, 0.0001);
  EXPECT_EQ(p.beta_end, 0.02);
  EXPECT_EQ(p.beta_schedule, "linear");
  EXPECT_FALSE(p.trained_betas.has_value());
  EXPECT_EQ(p.prediction_type, "epsilon");
  EXPECT_FALSE(p.skip_prk_steps);
  EXPECT_FALSE(p.set_alpha_to_one);
  EXPECT_EQ(p.steps_offset, 0);
  const auto d = DDIMSchedulerConfig::from(none);
  EXPECT_TRUE(d.clip_sample);       // unlike PNDM
  EXPECT_TRUE(d.set_alpha_to_one);  // unlike PNDM
  EXPECT_EQ(d.steps_offset, 0);
  EXPECT_FALSE(d.thresholding);
  EXPECT_EQ(d.dynamic_thresholding_ratio, 0.995);
  EXPECT_EQ(d.clip_sample_range, 1.0);
  EXPECT_EQ(d.sample_max_value, 1.0);
  EXPECT_EQ(d.timestep_spacing, "leading");
  EXPECT_FALSE(d.rescale_betas_zero_snr);
  const auto e = EulerDiscreteSchedulerConfig::from(none);
  EXPECT_EQ(e.interpolation_type, "linear");
  EXPECT_FALSE(e.use_karras_sigmas);
  const auto m = DPMSolverMultistepSchedulerConfig::from(none);
  EXPECT_EQ(m.solver_order, 2);
  EXPECT_FALSE(m.thresholding);
  EXPECT_EQ(m.dynamic_thresholding_ratio, 0.995);
  EXPECT_EQ(m.sample_max_value, 1.0);
  EXPECT_EQ(m.algorithm_type, "dpmsolver++");
  EXPECT_EQ(m.solver_type, "midpoint");
  EXPECT_TRUE(m.lower_order_final);
  EXPECT_FALSE(m.use_karras_sigmas);
  EXPECT_EQ(m.lambda_min_clipped, -std::numeric_limits<double>::infinity());
  EXPECT_FALSE(m.variance_type.has_value());
  // Keys present in the file win, whichever class the file was written for.
  const auto d15 = DDIMSchedulerConfig::from(keys(kSd15));
  EXPECT_FALSE(d15.clip_sample);
  EXPECT_FALSE(d15.set_alpha_to_one);
  EXPECT_EQ(d15.steps_offset, 1);
  EXPECT_EQ(d15.beta_schedule, "scaled_linear");
}

TEST(SchedulerKeys, PndmPrkWarmupIsTheDefault) {
  auto plms = make_scheduler("pndm", keys(kSd15));
  plms->set_timesteps(10);
  EXPECT_EQ(plms->n_calls(), 11);
  nlohmann::json j = kSd15;
  j.erase("skip_prk_steps");  // PNDM's default: false
  PNDMScheduler prk(keys(j));
  prk.set_timesteps(10);
  EXPECT_EQ(prk.n_calls(), 19);
  EXPECT_EQ(prk.n_prk_calls(), 12);
  expect_error([&] { prk.set_timesteps(3); }, ErrorCode::kUnsupported,
               "pndm scheduler: skip_prk_steps=false (Runge-Kutta warm-up) needs at least 4 steps, got 3 "
               "(diffusers 0.17.1 cannot build its PRK timesteps either)");
}

TEST(SchedulerKeys, DdimClipSampleRangeAndTrailingSpacing) {
  auto run = [](const nlohmann::json& j) {
    DDIMScheduler s(diffusers_config(kDdimBase, j));
    return full_loop(s, 4 * dummy_sample_deter());  // x0 predictions up to ~4: clipping at 1 bites
  };
  const torch::Tensor clipped = run({}), wide = run({{"clip_sample_range", 50.0}}), off = run({{"clip_sample", false}});
  EXPECT_FALSE(torch::equal(clipped, wide));
  EXPECT_TRUE(torch::equal(wide, off));  // nothing in this loop exceeds 50
  DDIMScheduler t(diffusers_config(kDdimBase, {{"timestep_spacing", "trailing"}}));
  t.set_timesteps(10);
  EXPECT_EQ(to_vec(t.timesteps()), (std::vector<int64_t>{999, 899, 799, 699, 599, 499, 399, 299, 199, 99}));
  t.set_timesteps(3);
  EXPECT_EQ(to_vec(t.timesteps()), (std::vector<int64_t>{999, 666, 332}));
  // numpy's arange(1000, 0, -1000/61) has 62 elements (the last rounds to timestep -1): refused.
  expect_error([&] { t.set_timesteps(61); }, ErrorCode::kUnsupported,
               "ddim scheduler: timestep_spacing 'trailing' with 61 steps and num_train_timesteps 1000 is not "
               "supported (diffusers 0.17.1's arange makes 62 timesteps, the last one -1)");
}

TEST(SchedulerKeys, BetaSchedulesAndZeroSnr) {
  const NoiseTables cos = NoiseTables::make(keys({{"beta_schedule", "squaredcos_cap_v2"}}));
  auto alpha_bar = [](double t) { return std::pow(std::cos((t + 0.008) / 1.008 * M_PI / 2), 2.0); };
  EXPECT_EQ(cos.betas[0].item<float>(), static_cast<float>(1 - alpha_bar(0.001) / alpha_bar(0.0)));
  EXPECT_EQ(cos.betas[999].item<float>(), 0.999f);  // max_beta
  const NoiseTables trained = NoiseTables::make(keys({{"num_train_timesteps", 3},
                                                      {"trained_betas", {0.1, 0.2, 0.3}},
                                                      {"beta_schedule", "not read when trained_betas is given"}}));
  EXPECT_TRUE(torch::equal(trained.betas, torch::tensor({0.1f, 0.2f, 0.3f})));
  DDIMScheduler z(diffusers_config(kDdimBase, {{"rescale_betas_zero_snr", true}}));
  EXPECT_EQ(z.tables().alphas_cumprod[999].item<float>(), 0.0f);  // zero terminal SNR
  EXPECT_NEAR(z.tables().alphas_cumprod[0].item<float>(), 1 - 0.0001f, 1e-6);
}

TEST(SchedulerKeys, EulerInterpolationTypes) {
  EulerDiscreteScheduler lin(diffusers_config(kEulerBase, {}));
  lin.set_timesteps(10);
  EXPECT_EQ(lin.sigmas().size(0), 11);
  EulerDiscreteScheduler log(diffusers_config(kEulerBase, {{"interpolation_type", "log_linear"}}));
  log.set_timesteps(10);
  // 0.17.1 builds N + 1 log-spaced sigmas and appends 0: the last step ends at the smallest training sigma.
  ASSERT_EQ(log.sigmas().size(0), 12);
  EXPECT_NEAR(log.sigmas()[0].item<float>(), log.train_sigmas()[1099].item<float>(), 1e-4);
  EXPECT_NEAR(log.sigmas()[10].item<float>(), log.train_sigmas()[0].item<float>(), 1e-6);
  EXPECT_TRUE(torch::equal(log.timesteps(), lin.timesteps()));
  const torch::Tensor a = euler_loop(lin), b = euler_loop(log);
  EXPECT_FALSE(torch::allclose(a, b));
  EulerDiscreteScheduler k(diffusers_config(kEulerBase, {{"use_karras_sigmas", true}}));
  k.set_timesteps(10);
  EXPECT_EQ(k.timesteps().scalar_type(), torch::kFloat64);
  EXPECT_NEAR(k.timesteps()[0].item<double>(), 1099.0, 1e-3);
  EXPECT_NEAR(k.timesteps()[9].item<double>(), 0.0, 1e-3);
}

TEST(SchedulerKeys, DpmLowerOrderFinalAndAliases) {
  auto run = [](const nlohmann::json& j, int64_t n) {
    DPMSolverMultistepScheduler s(diffusers_config(kDpmBase, j));
    return full_loop(s, dummy_sample_deter(), n);
  };
  // lower_order_final applies below 15 steps only.
  EXPECT_FALSE(torch::equal(run({{"lower_order_final", true}}, 10), run({{"lower_order_final", false}}, 10)));
  EXPECT_TRUE(torch::equal(run({{"lower_order_final", true}}, 20), run({{"lower_order_final", false}}, 20)));
  // __init__ maps deis to dpmsolver++ and logrho / bh1 / bh2 to midpoint.
  EXPECT_TRUE(torch::equal(run({{"algorithm_type", "deis"}}, 10), run({}, 10)));
  EXPECT_TRUE(torch::equal(run({{"solver_type", "bh2"}}, 10), run({}, 10)));
  EXPECT_FALSE(torch::equal(run({{"solver_type", "heun"}}, 10), run({}, 10)));
  EXPECT_FALSE(torch::equal(run({{"solver_order", 3}}, 10), run({}, 10)));
  EXPECT_FALSE(torch::equal(run({{"solver_order", 1}}, 10), run({}, 10)));
}

TEST(SchedulerKeys, DpmTimestepOptions) {
  DPMSolverMultistepScheduler clipped(diffusers_config(kDpmBase, {{"lambda_min_clipped", -3.0}}));
  clipped.set_timesteps(10);
  DPMSolverMultistepScheduler full(diffusers_config(kDpmBase, {}));
  full.set_timesteps(10);
  EXPECT_EQ(full.timestep(0).item<int64_t>(), 999);
  EXPECT_LT(clipped.timestep(0).item<int64_t>(), 999);  // the low-SNR end is cut off
  DPMSolverMultistepScheduler karras(diffusers_config(kDpmBase, {{"use_karras_sigmas", true}}));
  karras.set_timesteps(10);
  EXPECT_EQ(karras.timestep(0).item<int64_t>(), 999);
  EXPECT_FALSE(torch::equal(karras.timesteps(), full.timesteps()));
  // Python's json writes the default -inf as -Infinity; from_file reads it.
  const auto dir = gill::test::temp_dir("sched_inf");
  {
    std::ofstream f(dir / "scheduler_config.json");
    f << R"({"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity, "variance_type": null,
            "note": "Infinity inside a string stays"})";
  }
  const SchedulerConfig c = SchedulerConfig::from_file(dir);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(c.lambda_min_clipped.has_value());
  EXPECT_EQ(*c.lambda_min_clipped, -std::numeric_limits<double>::infinity());
}

TEST(SchedulerKeys, DpmVarianceTypeAndSdeNoise) {
  const torch::Tensor sample = sd_sample();                                            // [1, 3, 8, 8]
  const torch::Tensor out6 = torch::cat({0.5 * sample, torch::ones_like(sample)}, 1);  // [1, 6, 8, 8]
  DPMSolverMultistepScheduler learned(diffusers_config(kDpmBase, {{"variance_type", "learned_range"}}));
  DPMSolverMultistepScheduler plain(diffusers_config(kDpmBase, {}));
  learned.set_timesteps(10);
  plain.set_timesteps(10);
  EXPECT_TRUE(torch::equal(learned.step(out6, 0, sample), plain.step(0.5 * sample, 0, sample)));
  auto sde = [&](uint64_t seed) {
    DPMSolverMultistepScheduler s(diffusers_config(kDpmBase, {{"algorithm_type", "sde-dpmsolver++"}}));
    at::Generator gen = make_cpu_generator(seed);
    return full_loop(s, dummy_sample_deter(), 10, &gen);
  };
  EXPECT_TRUE(torch::equal(sde(1), sde(1)));
  EXPECT_FALSE(torch::equal(sde(1), sde(2)));
  DPMSolverMultistepScheduler s(diffusers_config(kDpmBase, {{"algorithm_type", "sde-dpmsolver"}}));
  s.set_timesteps(10);
  expect_error([&] { s.step(sample, 0, sample); }, ErrorCode::kInvalidArgument,
               "dpm++2m scheduler: algorithm_type 'sde-dpmsolver' draws noise at every step and needs a generator");
}

TEST(SchedulerKeys, RefusedValuesNameKeyAndValue) {
  auto make = [](const char* name, const nlohmann::json& j) { return [=] { make_scheduler(name, keys(j)); }; };
  expect_error(make("ddim", {{"prediction_type", "flow"}}), ErrorCode::kUnsupported,
               "ddim scheduler: prediction_type 'flow' is not supported (epsilon, sample, v_prediction)");
  expect_error(make("euler", {{"prediction_type", "flow"}}), ErrorCode::kUnsupported,
               "euler scheduler: prediction_type 'flow' is not supported (epsilon, v_prediction, sample, "
               "original_sample)");
  expect_error(make("dpm++2m", {{"prediction_type", "flow"}}), ErrorCode::kUnsupported,
               "dpm++2m scheduler: prediction_type 'flow' is not supported (epsilon, sample, v_prediction)");
  expect_error(make("ddim", {{"timestep_spacing", "linspace"}}), ErrorCode::kUnsupported,
               "ddim scheduler: timestep_spacing 'linspace' is not supported (leading, trailing)");
  expect_error(make("euler", {{"interpolation_type", "cubic"}}), ErrorCode::kUnsupported,
               "euler scheduler: interpolation_type 'cubic' is not supported (linear, log_linear)");
  expect_error(make("dpm++2m", {{"solver_order", 4}}), ErrorCode::kUnsupported,
               "dpm++2m scheduler: solver_order 4 is not supported (1, 2, 3)");
  expect_error(make("dpm++2m", {{"algorithm_type", "unipc"}}), ErrorCode::kUnsupported,
               "dpm++2m scheduler: algorithm_type 'unipc' is not supported (dpmsolver, dpmsolver++, sde-dpmsolver, "
               "sde-dpmsolver++)");
  expect_error(make("dpm++2m", {{"solver_type", "bh3"}}), ErrorCode::kUnsupported,
               "dpm++2m scheduler: solver_type 'bh3' is not supported (midpoint, heun)");
  expect_error(make("dpm++2m", {{"algorithm_type", "sde-dpmsolver++"}, {"solver_order", 3}}), ErrorCode::kUnsupported,
               "dpm++2m scheduler: solver_order 3 with algorithm_type 'sde-dpmsolver++' is not supported (diffusers "
               "0.17.1 has no third-order SDE step)");
  expect_error(make("ddim", {{"thresholding", true}, {"dynamic_thresholding_ratio", 1.5}}), ErrorCode::kUnsupported,
               "ddim scheduler: dynamic_thresholding_ratio 1.5 is not supported (a quantile in [0, 1])");
  expect_error(make("pndm", {{"beta_schedule", "sigmoid"}}), ErrorCode::kUnsupported,
               "scheduler config: beta_schedule 'sigmoid' is not supported (linear, scaled_linear, squaredcos_cap_v2)");
  expect_error(
      [] {
        keys({{"use_karras_sigmas", 1}});
      },
      ErrorCode::kFormat,
      "scheduler config: key 'use_karras_sigmas' has the wrong type: [json.exception.type_error.302] type "
      "must be boolean, but is number");
}
