// Measurements shared by the `gill-bench ...` subcommands: the machine's own limits, memory and timing helpers.
// Every benchmark reports its figures as ratios against limits measured in the same run.
#pragma once
#include <chrono>
#include <string>

namespace gill::cli::bench {

// Sustained GEMM throughput of libtorch on this machine: an n x n x n matmul in `dtype` ("bf16" or "fp32"),
// best of a few repetitions, in GFLOP/s.
double gemm_gflops(const std::string& dtype, int n = 4096);
// STREAM-style read bandwidth over a buffer of `bytes` (default 2 GiB, far larger than the caches), in GB/s,
// using all libtorch threads (a sum reduction over fp32).
double read_bandwidth_gbs(size_t bytes = size_t(2) << 30);
// Peak resident set size of this process so far (VmHWM), in GB (1e9 bytes).
double peak_rss_gb();
// Current resident set size (VmRSS), in GB.
double current_rss_gb();
// Anonymous resident memory (RssAnon), in GB: what a copy costs; file-backed pages of a mapping are not counted.
double rss_anon_gb();
// Anonymous memory of this process backed by transparent huge pages (smaps_rollup AnonHugePages), in GB.
double anon_huge_pages_gb();
// Drops this file's pages from the page cache (posix_fadvise DONTNEED) for cold-load measurements.
void drop_file_cache(const std::string& path);

class Timer {
 public:
  Timer() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// Seconds of the fastest of `reps` calls of fn() (no warm-up: the caller makes one where it matters).
template <typename Fn>
double best_seconds(long long reps, Fn&& fn) {
  double best = 1e30;
  for (long long i = 0; i < reps; ++i) {
    Timer t;
    fn();
    const double s = t.seconds();
    if (s < best) best = s;
  }
  return best;
}

}  // namespace gill::cli::bench
