// Scheduler config, noise tables, shared helpers and the factory. Ref: diffusers v0.17.1 schedulers/
// scheduling_{pndm,ddim,euler_discrete,dpmsolver_multistep}.py (__init__: betas, betas_for_alpha_bar,
// rescale_zero_terminal_snr, alphas_cumprod; _threshold_sample, _convert_to_karras, _sigma_to_t),
// configuration_utils.py (from_config ignores unknown keys), numpy 1.x linspace.
#include "schedulers/scheduler.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "io/atomic_file.h"
#include "schedulers/ddim.h"
#include "schedulers/dpm_solver_multistep.h"
#include "schedulers/euler_discrete.h"
#include "schedulers/pndm.h"
#include "util/error.h"
#include "util/json.h"

namespace gill::schedulers {

using detail::str_cat;

namespace {

// The scheduler config's messages (the scheduler tests pin them).
std::string scheduler_field_message(const util::FieldError& e) {
  const std::string v = e.value ? e.value->dump() : "null";
  if (e.integer && e.value && e.value->is_number_float())
    return str_cat("scheduler config: key '", e.key, "' = ", v, ": expected an integer");
  if (e.integer && e.value && e.value->is_number())
    return str_cat("scheduler config: key '", e.key, "' = ", v, ": out of range");
  return str_cat("scheduler config: key '", e.key, "' has the wrong type: ", e.what);
}

// util::read_value into an unset-able field.
template <typename T>
void read_key(const nlohmann::json& j, const char* key, std::optional<T>& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if constexpr (std::is_floating_point_v<T>) {
    // Python's json writes -inf (DPM-Solver's default lambda_min_clipped) as -Infinity; from_file quotes it.
    if (it->is_string()) {
      const std::string& w = it->get_ref<const std::string&>();
      const double inf = std::numeric_limits<double>::infinity();
      if (w == "-Infinity" || w == "Infinity" || w == "NaN") {
        out = static_cast<T>(w == "NaN" ? std::nan("") : w == "Infinity" ? inf : -inf);
        return;
      }
    }
  }
  out = util::read_value<T>(*it, key, "scheduler config", scheduler_field_message);
}

template <typename T>
void take(const std::optional<T>& in, T& out) {
  if (in) out = *in;
}

// Ref: betas_for_alpha_bar (max_beta 0.999), in Python floats, then torch.tensor(..., float32).
torch::Tensor betas_for_alpha_bar(int64_t n) {
  auto alpha_bar = [](double t) {
    const double c = std::cos((t + 0.008) / 1.008 * M_PI / 2);
    return std::pow(c, 2.0);
  };
  std::vector<double> betas(n);
  for (int64_t i = 0; i < n; ++i) {
    const double t1 = static_cast<double>(i) / static_cast<double>(n);
    const double t2 = static_cast<double>(i + 1) / static_cast<double>(n);
    betas[i] = std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999);
  }
  return torch::tensor(betas, torch::kFloat64).to(torch::kFloat32);
}

// Ref: scheduling_ddim.py rescale_zero_terminal_snr, on float32 tensors.
torch::Tensor rescale_zero_terminal_snr(const torch::Tensor& betas) {
  torch::Tensor alphas = 1.0 - betas;
  torch::Tensor alphas_cumprod = torch::cumprod(alphas, 0);
  torch::Tensor sqrt_ab = alphas_cumprod.sqrt();
  const torch::Tensor ab0 = sqrt_ab[0].clone();
  const torch::Tensor abT = sqrt_ab[-1].clone();
  sqrt_ab -= abT;
  sqrt_ab *= ab0 / (ab0 - abT);
  const torch::Tensor ab = torch::pow(sqrt_ab, 2);
  alphas = ab.slice(0, 1) / ab.slice(0, 0, -1);
  alphas = torch::cat({ab.slice(0, 0, 1), alphas});
  return 1 - alphas;
}

// Python's json.dumps writes NaN, Infinity and -Infinity as bare words, which JSON (and nlohmann) rejects: quote
// them where they stand as values (outside strings), for read_key to turn back into numbers.
std::string quote_python_constants(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) {
        out += text[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (const char* word : {"-Infinity", "Infinity", "NaN"}) {
      const size_t n = std::char_traits<char>::length(word);
      if (text.compare(i, n, word) == 0) {
        out += '"';
        out += word;
        out += '"';
        i += n - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  return out;
}

}  // namespace

SchedulerConfig SchedulerConfig::from_json(const nlohmann::json& j) {
  GILL_CHECK(j.is_object(), ErrorCode::kFormat, "scheduler config: expected a JSON object");
  SchedulerConfig c;
  std::optional<std::string> class_name;
  read_key(j, "_class_name", class_name);
  take(class_name, c._class_name);
  read_key(j, "num_train_timesteps", c.num_train_timesteps);
  read_key(j, "beta_start", c.beta_start);
  read_key(j, "beta_end", c.beta_end);
  read_key(j, "beta_schedule", c.beta_schedule);
  read_key(j, "trained_betas", c.trained_betas);
  read_key(j, "prediction_type", c.prediction_type);
  read_key(j, "set_alpha_to_one", c.set_alpha_to_one);
  read_key(j, "steps_offset", c.steps_offset);
  read_key(j, "skip_prk_steps", c.skip_prk_steps);
  read_key(j, "clip_sample", c.clip_sample);
  read_key(j, "clip_sample_range", c.clip_sample_range);
  read_key(j, "timestep_spacing", c.timestep_spacing);
  read_key(j, "rescale_betas_zero_snr", c.rescale_betas_zero_snr);
  read_key(j, "thresholding", c.thresholding);
  read_key(j, "dynamic_thresholding_ratio", c.dynamic_thresholding_ratio);
  read_key(j, "sample_max_value", c.sample_max_value);
  read_key(j, "interpolation_type", c.interpolation_type);
  read_key(j, "use_karras_sigmas", c.use_karras_sigmas);
  read_key(j, "solver_order", c.solver_order);
  read_key(j, "algorithm_type", c.algorithm_type);
  read_key(j, "solver_type", c.solver_type);
  read_key(j, "lower_order_final", c.lower_order_final);
  read_key(j, "lambda_min_clipped", c.lambda_min_clipped);
  read_key(j, "variance_type", c.variance_type);
  GILL_CHECK(!c.num_train_timesteps || *c.num_train_timesteps > 0, ErrorCode::kFormat,
             "scheduler config: num_train_timesteps must be positive, got ", *c.num_train_timesteps);
  return c;
}

SchedulerConfig SchedulerConfig::from_file(const std::filesystem::path& path) {
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(file)) file /= "scheduler_config.json";
  const nlohmann::json j = util::parse_json_text(quote_python_constants(io::read_file(file)), file.string());
  return detail::with_context(str_cat("reading ", file.string()), [&] { return from_json(j); });
}

void BetaScheduleConfig::read(const SchedulerConfig& c) {
  take(c.num_train_timesteps, num_train_timesteps);
  take(c.beta_start, beta_start);
  take(c.beta_end, beta_end);
  take(c.beta_schedule, beta_schedule);
  if (c.trained_betas) trained_betas = c.trained_betas;
  take(c.prediction_type, prediction_type);
}

NoiseTables NoiseTables::make(const SchedulerConfig& cfg) {
  BetaScheduleConfig b;
  b.read(cfg);
  return make(b);
}

NoiseTables NoiseTables::make(const BetaScheduleConfig& cfg, bool rescale_betas_zero_snr) {
  GILL_CHECK(cfg.num_train_timesteps > 0, ErrorCode::kFormat,
             "scheduler config: num_train_timesteps must be positive, got ", cfg.num_train_timesteps);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  torch::Tensor betas;
  if (cfg.trained_betas) {
    // diffusers takes the list whatever its length and then indexes it with timesteps up to
    // num_train_timesteps - 1; a list of another length is refused here.
    GILL_CHECK(static_cast<int64_t>(cfg.trained_betas->size()) == cfg.num_train_timesteps, ErrorCode::kFormat,
               "scheduler config: trained_betas has ", cfg.trained_betas->size(), " entries, num_train_timesteps is ",
               cfg.num_train_timesteps);
    betas = torch::tensor(*cfg.trained_betas, torch::kFloat64).to(torch::kFloat32);
  } else if (cfg.beta_schedule == "linear") {
    betas = torch::linspace(cfg.beta_start, cfg.beta_end, cfg.num_train_timesteps, f32);
  } else if (cfg.beta_schedule == "scaled_linear") {
    // Ref: betas = torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=float32) ** 2
    betas = torch::pow(
        torch::linspace(std::pow(cfg.beta_start, 0.5), std::pow(cfg.beta_end, 0.5), cfg.num_train_timesteps, f32), 2);
  } else if (cfg.beta_schedule == "squaredcos_cap_v2") {
    betas = betas_for_alpha_bar(cfg.num_train_timesteps);
  } else {
    detail::fail(ErrorCode::kUnsupported, str_cat("scheduler config: beta_schedule '", cfg.beta_schedule,
                                                  "' is not supported (linear, scaled_linear, squaredcos_cap_v2)"));
  }
  if (rescale_betas_zero_snr) betas = rescale_zero_terminal_snr(betas);
  NoiseTables t;
  t.betas = betas;
  t.alphas_cumprod = torch::cumprod(1.0 - betas, 0);  // CPU cumprod accumulates in double, as upstream
  return t;
}

torch::Tensor Scheduler::timestep(int64_t i) const {
  check_index(i);
  return timesteps_[i].clone();
}

void Scheduler::check_index(int64_t i) const {
  GILL_CHECK(timesteps_.defined(), ErrorCode::kInvalidArgument, name(), " scheduler: set_timesteps was not called");
  GILL_CHECK(i >= 0 && i < timesteps_.size(0), ErrorCode::kInvalidArgument, name(), " scheduler: step index ", i,
             " out of range [0, ", timesteps_.size(0), ")");
}

namespace {
template <typename S>
std::unique_ptr<Scheduler> make_scheduler_of(const SchedulerConfig& cfg) {
  return std::make_unique<S>(cfg);
}
}  // namespace

const std::vector<SchedulerName>& scheduler_table() {
  static const std::vector<SchedulerName> table = {
      {"pndm", "PNDMScheduler", &make_scheduler_of<PNDMScheduler>},
      {"ddim", "DDIMScheduler", &make_scheduler_of<DDIMScheduler>},
      {"euler", "EulerDiscreteScheduler", &make_scheduler_of<EulerDiscreteScheduler>},
      {"dpm++2m", "DPMSolverMultistepScheduler", &make_scheduler_of<DPMSolverMultistepScheduler>}};
  return table;
}

const std::vector<std::string>& scheduler_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& e : scheduler_table()) v.emplace_back(e.name);
    return v;
  }();
  return names;
}

