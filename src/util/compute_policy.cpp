#include "util/compute_policy.h"

#include "util/error.h"

namespace gill::util {

ComputeMode parse_compute_mode(const std::string& value, const std::string& what) {
  if (value == "auto") return ComputeMode::kAuto;
  if (value == "fp32") return ComputeMode::kFp32;
  if (value == "bf16") return ComputeMode::kBf16;
  detail::fail(ErrorCode::kInvalidArgument,
               detail::str_cat(what, " = \"", value, "\": unknown compute mode (use auto, fp32 or bf16)"));
}

const char* compute_mode_name(ComputeMode mode) {
  switch (mode) {
    case ComputeMode::kAuto: return "auto";
    case ComputeMode::kFp32: return "fp32";
    default: return "bf16";
  }
}

const char* gemv_kernel_name(GemvKernel k) {
  switch (k) {
    case GemvKernel::kAvx512Bf16: return "avx512_bf16";
    case GemvKernel::kAvx2: return "avx2";
    default: return "scalar";
  }
}

bool can_run(const CpuFeatures& cpu, GemvKernel k) {
  switch (k) {
    case GemvKernel::kAvx512Bf16: return cpu.avx512_core() && cpu.avx512_bf16;
    case GemvKernel::kAvx2: return cpu.avx2 && cpu.fma;
    default: return true;
  }
}

GemvKernel best_gemv_kernel(const CpuFeatures& cpu) {
  if (can_run(cpu, GemvKernel::kAvx512Bf16)) return GemvKernel::kAvx512Bf16;
  if (can_run(cpu, GemvKernel::kAvx2)) return GemvKernel::kAvx2;
  return GemvKernel::kScalar;
}

ComputePolicy decide_compute(const CpuFeatures& cpu, ComputeMode mode) {
  ComputePolicy p;
  p.requested = mode;
  p.native_bf16 = cpu.native_bf16();
  p.gemv = best_gemv_kernel(cpu);
  switch (mode) {
    case ComputeMode::kAuto: p.bf16 = p.native_bf16; break;
    case ComputeMode::kFp32: p.bf16 = false; break;
    case ComputeMode::kBf16:
      p.bf16 = true;
      if (!p.native_bf16)
        p.warning = "compute bf16 was asked for on a CPU without native bf16 (no AVX512-BF16 or AMX-BF16): "
                    "libtorch emulates it, expect it to be several times slower than fp32 compute";
      break;
  }
  return p;
}

std::string ComputePolicy::describe() const {
  std::string s = std::string("compute ") + (bf16 ? "bf16" : "fp32") + " (asked " + compute_mode_name(requested) +
                  "; CPU " + (native_bf16 ? "has" : "lacks") + " native bf16), decode GEMV " + gemv_kernel_name(gemv);
  return s;
}

}  // namespace gill::util
