// Schedulers against diffusers 0.17.1 (tests/data/sd_pipeline, copied from ../shared/fixtures/expected): noise
// tables, timestep lists, sigmas, unit trajectories with synthetic model outputs, the spec's golden 50/20-step
// runs, seeded initial latents, and bad-input messages.
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "schedulers/dpm_solver_multistep.h"
#include "schedulers/euler_discrete.h"
#include "schedulers/scheduler.h"
#include "test_support.h"
#include "util/error.h"

using namespace gill;
using namespace gill::schedulers;
using gill::test::data_dir;
using gill::test::tensors_close;

namespace {

std::filesystem::path dir() { return data_dir() / "sd_pipeline"; }

// The SD-1.5 scheduler_config.json (the PNDM file every pipeline scheduler is built from).
SchedulerConfig sd_config() {
  return SchedulerConfig::from_json(nlohmann::json::parse(R"({
    "_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
    "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1, "trained_betas": null,
    "clip_sample": false})"));
}

nlohmann::json read_json(const std::string& name) {
  std::ifstream f(dir() / name);
  return nlohmann::json::parse(f);
}

const io::SafetensorsFile& sched() {
  static io::SafetensorsFile f(dir() / "schedulers.safetensors");
  return f;
}
const io::SafetensorsFile& extra() {
  static io::SafetensorsFile f(dir() / "schedulers_extra.safetensors");
  return f;
}

const std::vector<int> kSteps = {1, 2, 5, 10, 20, 25, 50};

void run_unit(const std::string& name, const io::SafetensorsFile& f, const std::string& prefix, int n) {
  auto s = make_scheduler(name, sd_config());
  s->set_timesteps(n);
  auto x = f.get(prefix + ".x_T");
  auto eps = f.get(prefix + ".model_outputs");
  auto prev = f.get(prefix + ".prev_samples");
  ASSERT_TRUE(torch::equal(s->timesteps(), f.get(prefix + ".timesteps"))) << prefix;
  const bool has_scaled = f.contains(prefix + ".scaled_model_inputs");
  at::Generator gen = make_cpu_generator(20230613);
  for (int64_t i = 0; i < s->n_calls(); ++i) {
    auto u = s->scale_model_input(x, i);
    if (has_scaled) {
      EXPECT_TRUE(tensors_close(u, f.get(prefix + ".scaled_model_inputs")[i], 1e-6, 1e-6,
                                prefix + " scaled input " + std::to_string(i)));
    }
    x = s->step(eps[i], i, x, &gen);
    EXPECT_TRUE(tensors_close(x, prev[i], 1e-5, 1e-6, prefix + " step " + std::to_string(i)));
  }
}

}  // namespace

TEST(Schedulers, NoiseTablesMatchDiffusers) {
  NoiseTables t = NoiseTables::make(sd_config());
  // Exact: libtorch's linspace / pow / cumprod are the ones the reference ran.
  EXPECT_TRUE(torch::equal(t.alphas_cumprod, sched().get("alphas_cumprod")));
  EXPECT_TRUE(torch::equal(t.betas, extra().get("euler.betas")));
  EXPECT_FLOAT_EQ(t.alphas_cumprod[500].item<float>(), 0.276332498f);
}

TEST(Schedulers, PndmAndDdimTimestepListsExact) {
  auto summary = read_json("summary.json")["schedulers"];
  for (const char* which : {"pndm", "ddim"}) {
    auto s = make_scheduler(which, sd_config());
    EXPECT_EQ(s->init_noise_sigma(), 1.0);
    for (int n : kSteps) {
      s->set_timesteps(n);
      auto expected = summary[which]["timesteps"][std::to_string(n)].get<std::vector<int64_t>>();
      ASSERT_EQ(s->timesteps().scalar_type(), torch::kInt64);
      std::vector<int64_t> got(s->timesteps().data_ptr<int64_t>(), s->timesteps().data_ptr<int64_t>() + s->n_calls());
      EXPECT_EQ(got, expected) << which << " N=" << n;
    }
  }
  // PNDM with skip_prk_steps: 50 steps = 51 UNet calls, 961 twice.
  auto p = make_scheduler("pndm", sd_config());
  p->set_timesteps(50);
  EXPECT_EQ(p->n_calls(), 51);
  EXPECT_EQ(p->timestep(1).item<int64_t>(), 961);
  EXPECT_EQ(p->timestep(2).item<int64_t>(), 961);
}

