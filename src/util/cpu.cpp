// The CPU probe (see cpu.h). Ref: Intel SDM vol. 2A, CPUID leaves 1, 7.0, 7.1, 0x80000002-4; XCR0 bits; Linux
// Documentation/arch/x86/xstate.rst (ARCH_REQ_XCOMP_PERM); OpenBLAS 0.3.21 driver/others/dynamic.c core names.
#include "util/cpu.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <utility>

#include "util/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define GILL_X86 1
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace gill::util {

namespace {

// names() order; each entry points at its flag.
std::vector<std::pair<const char*, bool CpuFeatures::*>> flag_table() {
  return {{"avx", &CpuFeatures::avx},           {"avx2", &CpuFeatures::avx2},
          {"fma", &CpuFeatures::fma},           {"f16c", &CpuFeatures::f16c},
          {"avx512f", &CpuFeatures::avx512f},   {"avx512dq", &CpuFeatures::avx512dq},
          {"avx512cd", &CpuFeatures::avx512cd}, {"avx512bw", &CpuFeatures::avx512bw},
          {"avx512vl", &CpuFeatures::avx512vl}, {"avx512_vnni", &CpuFeatures::avx512_vnni},
          {"avx512_bf16", &CpuFeatures::avx512_bf16}, {"avx512_fp16", &CpuFeatures::avx512_fp16},
          {"amx_tile", &CpuFeatures::amx_tile}, {"amx_bf16", &CpuFeatures::amx_bf16},
          {"amx_permitted", &CpuFeatures::amx_permitted}};
}

#ifdef GILL_X86
uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool request_amx_permission() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr int kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (::syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
  unsigned long bitmask = 0;
  if (::syscall(SYS_arch_prctl, kArchGetXcompPerm, &bitmask) != 0) return false;
  return (bitmask >> kXfeatureXtiledata) & 1;
#else
  return false;
#endif
}

CpuFeatures probe() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const unsigned max_leaf = a;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  f.vendor = vendor;

  __get_cpuid(1, &a, &b, &c, &d);
  const unsigned base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
  f.family = static_cast<int>(base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family);
  f.model = static_cast<int>((base_family == 0x6 || base_family == 0xf) ? base_model | (((a >> 16) & 0xf) << 4)
                                                                         : base_model);
  const bool osxsave = (c >> 27) & 1;
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_avx = (xcr0 & 0x6) == 0x6;              // SSE + AVX state
  const bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;      // XTILECFG, XTILEDATA
  f.avx = os_avx && ((c >> 28) & 1);
  f.fma = f.avx && ((c >> 12) & 1);
  f.f16c = f.avx && ((c >> 29) & 1);
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = f.avx && ((b >> 5) & 1);
    f.avx512f = os_avx512 && ((b >> 16) & 1);
    f.avx512dq = f.avx512f && ((b >> 17) & 1);
    f.avx512cd = f.avx512f && ((b >> 28) & 1);
    f.avx512bw = f.avx512f && ((b >> 30) & 1);
    f.avx512vl = f.avx512f && ((b >> 31) & 1);
    f.avx512_vnni = f.avx512f && ((c >> 11) & 1);
    f.avx512_fp16 = f.avx512f && ((d >> 23) & 1);
    f.amx_tile = os_amx && ((d >> 24) & 1);
    f.amx_bf16 = f.amx_tile && ((d >> 22) & 1);
    const unsigned max_sub = a;
    if (max_sub >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      f.avx512_bf16 = f.avx512f && ((a >> 5) & 1);
    }
  }
  if (f.amx_tile) f.amx_permitted = request_amx_permission();

  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002 + i, &a, &b, &c, &d);
      std::memcpy(brand + 16 * i, &a, 4);
      std::memcpy(brand + 16 * i + 4, &b, 4);
      std::memcpy(brand + 16 * i + 8, &c, 4);
      std::memcpy(brand + 16 * i + 12, &d, 4);
    }
    std::string s = brand;
    const auto first = s.find_first_not_of(' ');
    const auto last = s.find_last_not_of(' ');
    f.brand = first == std::string::npos ? "" : s.substr(first, last - first + 1);
  }
  return f;
}
#else
CpuFeatures probe() { return {}; }
#endif

