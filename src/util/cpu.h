// The CPU probe: which instruction sets this machine (and its OS) lets gill use, decided once at run time with
// cpuid + xgetbv, never at build time. Everything that picks a kernel or a compute dtype reads a CpuFeatures;
// tests build fake ones (CpuFeatures::parse) to cover each decision on any machine.
//
// Also the OpenBLAS core-type advice: Debian's OpenBLAS 0.3.21 picks its kernels from the CPU model it was taught
// and falls back to its slowest (Prescott) ones on models it does not name; `openblas_core_advice` says which
// OPENBLAS_CORETYPE the instructions confirmed by the probe allow. The CLI applies it at its re-exec
// (tools/gill/main.cpp); a program linking the library reads it from `gill::cpu_report()` (gill/system.h) and
// sets the variable before it starts (OpenBLAS reads it once, when it is loaded).
#pragma once
#include <string>
#include <vector>

namespace gill::util {

struct CpuFeatures {
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ... ("" when unknown)
  std::string brand;   // the brand string, e.g. "AMD EPYC 9B45"
  int family = 0, model = 0;
  bool avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512dq = false, avx512cd = false, avx512bw = false, avx512vl = false;
  bool avx512_vnni = false, avx512_bf16 = false, avx512_fp16 = false;
  bool amx_tile = false, amx_bf16 = false;  // the CPU has AMX and the OS saves tile state (XCR0 bits 17, 18)
  bool amx_permitted = false;               // Linux granted this process the tile data permission

  // AVX-512 F+DQ+CD+BW+VL with OS support for the zmm state (what OpenBLAS's SkylakeX kernels need).
  bool avx512_core() const { return avx512f && avx512dq && avx512cd && avx512bw && avx512vl; }
  // Native bf16 arithmetic: AVX512-BF16 (vdpbf16ps) or AMX-BF16 tiles the process may use.
  bool native_bf16() const { return (avx512_core() && avx512_bf16) || (amx_bf16 && amx_permitted); }

  // The feature names present, in a fixed order: "avx avx2 fma f16c avx512f ... amx_bf16".
  std::vector<std::string> names() const;
  // One line for logs and --version: "AMD EPYC 9B45 (AuthenticAMD family 26 model 2): avx avx2 ...".
  std::string describe() const;

  // A fake feature set for tests: a comma- or space-separated list of names() entries ("avx2,fma",
  // "avx512_core,avx512_bf16"; "avx512_core" sets the five core bits, "amx_bf16" also sets amx_tile and
  // amx_permitted). Unknown names: gill::Error(kInvalidArgument) naming the name and listing the known ones.
  static CpuFeatures parse(const std::string& list);
};

// This machine's features (probed once, thread-safe). On Linux the first call also asks the kernel for the AMX
// tile permission (arch_prctl ARCH_REQ_XCOMP_PERM) when the CPU has AMX, so libraries that use tiles may.
const CpuFeatures& cpu_features();

// The core OpenBLAS reports it runs (openblas_get_corename through the loaded library; "" when OpenBLAS is not
// in the process).
std::string openblas_corename();

struct OpenBlasAdvice {
  std::string core;          // what OpenBLAS runs now ("" unknown)
  std::string best;          // the newest core type the probed instructions allow ("" none better than generic)
  std::string set_coretype;  // value to give OPENBLAS_CORETYPE, "" when nothing is to be done
  std::string reason;        // one line: why set / why not
};
// Advice from the features, OpenBLAS's current core and the user's OPENBLAS_CORETYPE ("" unset, never
// overridden). Pure: tests call it with fakes.
OpenBlasAdvice openblas_core_advice(const CpuFeatures& cpu, const std::string& current_core,
                                    const std::string& user_coretype);
// The same for this process (cpu_features(), openblas_corename(), getenv("OPENBLAS_CORETYPE")).
OpenBlasAdvice openblas_core_advice();

}  // namespace gill::util
