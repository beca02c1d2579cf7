// Validation of the public option structs, and gill::version(). Messages name the struct field and its value
// so a CLI flag or a JSONL option maps back to it ("GenerateOptions.top_p = 1.5: must be in (0, 1]").
#include <gill/gill.h>
#include <gill/version.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "api/runtime.h"
#include "schedulers/scheduler.h"
#include "util/error.h"
#include "util/threads.h"
#include "util/utf8.h"

namespace gill {

namespace {

using detail::str_cat;

[[noreturn]] void bad(const char* strct, const char* field, const std::string& value, const std::string& why) {
  detail::fail(ErrorCode::kInvalidArgument, str_cat(strct, ".", field, " = ", value, ": ", why));
}

std::string quoted(const std::string& s) { return str_cat('"', s, '"'); }

std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

void check_one_of(const char* strct, const char* field, const std::string& value,
                  std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (value == a) return;
    list += (list.empty() ? "" : ", ");
    list += a;
  }
  bad(strct, field, quoted(value), str_cat("must be one of ", list));
}

// A finite number >= lo.
void check_min(const char* strct, const char* field, double v, double lo) {
  if (!std::isfinite(v) || v < lo) bad(strct, field, num(v), str_cat("must be a finite number >= ", num(lo)));
}

void check_int_range(const char* strct, const char* field, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) bad(strct, field, std::to_string(v), str_cat("must be in [", lo, ", ", hi, "]"));
}

bool valid_device(const std::string& d) {
  if (d == "cpu" || d == "cuda") return true;
  if (d.rfind("cuda:", 0) != 0 || d.size() == 5 || d.size() > 8) return false;
  for (size_t i = 5; i < d.size(); ++i)
    if (d[i] < '0' || d[i] > '9') return false;
  return true;
}

}  // namespace

void EngineOptions::validate() const {
  constexpr const char* S = "EngineOptions";
  if (weights_root.empty()) {
    // Without a root every component must be named on its own.
    if (lm_dir.empty()) bad(S, "lm_dir", "\"\"", "give weights_root or the LLM folder");
    if (clip_dir.empty()) bad(S, "clip_dir", "\"\"", "give weights_root or the CLIP folder");
    if (gill_dir.empty()) bad(S, "gill_dir", "\"\"", "give weights_root or the GILL checkpoint folder");
    if (load_sd && sd_dir.empty())
      bad(S, "sd_dir", "\"\"", "give weights_root or the Stable Diffusion folder (or set load_sd = false)");
  }
  if (!valid_device(device)) bad(S, "device", quoted(device), "must be cpu, cuda or cuda:N");
  check_one_of(S, "dtype", dtype, {"auto", "fp32", "bf16", "fp16"});
  check_one_of(S, "compute", compute, {"auto", "fp32", "bf16"});
  check_int_range(S, "threads", threads, 0, 4096);
}

void GenerateOptions::validate() const {
  constexpr const char* S = "GenerateOptions";
  check_int_range(S, "num_words", num_words, 1, 1 << 20);
  check_int_range(S, "min_word_tokens", min_word_tokens, 0, 1 << 20);
  check_min(S, "ret_scale_factor", ret_scale_factor, 0);
  check_min(S, "gen_scale_factor", gen_scale_factor, 0);
  check_min(S, "temperature", temperature, 0);
  if (!std::isfinite(top_p) || top_p <= 0 || top_p > 1) bad(S, "top_p", num(top_p), "must be in (0, 1]");
  check_int_range(S, "top_k", top_k, 0, 1 << 30);
  check_int_range(S, "max_num_rets", max_num_rets, 1, 1 << 20);
  check_int_range(S, "steps", steps, 1, 1000);
  check_min(S, "guidance_scale", guidance_scale, 0);
  const auto& names = scheduler_names();
  if (std::find(names.begin(), names.end(), scheduler) == names.end()) {
    std::string list;
    for (const auto& n : names) list += str_cat(list.empty() ? "" : ", ", n);
    bad(S, "scheduler", quoted(scheduler), str_cat("must be one of ", list));
  }
}

std::vector<std::string> available_devices() { return {"cpu"}; }

void check_device(const std::string& device, const std::string& what) {
  std::string list;
  for (const auto& d : available_devices()) {
    if (device == d) return;
    list += str_cat(list.empty() ? "" : ", ", d);
  }
  detail::fail(ErrorCode::kUnsupported, str_cat(what, " ", device, ": this build of gill runs on the CPU only (no ",
                                                "CUDA path); available devices: ", list));
}

const std::vector<std::string>& scheduler_names() { return schedulers::scheduler_names(); }

void check_utf8(const std::string& text, const std::string& what) { detail::require_utf8(text, what); }

int detail::begin_call(const std::string& device, const std::string& what, int threads) {
  check_device(device, what);
  const int n = set_threads(threads);
  spdlog::debug("using {} thread(s)", n);
  return n;
}

util::ComputePolicy detail::decide_compute(const std::string& value, const std::string& what) {
  const auto policy = util::decide_compute(util::cpu_features(), util::parse_compute_mode(value, what));
  spdlog::info("{}", policy.describe());
  if (!policy.warning.empty()) spdlog::warn("{}", policy.warning);
  return policy;
}

ComputeInfo detail::compute_info(const std::string& device, const std::string& dtype, const std::string& requested,
                                 const util::ComputePolicy& policy, bool mmap) {
  ComputeInfo c;
  c.device = device;
  c.dtype = dtype;
  c.requested = requested;
  c.compute = policy.bf16 ? "bf16" : "fp32";
  c.gemv_kernel = util::gemv_kernel_name(policy.gemv);
  c.native_bf16 = policy.native_bf16;
  c.weights = mmap ? "mmap" : "memory";
  return c;
}

const char* version() { return GILL_VERSION_STRING; }

}  // namespace gill
