#include "io/tensor_dump.h"

#include "util/error.h"

namespace gill::io {

void TensorDump::add(const std::string& name, const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU).contiguous().clone();
  for (auto& [n, v] : tensors_)
    if (n == name) {
      v = c;
      return;
    }
  tensors_.emplace_back(name, c);
}

bool TensorDump::has(const std::string& name) const {
  for (auto& [n, v] : tensors_)
    if (n == name) return true;
  return false;
}

torch::Tensor TensorDump::get(const std::string& name) const {
  for (auto& [n, v] : tensors_)
    if (n == name) return v;
  detail::fail(ErrorCode::kNotFound, detail::str_cat("tensor dump has no '", name, "'"));
}

}  // namespace gill::io