TEST(Schedulers, EulerTimestepsAndSigmasExact) {
  EulerDiscreteScheduler s(sd_config());
  EXPECT_EQ(s.init_noise_sigma(), extra().get("euler.init_noise_sigma").item<float>());
  EXPECT_FLOAT_EQ(static_cast<float>(s.init_noise_sigma()), 14.614645f);
  for (int n : kSteps) {
    s.set_timesteps(n);
    const auto sn = std::to_string(n);
    EXPECT_TRUE(torch::equal(s.timesteps(), extra().get("euler.timesteps." + sn))) << "euler timesteps N=" << n;
    EXPECT_TRUE(torch::equal(s.sigmas(), extra().get("euler.sigmas." + sn))) << "euler sigmas N=" << n;
  }
}

TEST(Schedulers, DpmTimestepsAndTablesExact) {
  DPMSolverMultistepScheduler s(sd_config());
  EXPECT_TRUE(torch::equal(s.alpha_t(), extra().get("dpmpp_2m.alpha_t")));
  EXPECT_TRUE(torch::equal(s.sigma_t(), extra().get("dpmpp_2m.sigma_t")));
  EXPECT_TRUE(torch::equal(s.lambda_t(), extra().get("dpmpp_2m.lambda_t")));
  const std::vector<int64_t> n50_tail = {80, 60, 40, 20};  // sd-spec.md §7.4: ..., 519, 500, 480, ..., 40, 20
  for (int n : kSteps) {
    s.set_timesteps(n);
    const auto sn = std::to_string(n);
    EXPECT_TRUE(torch::equal(s.timesteps(), extra().get("dpmpp_2m.timesteps." + sn))) << "dpm N=" << n;
    if (n == 50) {
      EXPECT_EQ(s.timestep(0).item<int64_t>(), 999);
      EXPECT_EQ(s.timestep(25).item<int64_t>(), 500);  // 499.5 rounds half to even
      std::vector<int64_t> tail(s.timesteps().data_ptr<int64_t>() + 46, s.timesteps().data_ptr<int64_t>() + 50);
      EXPECT_EQ(tail, n50_tail);
    }
  }
}

TEST(Schedulers, UnitTrajectoriesPndmDdim) {
  for (int n : {5, 10}) {
    run_unit("pndm", sched(), "pndm.unit" + std::to_string(n), n);
    run_unit("ddim", sched(), "ddim.unit" + std::to_string(n), n);
  }
}

TEST(Schedulers, UnitTrajectoriesEulerDpm) {
  for (int n : {5, 10, 20}) {
    run_unit("euler", extra(), "euler.unit" + std::to_string(n), n);
    run_unit("dpm++2m", extra(), "dpmpp_2m.unit" + std::to_string(n), n);
  }
}

// sd-spec.md §7.6: x[k] = sin(0.37k + 0.1), fake model eps = 0.8u + 0.2cos(u(1 + t/1000)), final latents.
TEST(Schedulers, GoldenFakeModelRuns) {
  struct Case {
    const char* name;
    int n;
    double sum, abs_sum;
    std::array<float, 4> head;
  };
  const std::vector<Case> cases = {
      {"pndm", 50, -32.442463, 179.149548, {-0.392984f, 0.009014f, 0.653960f, 1.142094f}},
      {"pndm", 20, -35.704075, 170.388359, {-0.367842f, 0.018852f, 0.597136f, 1.044502f}},
      {"ddim", 50, -31.558124, 180.875310, {-0.403706f, 0.001924f, 0.665700f, 1.165122f}},
      {"ddim", 20, -34.082794, 174.482659, {-0.394224f, 0.002251f, 0.621203f, 1.095827f}},
      {"euler", 50, -29.779671, 182.094667, {-0.414793f, -0.012440f, 0.680452f, 1.193793f}},
      {"euler", 20, -28.082656, 185.235290, {-0.432388f, -0.024084f, 0.703518f, 1.234947f}},
      {"dpm++2m", 50, -30.326795, 185.745086, {-0.408882f, 0.005319f, 0.697956f, 1.210293f}},
      {"dpm++2m", 20, -31.088776, 188.718298, {-0.409718f, 0.013919f, 0.710860f, 1.222969f}},
  };
  std::vector<float> init(256);
  for (int k = 0; k < 256; ++k) init[k] = static_cast<float>(std::sin(0.37 * k + 0.1));
  for (const auto& c : cases) {
    auto s = make_scheduler(c.name, sd_config());
    s->set_timesteps(c.n);
    auto x = torch::tensor(init).reshape({1, 4, 8, 8}) * s->init_noise_sigma();
    for (int64_t i = 0; i < s->n_calls(); ++i) {
      auto u = s->scale_model_input(x, i);
      const double t = s->timesteps()[i].item<double>();
      auto ud = u.to(torch::kFloat64);
      auto eps = (0.8 * ud + 0.2 * torch::cos(ud * (1 + t / 1000))).to(torch::kFloat32);
      x = s->step(eps, i, x);
    }
    EXPECT_NEAR(x.sum().item<double>(), c.sum, 2e-4) << c.name << " " << c.n;
    EXPECT_NEAR(x.abs().sum().item<double>(), c.abs_sum, 2e-4) << c.name << " " << c.n;
    for (int k = 0; k < 4; ++k) EXPECT_NEAR(x.flatten()[k].item<float>(), c.head[k], 2e-6) << c.name << " " << c.n;
  }
}

