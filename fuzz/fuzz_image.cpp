// libFuzzer target: image decoding (stb_image with PIL's convert("RGB") rules) and the CLIP preprocessing GILL
// runs on every prompt image (resize, centre crop, normalise; at a 32-pixel size, see below). Images whose header
// claims more than 2^16 pixels (256x256) are only decoded as far as the header check (the 100 MP limit itself is a
// unit test): under ASan a fuzzer would otherwise spend its time inflating and resampling large all-zero images
// (17 executions/s with a 512x512 cap). Seeds: the image files in tests/data.
#include <gill/error.h>
#include <stb_image.h>

#include <cmath>

#include "fuzz_common.h"
#include "io/image.h"
#include "models/clip_image_processor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int w = 0, h = 0, c = 0;
  if (size > 0 && size < (1u << 30) && stbi_info_from_memory(data, static_cast<int>(size), &w, &h, &c) &&
      static_cast<int64_t>(w) * h > (int64_t(1) << 16))
    return 0;
  try {
    const gill::Image img = gill::io::load_image_from_memory(data, size, "fuzz-image");
    if (img.width <= 0 || img.height <= 0 || img.pixels.size() != static_cast<size_t>(img.width) * img.height * 3)
      std::abort();
    // CLIP's preprocessing at a 32-pixel size and crop: the same code as at 224 (fuzz_clip_preprocess varies the
    // sizes), without spending 10 ms of every run resampling and normalising 224x224 pixels under ASan.
    gill::models::CLIPImageProcessorConfig cfg;
    cfg.size = cfg.crop_height = cfg.crop_width = 32;
    const auto t = gill::models::clip_preprocess(img, cfg);
    if (t.size(-1) != 32 || t.size(-2) != 32 || !t.isfinite().all().item<bool>()) std::abort();
  } catch (const gill::Error&) {
  }
  return 0;
}
