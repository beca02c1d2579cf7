// torch zip-pickle reader: implemented by the restricted unpickler (issue: Foundation). Until it lands this
// format is reported as unsupported with the file name.
#include "io/tensor_source.h"
#include "util/error.h"

namespace gill::io {

std::unique_ptr<TensorSource> open_torch_pickle(const std::filesystem::path& file) {
  detail::fail(ErrorCode::kUnsupported, file.string() + ": torch zip-pickle files are not readable in this build yet");
}

}  // namespace gill::io
