// The peers the benchmarks compare against on the same machine (issue 18): the plain-libtorch CLIP tower
// (transformers 4.30's op order on copies of the same weights) and diffusers 0.17.1's figures, read from the JSON
// that ../shared/peers/unet_vae.py writes when run in the same session.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "models/clip_vision.h"

namespace gill::cli::bench {

// The CLIP vision tower in plain libtorch ops on `w` (named as the checkpoint: "vision_model.…"), as transformers
// 4.30's CLIPVisionModel runs it: torch::linear / conv2d / matmul / softmax / layer_norm in the weights' dtype, no
// fusion, no compute policy. Returns the encoder output [B, 1 + P, D] (before post_layernorm).
torch::Tensor plain_clip_forward(const std::map<std::string, torch::Tensor>& w, const models::CLIPVisionConfig& c,
                                 const torch::Tensor& pixels);

// Copies of a module's parameters in `dtype`, by name (the peers' own weights: same values, own memory).
std::map<std::string, torch::Tensor> parameter_copies(torch::nn::Module& m, torch::Dtype dtype);

// diffusers' per-call times on this machine: for the UNet (one guided call, batch 2) and the VAE decode, the
// fastest dtype found in the given results files (unet_fp32 / unet_bf16, vae_decode_fp32 / vae_decode_bf16,
// each "min_s"). Errors (kInvalidArgument) name the file and the missing key.
struct DiffusersPeer {
  double unet_call_s = 0, vae_decode_s = 0;
  std::string unet_dtype, vae_dtype;
  nlohmann::json sources;  // per file: the figures used, the CPU, the diffusers version
};
DiffusersPeer read_diffusers_peer(const std::vector<std::string>& result_files);

}  // namespace gill::cli::bench
