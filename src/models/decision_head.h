// GILL's decision head (decision_model.pth.tar): generate or retrieve for an [IMG] block.
// Ref: kohjingyu/gill @4600b71 gill/models.py (GILL.__init__: the decision model).
#pragma once
#include <torch/torch.h>

#include <cstdint>

#include "io/loader.h"
#include "models/layers.h"

namespace gill::models {

// decision_model.pth.tar: nn.Sequential(Dropout(0.5), Linear(D, 2)); class 0 = generate, 1 = retrieve.
class DecisionHeadImpl : public torch::nn::Module {
 public:
  DecisionHeadImpl(int64_t in_dim, const ModuleOptions& opt);
  torch::Tensor forward(const torch::Tensor& x);  // [B, D] -> [B, 2] (dropout is the identity at inference)
  Linear linear{nullptr};                         // ckpt: 1
};
TORCH_MODULE(DecisionHead);

// The load table of decision_model.pth.tar (gill-spec §6.3).
io::LoadSpec decision_load_spec();

}  // namespace gill::models
