// Writing torch.save-compatible zip-pickle files through libtorch's own pickler (torch::pickle_save), so that
// Python's torch.load reads them. Atomic (temp + rename).
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "io/safetensors.h"  // NamedTensors

namespace gill::io {

// Any IValue (dicts of str -> tensors/ints/floats/strings, nested).
void write_torch_pickle(const std::filesystem::path& path, const c10::IValue& value);

// {top_key: {name: tensor, ...}} (GILL's layout: top_key = "state_dict"), tensors stored as given (dtype kept,
// moved to the CPU, made contiguous). An empty top_key writes the flat dict {name: tensor}.
void write_torch_state_dict(const std::filesystem::path& path, const NamedTensors& tensors,
                            const std::string& top_key = "state_dict");

}  // namespace gill::io