std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const SchedulerConfig& cfg) {
  for (const auto& e : scheduler_table())
    if (name == e.name) return e.make(cfg);
  std::string list;
  for (const auto& n : scheduler_names()) list += (list.empty() ? "" : ", ") + n;
  detail::fail(ErrorCode::kInvalidArgument, str_cat("unknown scheduler '", name, "' (expected one of: ", list, ")"));
}

at::Generator make_cpu_generator(uint64_t seed) {
  return at::detail::createCPUGenerator(seed);
}

torch::Tensor seeded_latents(uint64_t seed, at::IntArrayRef shape) {
  at::Generator gen = make_cpu_generator(seed);
  return torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCPU));
}

void check_timesteps_in_range(const std::string& who, const std::vector<int64_t>& ts, int64_t n_steps,
                              int64_t steps_offset, int64_t n_train) {
  for (int64_t t : ts)
    GILL_CHECK(t >= 0 && t < n_train, ErrorCode::kInvalidArgument, who, " scheduler: ", n_steps,
               " steps with steps_offset ", steps_offset, " give timestep ", t, ", outside the trained range [0, ",
               n_train, "); use fewer steps");
}

void check_n_steps(const std::string& who, int64_t n_steps, int64_t n_train) {
  GILL_CHECK(n_steps >= 1, ErrorCode::kInvalidArgument, who, " scheduler: the number of steps must be at least 1, got ",
             n_steps);
  GILL_CHECK(n_steps <= n_train, ErrorCode::kInvalidArgument, who, " scheduler: ", n_steps,
             " steps exceed num_train_timesteps ", n_train);
}

