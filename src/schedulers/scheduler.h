// Diffusion schedulers for Stable Diffusion, each as diffusers 0.17.1 computes it: PNDMScheduler (PRK warm-up
// or PLMS only), DDIMScheduler, EulerDiscreteScheduler, DPMSolverMultistepScheduler. Plain C++ over libtorch
// tensors: the coefficient tables are CPU float32 tensors and every formula is evaluated with the same tensor ops,
// in the same order and dtypes, as the Python (0-dim float32 scalars combined with the sample), so an fp32 run
// reproduces the reference bit for bit and a reduced-precision sample follows torch's promotion rules.
//
// Config: SchedulerConfig holds the keys as the file writes them (absent = unset). Each class reads the keys its
// diffusers __init__ takes, an absent key taking that class's own default (PNDMSchedulerConfig, ...), and ignores
// the others, as diffusers' from_config does. A value we do not support is refused when the scheduler is built,
// with an error naming the key and the value. docs/schedulers.md lists every key.
//
// Use: s->set_timesteps(n); x = noise * s->init_noise_sigma(); for i in [0, s->timesteps().size(0)):
//   u = s->scale_model_input(x, i); eps = unet(u, s->timestep(i)); x = s->step(eps, i, x, gen).
// The step index i replaces upstream's lookup by timestep value (PNDM repeats a timestep and counts calls instead).
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace gill::schedulers {

// scheduler/scheduler_config.json: every key one of the four classes reads, as written (null or absent = unset).
// Keys no class reads are ignored, as diffusers' from_config does.
struct SchedulerConfig {
  std::string _class_name = "PNDMScheduler";
  // Read by all four classes.
  std::optional<int64_t> num_train_timesteps;
  std::optional<double> beta_start;
  std::optional<double> beta_end;
  std::optional<std::string> beta_schedule;
  std::optional<std::vector<double>> trained_betas;
  std::optional<std::string> prediction_type;
  // PNDM and DDIM.
  std::optional<bool> set_alpha_to_one;
  std::optional<int64_t> steps_offset;
  // PNDM.
  std::optional<bool> skip_prk_steps;
  // DDIM.
  std::optional<bool> clip_sample;
  std::optional<double> clip_sample_range;
  std::optional<std::string> timestep_spacing;
  std::optional<bool> rescale_betas_zero_snr;
  // DDIM and DPM-Solver.
  std::optional<bool> thresholding;
  std::optional<double> dynamic_thresholding_ratio;
  std::optional<double> sample_max_value;
  // Euler.
  std::optional<std::string> interpolation_type;
  // Euler and DPM-Solver.
  std::optional<bool> use_karras_sigmas;
  // DPM-Solver.
  std::optional<int64_t> solver_order;
  std::optional<std::string> algorithm_type;
  std::optional<std::string> solver_type;
  std::optional<bool> lower_order_final;
  std::optional<double> lambda_min_clipped;
  std::optional<std::string> variance_type;

  // Checks each key's JSON type (an error names the key and value); values are checked by the class that reads them.
  static SchedulerConfig from_json(const nlohmann::json& j);
  // A file or the scheduler/ folder; Python json's NaN / Infinity / -Infinity (lambda_min_clipped) are read.
  static SchedulerConfig from_file(const std::filesystem::path& path);
};

// The keys all four classes read, with the defaults they all share (diffusers 0.17.1 __init__).
struct BetaScheduleConfig {
  int64_t num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::string beta_schedule = "linear";              // linear | scaled_linear | squaredcos_cap_v2
  std::optional<std::vector<double>> trained_betas;  // overrides beta_schedule
  std::string prediction_type = "epsilon";           // each class checks its own list
  // Takes the keys present in c.
  void read(const SchedulerConfig& c);
};

// betas, alphas_cumprod as diffusers builds them (CPU float32; cumprod accumulates in double on the CPU).
struct NoiseTables {
  torch::Tensor betas;           // [T] float32
  torch::Tensor alphas_cumprod;  // [T] float32
  // rescale_betas_zero_snr: DDIM's rescale_zero_terminal_snr on the betas.
  static NoiseTables make(const BetaScheduleConfig& cfg, bool rescale_betas_zero_snr = false);
  static NoiseTables make(const SchedulerConfig& cfg);  // the shared defaults for absent keys
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // The CLI name: "pndm", "ddim", "euler", "dpm++2m".
  virtual std::string name() const = 0;
  // Resets all state (PNDM history, DPM model outputs) for a new run of n_steps inference steps.
  virtual void set_timesteps(int64_t n_steps) = 0;
  // The timesteps of the current run: int64 (PNDM, DDIM, DPM) or float64 (Euler), CPU, one per UNet call.
  const torch::Tensor& timesteps() const { return timesteps_; }
  int64_t n_calls() const { return timesteps_.defined() ? timesteps_.size(0) : 0; }
  // timesteps()[i] as a 0-dim tensor of the same dtype (what the pipeline hands to the UNet).
  torch::Tensor timestep(int64_t i) const;
  // The factor the initial noise is multiplied by (Euler: max sigma, as a float32 value).
  virtual double init_noise_sigma() const { return 1.0; }
  // Input scaling for call i (identity except for Euler).
  virtual torch::Tensor scale_model_input(const torch::Tensor& sample, int64_t i) const { return sample; }
  // One update: the sample after call i, given the (guided) model output. `gen` is the generator upstream's step
  // draws from (Euler draws one unused normal tensor per step in 0.17.1; the SDE DPM-Solvers draw their noise);
  // it may be null where nothing is drawn.
  virtual torch::Tensor step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample,
                             at::Generator* gen = nullptr) = 0;

  const NoiseTables& tables() const { return tables_; }

 protected:
  Scheduler(NoiseTables tables, int64_t n_train) : tables_(std::move(tables)), n_train_(n_train) {}
  void check_index(int64_t i) const;
  NoiseTables tables_;
  int64_t n_train_;
  torch::Tensor timesteps_;
};

