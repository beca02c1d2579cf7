// libFuzzer target: image decoding (stb_image with PIL's convert("RGB") rules) and the CLIP preprocessing GILL
// runs on every prompt image (resize, centre crop, normalise to [3, 224, 224]). Images whose header claims more
// than 2^16 pixels (256x256) are only decoded as far as the header check (the 100 MP limit itself is a unit
// test): under ASan a fuzzer would otherwise spend its time inflating and resampling large all-zero images
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
    const auto t = gill::models::clip_preprocess(img, gill::models::CLIPImageProcessorConfig{});
    if (t.size(-1) != 224 || t.size(-2) != 224 || !t.isfinite().all().item<bool>()) std::abort();
  } catch (const gill::Error&) {
  }
  return 0;
}
