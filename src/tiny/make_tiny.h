// Helpers for tiny component writers: seeded random tensors and JSON files written atomically.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <string>

namespace gill::tiny {

// A generator seeded from (seed, component name): deterministic and independent per component.
torch::Generator tiny_generator(uint64_t seed, const std::string& component);
// N(0, std) values, generated in fp32 then cast to `dtype`.
torch::Tensor tiny_randn(torch::Generator& gen, at::IntArrayRef shape, double std = 0.02,
                         torch::Dtype dtype = torch::kFloat32);
// Pretty JSON (4-space indent like the reference's json.dump(indent=4)), written atomically.
void write_json(const std::filesystem::path& path, const nlohmann::json& j, int indent = 4);

}  // namespace gill::tiny
