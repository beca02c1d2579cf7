#include "util/threads.h"

#include <unistd.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <torch/torch.h>

namespace gill {

int default_thread_count() {
  // Count distinct (physical id, core id) pairs in /proc/cpuinfo.
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<int, int>> cores;
  std::string line;
  int phys = 0;
  while (std::getline(in, line)) {
    if (line.rfind("physical id", 0) == 0) phys = std::stoi(line.substr(line.find(':') + 1));
    if (line.rfind("core id", 0) == 0) cores.emplace(phys, std::stoi(line.substr(line.find(':') + 1)));
  }
  int n = static_cast<int>(cores.size());
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  return n > 0 ? n : 1;
}

int set_threads(int n) {
  if (n <= 0) n = default_thread_count();
  torch::set_num_threads(n);
  return n;
}

bool built_with_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

int parallel_loop_threads(int n_threads) {
  const int saved = at::get_num_threads();
  if (n_threads > 0) at::set_num_threads(n_threads);
  std::mutex mu;
  std::set<std::thread::id> ids;
  const int64_t n = 64 * static_cast<int64_t>(std::max(1, at::get_num_threads()));
  at::parallel_for(0, n, 1, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(std::this_thread::get_id());
  });
  if (n_threads > 0) at::set_num_threads(saved);
  return static_cast<int>(ids.size());
}

}  // namespace gill
