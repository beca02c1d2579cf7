// Diffusion schedulers for Stable Diffusion, each as diffusers 0.17.1 computes it (PNDM with skip_prk_steps,
// DDIM, Euler discrete, DPM-Solver++ 2M). Plain C++ over libtorch tensors: the coefficient tables are CPU float32
// tensors and every formula is evaluated with the same tensor ops, in the same order and dtypes, as the Python
// (0-dim float32 scalars combined with the sample), so an fp32 run reproduces the reference bit for bit and a
// reduced-precision sample follows torch's promotion rules.
//
// Use: s->set_timesteps(n); x = noise * s->init_noise_sigma(); for i in [0, s->timesteps().size(0)):
//   u = s->scale_model_input(x, i); eps = unet(u, s->timestep(i)); x = s->step(eps, i, x, gen).
// The step index i replaces upstream's lookup by timestep value (PNDM repeats a timestep and counts calls instead).
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace gill::schedulers {

// scheduler/scheduler_config.json. Fields are the config keys; keys a scheduler does not use are ignored, as
// diffusers' from_config does.
struct SchedulerConfig {
  std::string _class_name = "PNDMScheduler";
  int64_t num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::string beta_schedule = "linear";   // linear | scaled_linear
  std::vector<double> trained_betas;      // null/absent = empty
  bool skip_prk_steps = false;            // PNDM: only true is supported (what SD ships)
  bool set_alpha_to_one = false;          // PNDM/DDIM: final alpha 1 instead of alphas_cumprod[0]
  int64_t steps_offset = 0;               // PNDM/DDIM
  std::string prediction_type = "epsilon";  // only epsilon is supported
  bool clip_sample = false;               // DDIM: only false is supported
  bool thresholding = false;              // DDIM/DPM: only false is supported
  std::string timestep_spacing = "leading";  // DDIM: leading | trailing

  static SchedulerConfig from_json(const nlohmann::json& j);
  static SchedulerConfig from_file(const std::filesystem::path& path);  // a file or the scheduler/ folder
};

// betas, alphas_cumprod as diffusers builds them (CPU float32; cumprod accumulates in double on the CPU).
struct NoiseTables {
  torch::Tensor betas;           // [T] float32
  torch::Tensor alphas_cumprod;  // [T] float32
  static NoiseTables make(const SchedulerConfig& cfg);
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // "pndm", "ddim", "euler", "dpm++2m".
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
  // One update: the sample after call i, given the (guided) model output. `gen` is handed to schedulers whose
  // upstream step draws from the generator (Euler draws one unused normal tensor per step in 0.17.1); it may
  // be null.
  virtual torch::Tensor step(const torch::Tensor& model_output, int64_t i, const torch::Tensor& sample,
                             at::Generator* gen = nullptr) = 0;

  const SchedulerConfig& config() const { return cfg_; }
  const NoiseTables& tables() const { return tables_; }

 protected:
  explicit Scheduler(SchedulerConfig cfg);
  void check_index(int64_t i) const;
  SchedulerConfig cfg_;
  NoiseTables tables_;
  torch::Tensor timesteps_;
};

// The names accepted by make_scheduler, in help order.
const std::vector<std::string>& scheduler_names();
// Builds a scheduler by name from a config (the SD folder's scheduler_config.json, whatever its _class_name,
// as diffusers' Scheduler.from_config(pipe.scheduler.config)). Throws kInvalidArgument for an unknown name.
std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const SchedulerConfig& cfg);

// A CPU generator seeded like torch.Generator().manual_seed(seed) (mt19937).
at::Generator make_cpu_generator(uint64_t seed);
// Initial latents as diffusers' randn_tensor draws them with a CPU generator: torch.randn(shape, generator=g,
// dtype=float32) on the CPU from a fresh generator seeded with `seed` (the same seed gives the same latents as the
// Python pipeline). The result is float32 on the CPU, before the init_noise_sigma scaling.
torch::Tensor seeded_latents(uint64_t seed, at::IntArrayRef shape);

// Throws kInvalidArgument unless 1 <= n_steps <= n_train (shared by the schedulers' set_timesteps).
void check_n_steps(const std::string& who, int64_t n_steps, int64_t n_train);

}  // namespace gill::schedulers
