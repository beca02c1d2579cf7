// Linear layers whose weights are stored in bf16 and whose activations stay fp32 ("bf16 storage, fp32 compute").
//
// Why: on CPUs without native bf16 (no AVX512-BF16/AMX) libtorch's bf16 matmul is ~35x slower than fp32, while
// bf16 storage halves the bytes a memory-bound decoder step must stream. So:
//  * few rows (decoding, M <= kGemvMaxRows): an AVX2/FMA matrix-vector kernel reads the bf16 weight once,
//    widens it to fp32 in registers (exact: bf16 -> fp32 is a 16-bit shift) and accumulates in fp32;
//  * many rows (prefill): the weight is widened to fp32 a block of rows at a time into a cache-sized scratch
//    buffer and multiplied by libtorch's fp32 GEMM (OpenBLAS), so no fp32 copy of a whole layer ever exists.
// Results equal an fp32 linear on the bf16-rounded weights, up to fp32 summation order.
// A runtime CPU check picks a portable scalar kernel where AVX2/FMA are missing.
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace gill::kernels {

enum class Bf16LinearPath {
  kAuto,          // gemv for M <= kGemvMaxRows, blocked widen+GEMM otherwise
  kGemv,          // force the matrix-vector kernel (any M)
  kBlockedGemm,   // force widen-a-block + fp32 GEMM
  kScalar,        // portable scalar gemv (the fallback without AVX2), for tests
};

constexpr int64_t kGemvMaxRows = 8;

// True when this CPU has AVX2 and FMA (checked once).
bool cpu_has_avx2_fma();

// y = x W^T + b. x: [..., K] fp32; w: [N, K] bf16 (contiguous); b: [N] fp32 or undefined. Returns [..., N] fp32.
// Throws kInvalidArgument on dtype/shape/device mismatches.
torch::Tensor linear_bf16_weight(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                                 Bf16LinearPath path = Bf16LinearPath::kAuto);

}  // namespace gill::kernels
