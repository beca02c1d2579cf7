// The compute policy: for weights stored in bf16 on the CPU, which dtype each class of operation does its
// arithmetic in. Decided once per engine (decide_compute) from the CPU probe and the user's request
// (EngineOptions::compute / --compute auto|fp32|bf16), carried to every model in ModuleOptions, logged.
//
//  * fp32 ("bf16 storage, fp32 compute"): weights are widened to fp32 right before their GEMM/conv; activations,
//    norms and softmax are fp32. The fast path where the CPU has no native bf16 (AVX2-only: libtorch's bf16 matmul
//    runs ~35x slower than fp32 there; AVX-512 without BF16: oneDNN emulates bf16).
//  * bf16: the reference's dtype end to end, as diffusers/transformers run a bf16 model: activations are bf16,
//    linear/conv/attention matmuls go to oneDNN's bf16 kernels (bf16 inputs, fp32 accumulation, bf16 results),
//    LayerNorm/GroupNorm/softmax take bf16 tensors and accumulate in fp32 inside libtorch. Fast where the CPU has
//    AVX512-BF16 or AMX-BF16.
// Decode GEMV (few rows, memory bound) uses gill's own kernels in either policy: an AVX512-BF16 kernel (vdpbf16ps)
// where the CPU has it, else the AVX2/FMA one, else portable scalar code; all accumulate in fp32.
// Weights stored in fp32 always compute in fp32 (the policy applies to reduced-precision storage).
#pragma once
#include <string>

#include "util/cpu.h"

namespace gill::util {

enum class ComputeMode { kAuto, kFp32, kBf16 };

// "auto" | "fp32" | "bf16" -> mode. Anything else: gill::Error(kInvalidArgument) "<what> = \"x\": ...".
ComputeMode parse_compute_mode(const std::string& value, const std::string& what = "compute");
const char* compute_mode_name(ComputeMode mode);

enum class GemvKernel { kAvx512Bf16, kAvx2, kScalar };
const char* gemv_kernel_name(GemvKernel k);
// The best decode GEMV kernel `cpu` can run.
GemvKernel best_gemv_kernel(const CpuFeatures& cpu);

struct ComputePolicy {
  bool bf16 = false;         // linear/conv/attention arithmetic in bf16 for bf16-stored weights (else fp32)
  GemvKernel gemv = best_gemv_kernel(cpu_features());  // decode GEMV kernel
  ComputeMode requested = ComputeMode::kFp32;
  bool native_bf16 = false;  // the CPU runs bf16 natively (AVX512-BF16 or AMX-BF16)
  std::string warning;       // non-empty when the request is honoured but slow on this CPU
  // "compute bf16 (native bf16: avx512_bf16), decode GEMV avx512_bf16" for logs, --version, benchmark JSON.
  std::string describe() const;
};

// The policy for `cpu` and `mode`. auto: bf16 where native_bf16(), else fp32. bf16 on a CPU without native
// bf16 is honoured with a warning (libtorch emulates it, slowly). The GEMV kernel is the best the CPU runs.
ComputePolicy decide_compute(const CpuFeatures& cpu, ComputeMode mode);

// Whether `cpu` can run kernel `k` (tests force every kernel the machine can run).
bool can_run(const CpuFeatures& cpu, GemvKernel k);

}  // namespace gill::util
