#include "util/threads.h"

#include <unistd.h>

#include <fstream>
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

}  // namespace gill
