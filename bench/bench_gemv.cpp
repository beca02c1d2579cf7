// gill-bench gemv — one-token (M = 1) matrix-vector products over bf16 weights at OPT-6.7B's decode shapes, in
// anonymous 2 MiB-aligned MADV_HUGEPAGE memory (as io::Residency::kMemory holds them), beside the machine's read
// bandwidth measured in the same run: libtorch's fp32 sum (the floor `gill-bench lm` uses, and the same sum over
// this buffer) and plain AVX2 read loops of our own over the same buffer (one sequential stream per thread, and the
// 8-row tile pattern). Each shape is laid out as many copies as fit the buffer (far more than the caches) and one
// pass calls every copy once, as the decoder's layers do. Variants: the engine's path (kernels::linear_bf16_weight,
// fp32 activations: on AVX2 the row-order kernel at gemv1_avx2_tuning(K), on AVX-512 one row at a time), the same
// with the 8-row tile kernel instead, both again with bf16 activations where the CPU has AVX512-BF16, and the AVX2
// row-order kernel's tunings (rows per tile, unroll, software prefetch, rows spread or adjacent).
//   flock /tmp/cpu.lock gill-bench -t 2 gemv
#include <immintrin.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <torch/torch.h>

#include <ATen/Parallel.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench_cli.h"
#include "bench_common.h"
#include "kernels/gemv_kernels.h"
#include "kernels/linear_bf16.h"
#include "util/cpu.h"
#include "util/error.h"

namespace gill::cli {

namespace {

using kernels::gemv::Gemv1Tuning;

struct BenchGemvOptions {
  int64_t pool_mib = 1536;
  int reps = 3;
  bool sweep = true;
};

// Anonymous memory aligned to 2 MiB with MADV_HUGEPAGE, as io::MappedFile does for Residency::kMemory.
struct HugeBuffer {
  void* base = nullptr;
  size_t len = 0;
  uint8_t* data = nullptr;
  explicit HugeBuffer(size_t bytes) {
    constexpr size_t kHuge = size_t(2) << 20;
    len = (bytes + kHuge - 1) / kHuge * kHuge + kHuge;
    base = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    GILL_CHECK(base != MAP_FAILED, ErrorCode::kIo, "gill-bench gemv: cannot allocate ", bytes, " bytes");
    data = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(base) + kHuge - 1) & ~(kHuge - 1));
    (void)::madvise(data, len - kHuge, MADV_HUGEPAGE);
  }
  ~HugeBuffer() { ::munmap(base, len); }
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;
};

// Random bf16 weights of magnitude ~2^-6..2^-5 (signs random), filled in parallel.
void fill_random_bf16(uint16_t* p, int64_t n) {
  at::parallel_for(0, n, int64_t(1) << 20, [&](int64_t b, int64_t e) {
    uint64_t s = 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(b);
    for (int64_t i = b; i < e; ++i) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      const uint16_t mant = static_cast<uint16_t>(s & 0x7f), sign = static_cast<uint16_t>((s >> 8) & 1);
      p[i] = static_cast<uint16_t>((sign << 15) | ((127 - 6) << 7) | mant);
    }
  });
}

