// The CPU probe, the OpenBLAS core advice and the compute policy, on fake feature sets (every decision on any
// machine) and on this machine's own probe.
#include <gtest/gtest.h>

#include "models/layers.h"
#include "test_support.h"
#include "util/compute_policy.h"
#include "util/cpu.h"
#include "util/error.h"

using namespace gill;
using util::ComputeMode;
using util::CpuFeatures;
using util::GemvKernel;

TEST(Cpu, ParseFakeFeatureSets) {
  const auto avx2 = CpuFeatures::parse("avx,avx2,fma");
  EXPECT_TRUE(avx2.avx2 && avx2.fma && !avx2.avx512f && !avx2.native_bf16());
  const auto zen4 = CpuFeatures::parse("avx avx2 fma avx512_core avx512_bf16");
  EXPECT_TRUE(zen4.avx512_core() && zen4.native_bf16());
  const auto amx = CpuFeatures::parse("avx2,fma,amx_bf16");
  EXPECT_TRUE(amx.native_bf16());
  // AVX512-BF16 without the AVX-512 core set is not usable.
  EXPECT_FALSE(CpuFeatures::parse("avx512_bf16").native_bf16());
  EXPECT_EQ(zen4.names(), (std::vector<std::string>{"avx", "avx2", "fma", "avx512f", "avx512dq", "avx512cd",
                                                    "avx512bw", "avx512vl", "avx512_bf16"}));
  test::expect_error([] { CpuFeatures::parse("avx2,sse9"); }, ErrorCode::kInvalidArgument,
                     "unknown CPU feature \"sse9\" (known: avx512_core, avx, avx2, fma, f16c, avx512f, avx512dq, "
                     "avx512cd, avx512bw, avx512vl, avx512_vnni, avx512_bf16, avx512_fp16, amx_tile, amx_bf16, "
                     "amx_permitted)");
}

// What the probe reports agrees with what the compiler's own runtime check sees on this machine.
TEST(Cpu, ProbeAgreesWithTheCompilerRuntime) {
  const auto& f = util::cpu_features();
#if defined(__x86_64__)
  EXPECT_EQ(f.avx2, static_cast<bool>(__builtin_cpu_supports("avx2")));
  EXPECT_EQ(f.fma, static_cast<bool>(__builtin_cpu_supports("fma")));
  EXPECT_EQ(f.avx512f, static_cast<bool>(__builtin_cpu_supports("avx512f")));
  EXPECT_EQ(f.avx512bw, static_cast<bool>(__builtin_cpu_supports("avx512bw")));
  EXPECT_FALSE(f.vendor.empty());
#endif
  EXPECT_NE(f.describe().find(':'), std::string::npos);
  // A CPU that has no AVX-512 has none of its extensions.
  if (!f.avx512f) {
    EXPECT_FALSE(f.avx512_bf16 || f.avx512bw || f.avx512_fp16);
  }
}

TEST(Cpu, OpenBlasAdviceNeverOverridesTheUser) {
  const auto xeon = CpuFeatures::parse("avx,avx2,fma,avx512_core,avx512_bf16,avx512_fp16");
  // Debian's 0.3.21 on an Intel model it does not name: generic kernels -> Cooperlake.
  auto a = util::openblas_core_advice(xeon, "Prescott", "");
  EXPECT_EQ(a.best, "Cooperlake");
  EXPECT_EQ(a.set_coretype, "Cooperlake");
  // The user's value stays.
  a = util::openblas_core_advice(xeon, "Haswell", "Haswell");
  EXPECT_EQ(a.set_coretype, "");
  EXPECT_EQ(a.reason, "OPENBLAS_CORETYPE=Haswell is set by the user: left as it is");
  // Already the best core: nothing to do; an AVX2 machine's best is Haswell (Zen counts as its equal).
  EXPECT_EQ(util::openblas_core_advice(xeon, "Cooperlake", "").set_coretype, "");
  const auto avx2 = CpuFeatures::parse("avx,avx2,fma");
  EXPECT_EQ(util::openblas_core_advice(avx2, "Zen", "").set_coretype, "");
  EXPECT_EQ(util::openblas_core_advice(avx2, "Nehalem", "").set_coretype, "Haswell");
  // No OpenBLAS in the process: nothing to do.
  EXPECT_EQ(util::openblas_core_advice(xeon, "", "").set_coretype, "");
}

