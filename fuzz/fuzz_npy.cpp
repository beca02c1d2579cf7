// libFuzzer target: .npy files (NUMPY magic, v1/v2/v3 headers, dtype descr, shape, Fortran order) and the pickled
// retrieval index (cc3m_embeddings_urls.npy: a pickle of {'paths', 'embeddings'}). Seeds: the .npy files in
// tests/data.
#include <gill/error.h>

#include "fuzz_common.h"
#include "io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = gill::fuzz::write_input("input.npy", data, size);
  try {
    if (gill::io::is_npy_file(path)) {
      (void)gill::io::read_npy_header(path);
      auto t = gill::io::load_npy(path);
      if (t.numel() <= gill::fuzz::kMaxTouchElements && t.is_floating_point()) (void)t.sum().item<double>();
    } else {
      auto e = gill::io::load_retrieval_embeddings(path);
      if (e.embeddings.defined() && e.embeddings.size(0) != static_cast<int64_t>(e.paths.size())) std::abort();
    }
  } catch (const gill::Error&) {
  }
  return 0;
}