void check_one_of(const std::string& who, const char* key, const std::string& value,
                  const std::vector<std::string>& allowed) {
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  detail::fail(ErrorCode::kUnsupported,
               str_cat(who, " scheduler: ", key, " '", value, "' is not supported (", list, ")"));
}

torch::Tensor threshold_sample(const torch::Tensor& sample_in, double ratio, double max_value) {
  GILL_CHECK(sample_in.dim() == 4, ErrorCode::kShapeMismatch, "thresholding expects a [B, C, H, W] sample, got ",
             detail::shape_str(sample_in.sizes().vec()));
  const auto dtype = sample_in.scalar_type();
  torch::Tensor sample = sample_in;
  // upcast for the quantile (and clamp, not implemented for CPU half), as upstream
  if (dtype != torch::kFloat32 && dtype != torch::kFloat64) sample = sample.to(torch::kFloat32);
  const int64_t B = sample.size(0), C = sample.size(1), H = sample.size(2), W = sample.size(3);
  sample = sample.reshape({B, C * H * W});                                   // [B, CHW]
  torch::Tensor s = torch::quantile(sample.abs(), ratio, 1);                 // [B]
  s = torch::clamp(s, c10::Scalar(1), c10::Scalar(max_value)).unsqueeze(1);  // [B, 1]
  sample = torch::clamp(sample, -s, s) / s;
  return sample.reshape({B, C, H, W}).to(dtype);  // [B, C, H, W]
}