TEST(Cpu, OpenBlasIsLoadedAndNamesItsCore) {
  const std::string core = util::openblas_corename();
  if (core.empty()) GTEST_SKIP() << "libtorch here does not use OpenBLAS (openblas_get_corename not found)";
  const auto a = util::openblas_core_advice();
  EXPECT_EQ(a.core, core);
  EXPECT_FALSE(a.reason.empty());
}

TEST(ComputePolicy, AutoPicksNativeBf16OnlyWhereTheCpuHasIt) {
  const auto avx2 = CpuFeatures::parse("avx,avx2,fma");
  auto p = util::decide_compute(avx2, ComputeMode::kAuto);
  EXPECT_FALSE(p.bf16);
  EXPECT_EQ(p.gemv, GemvKernel::kAvx2);
  EXPECT_TRUE(p.warning.empty());
  // AVX-512 without BF16: libtorch's oneDNN would emulate bf16, so auto stays fp32.
  EXPECT_FALSE(util::decide_compute(CpuFeatures::parse("avx,avx2,fma,avx512_core"), ComputeMode::kAuto).bf16);
  const auto zen4 = CpuFeatures::parse("avx,avx2,fma,avx512_core,avx512_bf16");
  p = util::decide_compute(zen4, ComputeMode::kAuto);
  EXPECT_TRUE(p.bf16);
  EXPECT_EQ(p.gemv, GemvKernel::kAvx512Bf16);
  EXPECT_EQ(p.describe(), "compute bf16 (asked auto; CPU has native bf16), decode GEMV avx512_bf16");
  // Forced paths: fp32 on a bf16 CPU; bf16 on an AVX2 CPU is honoured with a warning.
  EXPECT_FALSE(util::decide_compute(zen4, ComputeMode::kFp32).bf16);
  p = util::decide_compute(avx2, ComputeMode::kBf16);
  EXPECT_TRUE(p.bf16);
  EXPECT_NE(p.warning.find("without native bf16"), std::string::npos);
  // No AVX2: the portable kernel.
  EXPECT_EQ(util::decide_compute(CpuFeatures::parse(""), ComputeMode::kAuto).gemv, GemvKernel::kScalar);
}

TEST(ComputePolicy, ModeNamesAndErrors) {
  EXPECT_EQ(util::parse_compute_mode("auto"), ComputeMode::kAuto);
  EXPECT_EQ(util::parse_compute_mode("fp32"), ComputeMode::kFp32);
  EXPECT_EQ(util::parse_compute_mode("bf16"), ComputeMode::kBf16);
  test::expect_error([] { util::parse_compute_mode("fp16", "--compute"); }, ErrorCode::kInvalidArgument,
                     "--compute = \"fp16\": unknown compute mode (use auto, fp32 or bf16)");
}

// The one place a model's activation dtype is decided.
TEST(ComputePolicy, ModelComputeDtype) {
  models::ModuleOptions o;
  EXPECT_EQ(models::compute_dtype(o), torch::kFloat32);
  o.dtype = torch::kBFloat16;
  EXPECT_EQ(models::compute_dtype(o), torch::kFloat32);  // default policy: fp32 compute
  o.compute.bf16 = true;
  EXPECT_EQ(models::compute_dtype(o), torch::kBFloat16);
  o.dtype = torch::kFloat32;  // fp32 weights always compute in fp32
  EXPECT_EQ(models::compute_dtype(o), torch::kFloat32);
  o.dtype = torch::kFloat16;
  EXPECT_EQ(models::compute_dtype(o), torch::kFloat32);
}
