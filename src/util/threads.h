// Thread settings for libtorch (intra-op) and the environment OpenMP needs on small machines.
#pragma once

namespace gill {

// Number of physical cores (falls back to logical CPUs).
int default_thread_count();
// Sets libtorch's intra-op thread count (n <= 0: default_thread_count()). Returns the count set.
int set_threads(int n);

// Whether gill's own code was built with OpenMP (GCC builds: libtorch's runtime, see CMakeLists.txt). Without it,
// every at::parallel_for in gill's code (the GEMV kernels, the blocked widening) runs on the calling thread.
bool built_with_openmp();
// How many distinct threads one of gill's own parallel loops runs on with libtorch given n threads (n <= 0: the
// count it has now); libtorch's count is restored.
int parallel_loop_threads(int n = 0);

}  // namespace gill
