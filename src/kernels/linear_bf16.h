// Linear layers whose weights are stored in bf16, for activations in fp32 ("bf16 storage, fp32 compute") or in bf16
// (the bf16 compute policy, util/compute_policy.h).
//
// Why: on CPUs without native bf16 (no AVX512-BF16/AMX) libtorch's bf16 matmul is ~35x slower than fp32, while
// bf16 storage halves the bytes a memory-bound decoder step must stream. So:
//  * few rows (decoding, M <= kGemvMaxRows): an AVX2/FMA matrix-vector kernel reads the bf16 weight once,
//    widens it to fp32 in registers (exact: bf16 -> fp32 is a 16-bit shift) and accumulates in fp32;
//  * many rows (prefill): the weight is widened to fp32 a block of rows at a time into a cache-sized scratch
//    buffer and multiplied by libtorch's fp32 GEMM (OpenBLAS), so no fp32 copy of a whole layer ever exists.
// Results equal an fp32 linear on the bf16-rounded weights, up to fp32 summation order.
// bf16 activations: few rows go to the same GEMV kernels (AVX512-BF16 vdpbf16ps where the CPU has it: bf16
// products, fp32 sums; elsewhere the activations are widened exactly and the fp32 kernels run), the result is
// rounded to bf16 once; many rows go to libtorch's bf16 linear (oneDNN: bf16 inputs, fp32 accumulation).
// The GEMV kernel is chosen at run time from the CPU probe (util/cpu.h); every kernel the CPU runs can be forced.
#pragma once
#include <torch/torch.h>

#include <cstdint>

#include "util/compute_policy.h"

namespace gill::kernels {

enum class Bf16LinearPath {
  kAuto,          // gemv for M <= kGemvMaxRows, blocked widen+GEMM otherwise
  kGemv,          // force the matrix-vector kernel (any M)
  kBlockedGemm,   // force widen-a-block + fp32 GEMM
  kScalar,        // portable scalar gemv (the fallback without AVX2), for tests
};

using util::GemvKernel;

constexpr int64_t kGemvMaxRows = 8;

// The GEMV kernel used when none is named: the best this CPU runs (util::best_gemv_kernel of the probe).
GemvKernel default_gemv_kernel();

// One token (M = 1) on the AVX2 and AVX-512 kernels: the row-order kernels (true, the default; gemv_kernels.h:
// gemv1_avx2 with gemv1_avx2_tuning(K), gemv1_avx512_bf16_rows, gemv1_avx512_f32_rows) or the 8-row tiles of the
// many-token kernels (false). Row order won end to end on an AVX2 EPYC (OPT-6.7B decode 0.573 against 0.623-0.664
// s/token) and on an AVX512-BF16 Zen 5 (docs/performance.md, session 12). For benchmarks that time both in one run
// (gill-bench gemv, lm); process-wide.
void use_row_order_gemv(bool on);

// Weights widened per block on the many-rows path (elements; 0 = the default, 2^21 = 8 MiB of fp32). For
// benchmarks that compare block sizes in one run (gill-bench gemm); process-wide.
void set_blocked_gemm_block_elems(int64_t elems);
int64_t blocked_gemm_block_elems();

// y = x W^T + b. x: [..., K] fp32 or bf16; w: [N, K] bf16; b: [N] fp32, bf16 or undefined. Returns [..., N] in x's
// dtype. `kernel` picks the GEMV kernel (must be one the CPU runs: kInvalidArgument otherwise).
// Throws kInvalidArgument on dtype/shape/device mismatches.
torch::Tensor linear_bf16_weight(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                                 Bf16LinearPath path = Bf16LinearPath::kAuto,
                                 GemvKernel kernel = default_gemv_kernel());

}  // namespace gill::kernels
