#include "models/decision_head.h"

namespace gill::models {

DecisionHeadImpl::DecisionHeadImpl(int64_t in_dim, const ModuleOptions& opt) {
  linear = register_module("1", Linear(in_dim, 2, true, opt));
}

torch::Tensor DecisionHeadImpl::forward(const torch::Tensor& x) {
  return linear(x);
}

io::LoadSpec decision_load_spec() {
  io::LoadSpec spec;
  spec.prefixes = {"", "state_dict.", "module."};
  return spec;
}

}  // namespace gill::models