// The one table of schedulers: CLI name, diffusers class and the factory make_scheduler uses, in help order
// (gill::scheduler_names(), GenerateOptions::validate and the CLI's help read it).
struct SchedulerName {
  const char* name;
  const char* class_name;
  std::unique_ptr<Scheduler> (*make)(const SchedulerConfig& cfg);
};
const std::vector<SchedulerName>& scheduler_table();
// The names accepted by make_scheduler, in help order.
const std::vector<std::string>& scheduler_names();
// Builds a scheduler by name from a config (the SD folder's scheduler_config.json, whatever its _class_name,
// as diffusers' Scheduler.from_config(pipe.scheduler.config)). Throws kInvalidArgument for an unknown name and
// kUnsupported for a key value the class refuses.
std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const SchedulerConfig& cfg);

// A CPU generator seeded like torch.Generator().manual_seed(seed) (mt19937).
at::Generator make_cpu_generator(uint64_t seed);
// Initial latents as diffusers' randn_tensor draws them with a CPU generator: torch.randn(shape, generator=g,
// dtype=float32) on the CPU from a fresh generator seeded with `seed` (the same seed gives the same latents as the
// Python pipeline). The result is float32 on the CPU, before the init_noise_sigma scaling.
torch::Tensor seeded_latents(uint64_t seed, at::IntArrayRef shape);

// Throws kInvalidArgument unless 1 <= n_steps <= n_train (shared by the schedulers' set_timesteps).
void check_n_steps(const std::string& who, int64_t n_steps, int64_t n_train);
// Every timestep of a "leading" schedule lies in the trained range [0, n_train): with steps_offset > 0 and
// n_steps close to n_train the last one does not (diffusers 0.17.1 then fails with an IndexError).
// kInvalidArgument naming the steps, the offset and the timestep.
void check_timesteps_in_range(const std::string& who, const std::vector<int64_t>& ts, int64_t n_steps,
                              int64_t steps_offset, int64_t n_train);

// Shared by the schedulers.
// Throws kUnsupported "<who> scheduler: <key> '<value>' is not supported (<allowed>)" unless value is in allowed.
void check_one_of(const std::string& who, const char* key, const std::string& value,
                  const std::vector<std::string>& allowed);
// DDIM / DPM-Solver _threshold_sample (dynamic thresholding of a [B, C, H, W] x0 prediction).
torch::Tensor threshold_sample(const torch::Tensor& sample, double ratio, double max_value);
// Karras et al. sigmas between sigmas_in[0] and sigmas_in[-1] (both ends included), n of them, float64
// (_convert_to_karras, rho 7).
std::vector<double> karras_sigmas(double first, double last, int64_t n);
// _sigma_to_t: the fractional training timestep of a sigma, by interpolation in the float32 log-sigma table
// (numpy 1.x promotion: the float64 log sigma meets the float32 table as float32).
double sigma_to_t(double sigma, const std::vector<float>& log_sigmas);
// numpy.linspace(start, stop, n) in float64.
std::vector<double> np_linspace(double start, double stop, int64_t n);

}  // namespace gill::schedulers