// OpenBLAS core types by the instructions their kernels use (0: SSE-era generic kernels).
int core_rank(const std::string& core) {
  std::string c = core;
  std::transform(c.begin(), c.end(), c.begin(), [](unsigned char ch) { return std::tolower(ch); });
  if (c == "cooperlake") return 5;
  if (c == "skylakex") return 4;
  if (c == "haswell" || c == "zen") return 3;
  if (c == "excavator" || c == "steamroller" || c == "piledriver" || c == "bulldozer" || c == "sandybridge") return 2;
  return c.empty() ? -1 : 0;
}

}  // namespace

std::vector<std::string> CpuFeatures::names() const {
  std::vector<std::string> out;
  for (const auto& [name, flag] : flag_table())
    if (this->*flag) out.emplace_back(name);
  return out;
}

std::string CpuFeatures::describe() const {
  std::ostringstream os;
  os << (brand.empty() ? "unknown CPU" : brand);
  if (!vendor.empty()) os << " (" << vendor << " family " << family << " model " << model << ")";
  os << ":";
  const auto n = names();
  if (n.empty()) os << " no AVX";
  for (const auto& s : n) os << ' ' << s;
  return os.str();
}

CpuFeatures CpuFeatures::parse(const std::string& list) {
  CpuFeatures f;
  f.brand = "fake CPU";
  std::string token;
  std::istringstream in(list);
  auto apply = [&](const std::string& name) {
    if (name.empty()) return;
    if (name == "avx512_core") {
      f.avx512f = f.avx512dq = f.avx512cd = f.avx512bw = f.avx512vl = true;
      return;
    }
    if (name == "amx_bf16") {
      f.amx_tile = f.amx_bf16 = f.amx_permitted = true;
      return;
    }
    for (const auto& [n, flag] : flag_table()) {
      if (name == n) {
        f.*flag = true;
        return;
      }
    }
    std::string known = "avx512_core";
    for (const auto& [n, flag] : flag_table()) known += std::string(", ") + n;
    detail::fail(ErrorCode::kInvalidArgument,
                 detail::str_cat("unknown CPU feature \"", name, "\" (known: ", known, ")"));
  };
  for (char ch : list) {
    if (ch == ',' || ch == ' ') {
      apply(token);
      token.clear();
    } else {
      token += ch;
    }
  }
  apply(token);
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = probe();
  return f;
}

std::string openblas_corename() {
  using Fn = char* (*)();
  auto fn = reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (!fn) return "";
  const char* name = fn();
  return name ? name : "";
}

OpenBlasAdvice openblas_core_advice(const CpuFeatures& cpu, const std::string& current_core,
                                    const std::string& user_coretype) {
  OpenBlasAdvice a;
  a.core = current_core;
  if (cpu.avx512_core() && cpu.avx512_bf16) {
    a.best = "Cooperlake";
  } else if (cpu.avx512_core()) {
    a.best = "SkylakeX";
  } else if (cpu.avx2 && cpu.fma) {
    a.best = "Haswell";
  } else if (cpu.avx) {
    a.best = "Sandybridge";
  }
  const char* by_gill = std::getenv("GILL_SET_OPENBLAS_CORETYPE");
  if (!user_coretype.empty() && by_gill && user_coretype == by_gill) {
    a.reason = "OPENBLAS_CORETYPE=" + user_coretype + " set by gill at start (OpenBLAS did not name this CPU model)";
  } else if (!user_coretype.empty()) {
    a.reason = "OPENBLAS_CORETYPE=" + user_coretype + " is set by the user: left as it is";
  } else if (current_core.empty()) {
    a.reason = "OpenBLAS is not loaded in this process";
  } else if (a.best.empty() || core_rank(current_core) >= core_rank(a.best)) {
    a.reason = "OpenBLAS runs its " + current_core + " kernels, the best this CPU allows";
  } else {
    a.set_coretype = a.best;
    a.reason = "OpenBLAS fell back to its " + current_core + " kernels on a CPU model it does not name; the CPU has " +
               "the instructions of " + a.best;
  }
  return a;
}

OpenBlasAdvice openblas_core_advice() {
  const char* user = std::getenv("OPENBLAS_CORETYPE");
  return openblas_core_advice(cpu_features(), openblas_corename(), user ? user : "");
}

}  // namespace gill::util
