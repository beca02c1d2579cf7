// The raw GEMV kernels behind kernels/linear_bf16.h (torch-free, so this file builds quickly and alone):
// y[m, n] = sum_k x[m, k] w[n, k] + bias[n] for weight rows n in [n0, n1) and M <= 8 activation rows, bf16
// weights, fp32 sums. Each ISA's kernels carry function target attributes; callers check the CPU first
// (util::can_run).
#pragma once
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#define GILL_GEMV_X86 1
#endif

namespace gill::kernels::gemv {

struct GemvArgs {  // fp32 activations
  const float* x;
  int64_t ldx;
  int64_t M;
  const uint16_t* w;
  int64_t K;
  float* y;
  int64_t ldy;
  const float* bias;  // may be null
};

struct GemvArgsBf16 {  // bf16 activations (ldx in elements)
  const uint16_t* x;
  int64_t ldx;
  int64_t M;
  const uint16_t* w;
  int64_t K;
  float* y;
  int64_t ldy;
  const float* bias;  // may be null
};

void gemv_scalar(const GemvArgs& a, int64_t n0, int64_t n1);
void widen_scalar(const uint16_t* src, float* dst, int64_t n);
#ifdef GILL_GEMV_X86
void gemv_avx2_dispatch(const GemvArgs& a, int64_t n0, int64_t n1);          // AVX2 + FMA
void widen_avx2(const uint16_t* src, float* dst, int64_t n);                 // AVX2
void gemv_avx512_f32_dispatch(const GemvArgs& a, int64_t n0, int64_t n1);    // AVX-512 F/BW
void gemv_avx512_bf16_dispatch(const GemvArgsBf16& a, int64_t n0, int64_t n1);  // AVX512-BF16
#endif

}  // namespace gill::kernels::gemv
