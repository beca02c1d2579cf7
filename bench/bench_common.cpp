#include "bench_common.h"

#include <fcntl.h>
#include <torch/torch.h>
#include <unistd.h>

#include <fstream>

#include "io/tensor_source.h"

namespace gill::cli::bench {

double gemm_gflops(const std::string& dtype, int n) {
  torch::InferenceMode guard;
  const auto dt = io::parse_torch_dtype(dtype);
  auto a = torch::randn({n, n}).to(dt);
  auto b = torch::randn({n, n}).to(dt);
  auto c = torch::matmul(a, b);  // warm-up
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    Timer t;
    c = torch::matmul(a, b);
    best = std::min(best, t.seconds());
  }
  return 2.0 * n * n * double(n) / best / 1e9;
}

double read_bandwidth_gbs(size_t bytes) {
  torch::InferenceMode guard;
  auto buf = torch::ones({int64_t(bytes / 4)}, torch::kFloat32);
  auto s = buf.sum();  // warm-up (pages touched)
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    Timer t;
    s = buf.sum();
    best = std::min(best, t.seconds());
  }
  (void)s.item<float>();
  return double(bytes) / best / 1e9;
}

// A "Name:   N kB" field of a /proc file, in GB (0 when absent).
static double proc_kb_field_gb(const char* file, const std::string& field) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(field.size())) * 1024.0 / 1e9;
  return 0.0;
}

double peak_rss_gb() { return proc_kb_field_gb("/proc/self/status", "VmHWM:"); }
double current_rss_gb() { return proc_kb_field_gb("/proc/self/status", "VmRSS:"); }
double rss_anon_gb() { return proc_kb_field_gb("/proc/self/status", "RssAnon:"); }
double anon_huge_pages_gb() { return proc_kb_field_gb("/proc/self/smaps_rollup", "AnonHugePages:"); }

void drop_file_cache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

}  // namespace gill::cli::bench
