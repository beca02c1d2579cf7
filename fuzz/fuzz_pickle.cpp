// libFuzzer target: the restricted unpickler on raw bytes, then everything a caller does with its result
// (flatten into named leaves, repr() for messages, numpy arrays to tensors). Seeds: the data.pkl of every torch
// file and the pickled .npy files in tests/data (tools/fuzz.sh extracts them).
#include <gill/error.h>

#include "fuzz_common.h"
#include "io/npy.h"
#include "io/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace pk = gill::io::pickle;
  try {
    const pk::ValuePtr v = pk::unpickle(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.pkl");
    (void)v->repr();
    std::vector<std::pair<std::string, pk::ValuePtr>> leaves;
    pk::flatten(v, "", leaves);
    for (const auto& [name, x] : leaves) {
      (void)x->repr();
      if (x->kind == pk::Kind::kNdArray) {
        try {
          auto t = gill::io::ndarray_to_tensor(*x, name);
          if (t.numel() <= gill::fuzz::kMaxTouchElements && t.is_floating_point()) (void)t.sum().item<double>();
        } catch (const gill::Error&) {
        }
      }
    }
  } catch (const gill::Error&) {
  }
  return 0;
}