TEST(Schedulers, SeededLatentsIdenticalToTorchCpuGenerator) {
  for (uint64_t seed : {0ull, 42ull, 1337ull, 123456789ull}) {
    for (auto shape : {std::vector<int64_t>{1, 4, 8, 8}, std::vector<int64_t>{1, 4, 64, 64}}) {
      const std::string key = "seeded_latents.seed" + std::to_string(seed) + ".1x4x" + std::to_string(shape[2]) + "x" +
                              std::to_string(shape[3]);
      EXPECT_TRUE(torch::equal(seeded_latents(seed, shape), extra().get(key))) << key;
    }
  }
}

TEST(Schedulers, BadInputs) {
  auto msg = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(msg([] { make_scheduler("lms", sd_config()); }),
            "unknown scheduler 'lms' (expected one of: pndm, ddim, euler, dpm++2m)");
  EXPECT_EQ(msg([] { make_scheduler("pndm", sd_config())->set_timesteps(0); }),
            "pndm scheduler: the number of steps must be at least 1, got 0");
  EXPECT_EQ(msg([] { make_scheduler("ddim", sd_config())->set_timesteps(1001); }),
            "ddim scheduler: 1001 steps exceed num_train_timesteps 1000");
  EXPECT_EQ(msg([] {
              auto s = make_scheduler("euler", sd_config());
              s->set_timesteps(5);
              s->step(torch::zeros({1}), 5, torch::zeros({1}));
            }),
            "euler scheduler: step index 5 out of range [0, 5)");
  // v_prediction is honoured by all four (unit_schedulers_diffusers); a value a class does not know is refused.
  EXPECT_EQ(msg([] {
              make_scheduler("pndm", SchedulerConfig::from_json(nlohmann::json::parse(R"({"prediction_type": "sample"})")));
            }),
            "pndm scheduler: prediction_type 'sample' is not supported (epsilon, v_prediction)");
  // Integers written as floats: integral ones are accepted (Python json writes 1.0 for a float), others are
  // errors; 1e118 used to be cast to int64 (undefined behaviour, found by fuzz_config).
  EXPECT_EQ(SchedulerConfig::from_json(nlohmann::json::parse(R"({"steps_offset": 1.0})")).steps_offset, 1);
  EXPECT_EQ(msg([] { SchedulerConfig::from_json(nlohmann::json::parse(R"({"steps_offset": 1.5e118})")); }),
            "scheduler config: key 'steps_offset' = 1.5e+118: expected an integer");
  EXPECT_EQ(msg([] { SchedulerConfig::from_json(nlohmann::json::parse(R"({"steps_offset": 0.5})")); }),
            "scheduler config: key 'steps_offset' = 0.5: expected an integer");
}

// SD-1.5's steps_offset 1 pushes the last "leading" timestep of 1000 steps to 1000, outside the trained range
// (diffusers 0.17.1 fails with an IndexError there): refused by name instead of crashing at the first step;
// 999 steps run, and Euler (interpolated sigmas) takes 1000.
TEST(Schedulers, LeadingTimestepsStayInTheTrainedRange) {
  for (const std::string name : {"pndm", "ddim"}) {
    auto s = make_scheduler(name, sd_config());
    gill::test::expect_error([&] { s->set_timesteps(1000); }, gill::ErrorCode::kInvalidArgument,
                             name + " scheduler: 1000 steps with steps_offset 1 give timestep 1000, outside the "
                                    "trained range [0, 1000); use fewer steps");
    s->set_timesteps(999);
    EXPECT_LT(s->timesteps().max().item<int64_t>(), 1000) << name;
  }
  auto e = make_scheduler("euler", sd_config());
  e->set_timesteps(1000);
  EXPECT_EQ(e->timesteps().size(0), 1000);
}
