// Scheduler config, noise tables and the factory. Ref: diffusers v0.17.1 schedulers/scheduling_pndm.py __init__
// (betas, alphas_cumprod), configuration_utils.py (from_config ignores unknown keys).
#include "schedulers/scheduler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "schedulers/ddim.h"
#include "schedulers/dpm_solver_multistep.h"
#include "schedulers/euler_discrete.h"
#include "schedulers/pndm.h"
#include "util/error.h"

#include <cmath>
#include <limits>
#include <type_traits>

namespace gill::schedulers {

using detail::str_cat;

namespace {

template <typename T>
void get_opt(const nlohmann::json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    // nlohmann converts a float to an integer with a plain cast: undefined for 1e300 (found by fuzz_config).
    if (it->is_number_float()) {
      const double d = it->get<double>();
      const double lo = static_cast<double>(std::numeric_limits<T>::min());  // -2^(bits-1), exact
      GILL_CHECK(std::isfinite(d) && d == std::floor(d) && d >= lo && d < -lo, ErrorCode::kFormat,
                 "scheduler config: key '", key, "' = ", it->dump(), ": expected an integer");
      out = static_cast<T>(d);
      return;
    }
    if (it->is_number_unsigned())
      GILL_CHECK(it->get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max()), ErrorCode::kFormat,
                 "scheduler config: key '", key, "' = ", it->dump(), ": out of range");
  }
  try {
    out = it->get<T>();
  } catch (const nlohmann::json::exception& e) {
    detail::fail(ErrorCode::kFormat, str_cat("scheduler config: key '", key, "' has the wrong type: ", e.what()));
  }
}

}  // namespace

SchedulerConfig SchedulerConfig::from_json(const nlohmann::json& j) {
  GILL_CHECK(j.is_object(), ErrorCode::kFormat, "scheduler config: expected a JSON object");
  SchedulerConfig c;
  get_opt(j, "_class_name", c._class_name);
  get_opt(j, "num_train_timesteps", c.num_train_timesteps);
  get_opt(j, "beta_start", c.beta_start);
  get_opt(j, "beta_end", c.beta_end);
  get_opt(j, "beta_schedule", c.beta_schedule);
  get_opt(j, "trained_betas", c.trained_betas);
  get_opt(j, "skip_prk_steps", c.skip_prk_steps);
  get_opt(j, "set_alpha_to_one", c.set_alpha_to_one);
  get_opt(j, "steps_offset", c.steps_offset);
  get_opt(j, "prediction_type", c.prediction_type);
  get_opt(j, "clip_sample", c.clip_sample);
  get_opt(j, "thresholding", c.thresholding);
  get_opt(j, "timestep_spacing", c.timestep_spacing);
  GILL_CHECK(c.num_train_timesteps > 0, ErrorCode::kFormat,
             "scheduler config: num_train_timesteps must be positive, got ", c.num_train_timesteps);
  GILL_CHECK(c.prediction_type == "epsilon", ErrorCode::kUnsupported, "scheduler config: prediction_type '",
             c.prediction_type, "' is not supported (only 'epsilon', what SD v1.x uses)");
  return c;
}

SchedulerConfig SchedulerConfig::from_file(const std::filesystem::path& path) {
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(file)) file /= "scheduler_config.json";
  return detail::with_context(str_cat("reading ", file.string()), [&] {
    const std::string text = io::read_file(file);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      detail::fail(ErrorCode::kFormat, str_cat("invalid JSON: ", e.what()));
    }
    return from_json(j);
  });
}

NoiseTables NoiseTables::make(const SchedulerConfig& cfg) {
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  torch::Tensor betas;
  if (!cfg.trained_betas.empty()) {
    GILL_CHECK(static_cast<int64_t>(cfg.trained_betas.size()) == cfg.num_train_timesteps, ErrorCode::kFormat,
               "scheduler config: trained_betas has ", cfg.trained_betas.size(), " entries, num_train_timesteps is ",
               cfg.num_train_timesteps);
    betas = torch::tensor(cfg.trained_betas, torch::kFloat64).to(torch::kFloat32);
  } else if (cfg.beta_schedule == "linear") {
    betas = torch::linspace(cfg.beta_start, cfg.beta_end, cfg.num_train_timesteps, f32);
  } else if (cfg.beta_schedule == "scaled_linear") {
    // Ref: betas = torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=float32) ** 2
    betas = torch::pow(
        torch::linspace(std::pow(cfg.beta_start, 0.5), std::pow(cfg.beta_end, 0.5), cfg.num_train_timesteps, f32), 2);
  } else {
    detail::fail(ErrorCode::kUnsupported, str_cat("scheduler config: beta_schedule '", cfg.beta_schedule,
                                                  "' is not supported (linear, scaled_linear)"));
  }
  NoiseTables t;
  t.betas = betas;
  t.alphas_cumprod = torch::cumprod(1.0 - betas, 0);  // CPU cumprod accumulates in double, as upstream
  return t;
}

Scheduler::Scheduler(SchedulerConfig cfg) : cfg_(std::move(cfg)), tables_(NoiseTables::make(cfg_)) {}

torch::Tensor Scheduler::timestep(int64_t i) const {
  check_index(i);
  return timesteps_[i].clone();
}

void Scheduler::check_index(int64_t i) const {
  GILL_CHECK(timesteps_.defined(), ErrorCode::kInvalidArgument, name(), " scheduler: set_timesteps was not called");
  GILL_CHECK(i >= 0 && i < timesteps_.size(0), ErrorCode::kInvalidArgument, name(), " scheduler: step index ", i,
             " out of range [0, ", timesteps_.size(0), ")");
}

const std::vector<std::string>& scheduler_names() {
  static const std::vector<std::string> names = {"pndm", "ddim", "euler", "dpm++2m"};
  return names;
}

std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const SchedulerConfig& cfg) {
  if (name == "pndm") return std::make_unique<PNDMScheduler>(cfg);
  if (name == "ddim") return std::make_unique<DDIMScheduler>(cfg);
  if (name == "euler") return std::make_unique<EulerDiscreteScheduler>(cfg);
  if (name == "dpm++2m") return std::make_unique<DPMSolverMultistepScheduler>(cfg);
  detail::fail(ErrorCode::kInvalidArgument,
               str_cat("unknown scheduler '", name, "' (expected one of: pndm, ddim, euler, dpm++2m)"));
}

at::Generator make_cpu_generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

torch::Tensor seeded_latents(uint64_t seed, at::IntArrayRef shape) {
  at::Generator gen = make_cpu_generator(seed);
  return torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCPU));
}

void check_n_steps(const std::string& who, int64_t n_steps, int64_t n_train) {
  GILL_CHECK(n_steps >= 1, ErrorCode::kInvalidArgument, who, " scheduler: the number of steps must be at least 1, got ",
             n_steps);
  GILL_CHECK(n_steps <= n_train, ErrorCode::kInvalidArgument, who, " scheduler: ", n_steps,
             " steps exceed num_train_timesteps ", n_train);
}

}  // namespace gill::schedulers
