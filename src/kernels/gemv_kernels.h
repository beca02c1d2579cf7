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
  // gemv1_avx512_bf16_rows only: a bf16 bias instead of `bias`, and bf16 output (rounded to nearest even, as
  // Tensor::to rounds) written here instead of y.
  const uint16_t* bias16 = nullptr;
  uint16_t* y16 = nullptr;
};

void gemv_scalar(const GemvArgs& a, int64_t n0, int64_t n1);
void widen_scalar(const uint16_t* src, float* dst, int64_t n);
#ifdef GILL_GEMV_X86
void gemv_avx2_dispatch(const GemvArgs& a, int64_t n0, int64_t n1);          // AVX2 + FMA
void widen_avx2(const uint16_t* src, float* dst, int64_t n);                 // AVX2
void gemv_avx512_f32_dispatch(const GemvArgs& a, int64_t n0, int64_t n1);    // AVX-512 F/BW
void gemv_avx512_bf16_dispatch(const GemvArgsBf16& a, int64_t n0, int64_t n1);  // AVX512-BF16
// One token (a.M is taken as 1) on the AVX-512 CPUs, weight rows read one at a time in memory order (one
// sequential stream per thread), beside the dispatchers' 8-row tiles; a.ldy is unused.
void gemv1_avx512_bf16_rows(const GemvArgsBf16& a, int64_t n0, int64_t n1);  // AVX512-BF16
void gemv1_avx512_f32_rows(const GemvArgs& a, int64_t n0, int64_t n1);       // AVX-512 F/BW
// fp32 activations take the row-order kernel up to this K (x within 32 KiB, read again for every row from L1);
// longer rows keep the 8-row tiles (Zen 5, K = 16384: 31 against 48 GB/s; bf16 activations stream at every K).
constexpr int64_t kGemv1Avx512F32RowsMaxK = 8192;

// One token (M = 1) on AVX2 + FMA, weight rows read in memory order: a tile of `rows` adjacent rows at a time
// (1: one sequential stream per thread), `unroll` blocks of 16 weights per step, an optional software prefetch
// `prefetch` bytes ahead in each row (0: none). Each 16-weight block is widened without a shuffle: the low bf16 of
// every 32-bit lane shifted up, the high one masked, against x split the same way once per call by split_x_avx2
// (xs[16b + i] = x[16b + 2i], xs[16b + 8 + i] = x[16b + 2i + 1], i < 8, for the K & ~15 leading elements; the
// K tail is summed from a.x). Supported: rows 1, 2, 4; unroll 1, 2, 4; prefetch 0, 256, 512, 1024.
// `spread`: the `rows` rows of a tile are not adjacent but one from each of `rows` equal sub-bands of [n0, n1),
// so each thread reads `rows` sequential streams far apart (the rest of the band, < rows rows, one at a time).
struct Gemv1Tuning {
  int rows = 1;
  int unroll = 2;
  int prefetch = 0;
  bool spread = false;
};
// The engine's choice for a K-column weight (gill-bench gemv sweeps the others; docs/performance.md): 4 rows x 2
// blocks, spread when a row is shorter than 16 KiB (K < 8192: adjacent 8 KiB rows make short streams; measured on
// a 2-core AMD EPYC: +8-25 % at K = 4096, -7-19 % at K = 16384, where 4 adjacent rows already stream 128 KiB).
constexpr int64_t kGemv1SpreadBelowK = 8192;
inline Gemv1Tuning gemv1_avx2_tuning(int64_t K) { return {4, 2, 0, K < kGemv1SpreadBelowK}; }
void split_x_avx2(const float* x, int64_t K, float* xs);
void gemv1_avx2(const GemvArgs& a, const float* xs, int64_t n0, int64_t n1, Gemv1Tuning t);
bool gemv1_avx2_supports(Gemv1Tuning t);
#endif

}  // namespace gill::kernels::gemv