std::vector<double> np_linspace(double start, double stop, int64_t n) {
  std::vector<double> y(n);
  if (n == 1) {
    y[0] = start;
    return y;
  }
  const double div = static_cast<double>(n - 1);
  const double delta = stop - start;
  const double step = delta / div;
  for (int64_t k = 0; k < n; ++k) {
    const double kd = static_cast<double>(k);
    y[k] = (step == 0 ? kd / div * delta : kd * step) + start;
  }
  y[n - 1] = stop;
  return y;
}

std::vector<double> karras_sigmas(double first, double last, int64_t n) {
  // Ref: sigma_min = in_sigmas[-1], sigma_max = in_sigmas[0]; (max^(1/rho) + ramp (min^(1/rho) - max^(1/rho)))^rho
  const double rho = 7.0;
  const double min_inv_rho = std::pow(last, 1 / rho);
  const double max_inv_rho = std::pow(first, 1 / rho);
  std::vector<double> ramp = np_linspace(0, 1, n);
  for (double& r : ramp) r = std::pow(max_inv_rho + r * (min_inv_rho - max_inv_rho), rho);
  return ramp;
}

double sigma_to_t(double sigma, const std::vector<float>& log_sigmas) {
  const auto n = static_cast<int64_t>(log_sigmas.size());
  const float log_sigma = static_cast<float>(std::log(sigma));
  // low_idx = cumsum(dists >= 0).argmax(), clipped to n - 2: the last index with log_sigmas[j] <= log_sigma (0 if none)
  int64_t low = 0;
  for (int64_t j = 0; j < n; ++j)
    if (log_sigma - log_sigmas[j] >= 0) low = j;
  low = std::min(low, n - 2);
  const int64_t high = low + 1;
  const float lo = log_sigmas[low], hi = log_sigmas[high];
  float w = (lo - log_sigma) / (lo - hi);
  w = std::min(std::max(w, 0.0f), 1.0f);
  // (1 - w) and w are float32, the indices int64: the products are float64
  return static_cast<double>(1 - w) * static_cast<double>(low) + static_cast<double>(w) * static_cast<double>(high);
}

}  // namespace gill::schedulers
