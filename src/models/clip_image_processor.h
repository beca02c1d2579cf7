// CLIP image preprocessing, exactly as transformers 4.30.2's CLIPImageProcessor (CLIPFeatureExtractor) with
// Pillow 9.4: shortest side -> `size` with PIL's resampling filter, centre crop, rescale, normalise.
// Ref: transformers v4.30.2 models/clip/image_processing_clip.py, image_transforms.py (resize, center_crop,
// rescale, normalize); Pillow 9.4.0 src/libImaging/Resample.c (precompute_coeffs, ImagingResampleInner).
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include <gill/image.h>

namespace gill::models {

// Pillow's filter ids (PIL.Image.Resampling). NEAREST is not a convolution and is not supported here.
enum class PilFilter { kNearest = 0, kLanczos = 1, kBilinear = 2, kBicubic = 3, kBox = 4, kHamming = 5 };

struct CLIPImageProcessorConfig {
  // Fields as preprocessor_config.json names them. `size` is {"shortest_edge": N} (or a bare N, as in
  // openai/clip-vit-large-patch14); `crop_size` is {"height", "width"} (or a bare N).
  int size = 224;  // shortest_edge
  int crop_height = 224, crop_width = 224;
  bool do_resize = true;
  bool do_center_crop = true;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  bool do_convert_rgb = true;  // gill::Image is always RGB already
  std::vector<double> image_mean{0.48145466, 0.4578275, 0.40821073};
  std::vector<double> image_std{0.26862954, 0.26130258, 0.27577711};
  int resample = 3;  // PIL.Image.BICUBIC

  // `where` names the source in error messages.
  static CLIPImageProcessorConfig from_json(const nlohmann::json& j,
                                            const std::string& where = "preprocessor_config.json");
  static CLIPImageProcessorConfig from_file(const std::filesystem::path& path);
};

// Resampled copy of `img` to new_w x new_h with Pillow 9.4's convolution resampler (8 bits per channel, 22-bit
// fixed-point coefficients, horizontal pass first over the rows the vertical pass needs). Bit-exact with
// PIL.Image.resize((new_w, new_h), resample=filter) on an RGB image.
gill::Image pil_resize(const gill::Image& img, int new_w, int new_h, PilFilter filter);
inline gill::Image pil_resize_bicubic(const gill::Image& img, int new_w, int new_h) {
  return pil_resize(img, new_w, new_h, PilFilter::kBicubic);
}

// The reference's output size for a shortest-edge resize: (height, width), the long side computed as
// int(size * long / short) in float64 and truncated.
std::pair<int, int> clip_resize_output_size(int height, int width, int shortest_edge);

// Steps 3-7 of gill-spec 4.2 on an RGB image: [3, H, W] float32 (H = W = crop size with the defaults).
torch::Tensor clip_preprocess(const gill::Image& img, const CLIPImageProcessorConfig& cfg);
// A batch: [N, 3, H, W] float32. All images must give the same output size (they do when cropping).
torch::Tensor clip_preprocess_batch(const std::vector<gill::Image>& images, const CLIPImageProcessorConfig& cfg);

// A gill::Image from a [H, W, 3] uint8 tensor (e.g. the fixtures' `inputs.*.rgb_uint8`), and back.
gill::Image image_from_hwc_uint8(const torch::Tensor& hwc);
torch::Tensor image_to_hwc_uint8(const gill::Image& img);

}  // namespace gill::models
