// Thread settings for libtorch (intra-op) and the environment OpenMP needs on small machines.
#pragma once

namespace gill {

// Number of physical cores (falls back to logical CPUs).
int default_thread_count();
// Sets libtorch's intra-op thread count (n <= 0: default_thread_count()). Returns the count set.
int set_threads(int n);

}  // namespace gill