__attribute__((target("avx2"))) uint64_t read_seq(const uint8_t* p, int64_t bytes) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i + 128 <= bytes; i += 128) {
    a0 = _mm256_add_epi32(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi32(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi32(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi32(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i s = _mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3));
  alignas(32) uint32_t v[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(v), s);
  uint64_t t = 0;
  for (uint32_t x : v) t += x;
  return t;
}

// The 8-row tile pattern: rows of `row_bytes`, 8 adjacent rows read side by side, 32 bytes of each per step.
__attribute__((target("avx2"))) uint64_t read_tiles8(const uint8_t* p, int64_t bytes, int64_t row_bytes) {
  __m256i acc[8];
  for (auto& a : acc) a = _mm256_setzero_si256();
  const int64_t tile = 8 * row_bytes;
  for (int64_t t = 0; t + tile <= bytes; t += tile)
    for (int64_t k = 0; k < row_bytes; k += 32)
      for (int r = 0; r < 8; ++r)
        acc[r] = _mm256_add_epi32(acc[r], _mm256_load_si256(reinterpret_cast<const __m256i*>(p + t + r * row_bytes + k)));
  __m256i s = acc[0];
  for (int r = 1; r < 8; ++r) s = _mm256_add_epi32(s, acc[r]);
  alignas(32) uint32_t v[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(v), s);
  uint64_t t = 0;
  for (uint32_t x : v) t += x;
  return t;
}

template <typename Fn>
double best_of(int reps, Fn&& fn) {
  fn();  // warm-up
  return bench::best_seconds(reps, fn);
}

// GB/s of a parallel read over [p, p + bytes), split in contiguous halves (one per thread).
template <typename ReadFn>
double parallel_read_gbs(const uint8_t* p, int64_t bytes, int64_t unit, int reps, ReadFn&& rd) {
  std::atomic<uint64_t> sink{0};
  const int64_t units = bytes / unit;
  const double s = best_of(reps, [&] {
    at::parallel_for(0, units, 1, [&](int64_t b, int64_t e) { sink += rd(p + b * unit, (e - b) * unit); });
  });
  return double(units * unit) / s / 1e9;
}

int run_bench(const BenchGemvOptions& o) {
  c10::InferenceMode guard;
  nlohmann::json j;
  j["threads"] = torch::get_num_threads();
  j["cpu"] = util::cpu_features().describe();
  j["gemv_kernel"] = util::gemv_kernel_name(kernels::default_gemv_kernel());
  const bool avx2 = util::can_run(util::cpu_features(), util::GemvKernel::kAvx2);
  j["read_gbs_torch_sum"] = bench::read_bandwidth_gbs();

  const int64_t pool = o.pool_mib << 20;
  HugeBuffer buf(static_cast<size_t>(pool));
  auto* w16 = reinterpret_cast<uint16_t*>(buf.data);
  fill_random_bf16(w16, pool / 2);
  j["pool_gb"] = double(pool) / 1e9;
  j["pool_anon_huge_pages_gb"] = bench::anon_huge_pages_gb();
  {  // libtorch's sum over this same buffer (random bits read as fp32): the floor's kernel on this memory
    auto t = torch::from_blob(buf.data, {pool / 4}, torch::kFloat32);
    const double s = best_of(o.reps, [&] { (void)t.sum(); });
    j["read_gbs_torch_sum_pool"] = double(pool) / s / 1e9;
  }
  if (avx2) {
    j["read_gbs_own_sequential"] = parallel_read_gbs(buf.data, pool, int64_t(1) << 21, o.reps, read_seq);
    j["read_gbs_own_tiles8_k4096"] = parallel_read_gbs(
        buf.data, pool, 8 * 8192, o.reps, [](const uint8_t* p, int64_t n) { return read_tiles8(p, n, 8192); });
  }
  spdlog::info("read: torch sum {:.1f} GB/s (same buffer {:.1f}), own sequential {:.1f} GB/s, own 8-row tiles {:.1f} GB/s",
               j["read_gbs_torch_sum"].get<double>(), j["read_gbs_torch_sum_pool"].get<double>(),
               j.value("read_gbs_own_sequential", 0.0),
               j.value("read_gbs_own_tiles8_k4096", 0.0));

  std::vector<Gemv1Tuning> tunings;
  if (avx2 && o.sweep) {
    for (int r : {1, 2, 4})
      for (int u : {1, 2, 4}) tunings.push_back({r, u, 0});
    for (int r : {1, 2})
      for (int pf : {256, 512, 1024}) tunings.push_back({r, 2, pf});
    for (int r : {2, 4})
      for (int u : {1, 2}) tunings.push_back({r, u, 0, true});
  }

  // OPT-6.7B's decode shapes [N, K] and how often each runs per token.
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes{
      {4096, 4096, 4 * 32}, {16384, 4096, 32}, {4096, 16384, 32}, {50272, 4096, 1}};
  nlohmann::json js = nlohmann::json::array();
  double token_engine = 0, token_tiles8 = 0, token_bytes = 0, token_engine_bf16x = 0, token_tiles8_bf16x = 0;
  const bool bf16x = kernels::default_gemv_kernel() == util::GemvKernel::kAvx512Bf16;
  for (const auto& shape : shapes) {
    // Plain locals, not a structured binding: the lambdas below capture them (C++17 forbids capturing bindings).
    const int64_t N = std::get<0>(shape), K = std::get<1>(shape), per_token = std::get<2>(shape);
    const int64_t mat_bytes = N * K * 2;
    const int64_t copies = std::max<int64_t>(1, pool / mat_bytes);
    GILL_CHECK(copies * mat_bytes <= pool, ErrorCode::kInvalidArgument, "gill-bench gemv: --pool-mib ", o.pool_mib,
               " is smaller than one [", N, ", ", K, "] bf16 matrix");
    std::vector<torch::Tensor> ws;
    for (int64_t c = 0; c < copies; ++c)
      ws.push_back(torch::from_blob(w16 + c * N * K, {N, K}, torch::kBFloat16));
    auto x = torch::randn({1, K});
    const double pass_bytes = double(copies * mat_bytes);
    nlohmann::json r{{"shape", {N, K}}, {"copies", copies}, {"pass_gb", pass_bytes / 1e9}};
    auto time_engine = [&](const torch::Tensor& xin) {
      return best_of(o.reps, [&] {
        for (auto& w : ws) kernels::linear_bf16_weight(xin, w, {});
      });
    };
    const double t_engine = time_engine(x);
    auto y_ref = torch::nn::functional::linear(x, ws[0].to(torch::kFloat32));
    r["engine_gbs"] = pass_bytes / t_engine / 1e9;
    r["engine_us_per_call"] = t_engine / copies * 1e6;
    token_engine += t_engine / copies * per_token;
    token_bytes += double(mat_bytes) * per_token;
    auto rel = [&](const torch::Tensor& y) {
      return ((y - y_ref).abs().max() / y_ref.abs().max()).item<double>();
    };
    r["engine_max_rel_diff"] = rel(kernels::linear_bf16_weight(x, ws[0], {}));
    if (avx2) {  // the engine's one-token kernel is the row-order one (AVX2, AVX-512); the 8-row tiles beside it
      kernels::use_row_order_gemv(false);
      const double t = time_engine(x);
      r["tiles8_engine_gbs"] = pass_bytes / t / 1e9;
      r["tiles8_engine_max_rel_diff"] = rel(kernels::linear_bf16_weight(x, ws[0], {}));
      kernels::use_row_order_gemv(true);
      token_tiles8 += t / copies * per_token;
    }
    if (bf16x) {  // bf16 activations (the bf16 compute policy's decode): vdpbf16ps, row order and 8-row tiles
      auto xb = x.to(torch::kBFloat16);
      auto y_refb = torch::nn::functional::linear(xb.to(torch::kFloat32), ws[0].to(torch::kFloat32));
      auto relb = [&](const torch::Tensor& y) {
        return ((y.to(torch::kFloat32) - y_refb).abs().max() / y_refb.abs().max()).item<double>();
      };
      const double tb = time_engine(xb);
      r["engine_bf16x_gbs"] = pass_bytes / tb / 1e9;
      r["engine_bf16x_max_rel_diff"] = relb(kernels::linear_bf16_weight(xb, ws[0], {}));
      token_engine_bf16x += tb / copies * per_token;
      kernels::use_row_order_gemv(false);
      const double t8 = time_engine(xb);
      r["tiles8_engine_bf16x_gbs"] = pass_bytes / t8 / 1e9;
      kernels::use_row_order_gemv(true);
      token_tiles8_bf16x += t8 / copies * per_token;
    }
    nlohmann::json jv = nlohmann::json::array();
    std::vector<float> xs(static_cast<size_t>(K));
    auto y = torch::empty({1, N});
    for (const auto& tu : tunings) {
      auto call = [&](const torch::Tensor& w) {
        kernels::gemv::split_x_avx2(x.data_ptr<float>(), K, xs.data());
        kernels::gemv::GemvArgs a{x.data_ptr<float>(), K, 1, reinterpret_cast<const uint16_t*>(w.data_ptr()), K,
                                  y.data_ptr<float>(), N, nullptr};
        at::parallel_for(0, N, 64, [&](int64_t b, int64_t e) { kernels::gemv::gemv1_avx2(a, xs.data(), b, e, tu); });
      };
      const double t = best_of(o.reps, [&] {
        for (auto& w : ws) call(w);
      });
      call(ws[0]);
      jv.push_back({{"rows", tu.rows}, {"unroll", tu.unroll}, {"prefetch", tu.prefetch}, {"spread", tu.spread},
                    {"gbs", pass_bytes / t / 1e9}, {"max_rel_diff", rel(y)}});
    }
    r["row_order_tunings"] = jv;
    spdlog::info("[{}, {}]: engine {:.1f} GB/s, 8-row tile kernel {:.1f} GB/s; bf16 activations {:.1f} / {:.1f} GB/s",
                 N, K, r["engine_gbs"].get<double>(), r.value("tiles8_engine_gbs", 0.0),
                 r.value("engine_bf16x_gbs", 0.0), r.value("tiles8_engine_bf16x_gbs", 0.0));
    js.push_back(r);
  }
  j["shapes"] = js;
  // One OPT-6.7B decode token's GEMVs at these speeds (q, k, v, out, fc1, fc2 per layer, lm_head).
  j["opt6.7b_token_gemv_gb"] = token_bytes / 1e9;
  j["opt6.7b_token_gemv_s_engine"] = token_engine;
  if (avx2) j["opt6.7b_token_gemv_s_tiles8"] = token_tiles8;
  if (bf16x) {
    j["opt6.7b_token_gemv_s_engine_bf16x"] = token_engine_bf16x;
    j["opt6.7b_token_gemv_s_tiles8_bf16x"] = token_tiles8_bf16x;
  }
  j["opt6.7b_token_floor_s_torch_sum"] = token_bytes / (j["read_gbs_torch_sum"].get<double>() * 1e9);
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace

void register_bench_gemv(CLI::App& bench, Context& ctx) {
  auto* sub = bench.add_subcommand("gemv", "One-token bf16 GEMV at OPT-6.7B's shapes vs the read bandwidth, same run");
  auto o = std::make_shared<BenchGemvOptions>();
  sub->add_option("--pool-mib", o->pool_mib, "Huge-page buffer the matrices are laid out in (MiB)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(512), int64_t(1) << 16));
  sub->add_option("--reps", o->reps, "Timed passes per variant (best kept)")->capture_default_str()->check(CLI::Range(1, 100));
  sub->add_flag("!--no-sweep", o->sweep, "Skip the row-order kernel's tuning sweep");
  sub->callback([&ctx, o] { ctx.action = [o] { return run_bench(*o); }; });
}

}  // namespace gill::cli
