// libFuzzer target: CLIP preprocessing (Pillow resampler, crop with padding, normalise) on arbitrary image sizes,
// scales, filters and pixels. Any input must either succeed or throw gill::Error; nothing else (no crash, no
// sanitizer report, no other exception); a window of a resize must equal that crop of the full resize.
// Run: tools/fuzz.sh clip_preprocess SECONDS.
#include <gill/error.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "models/clip_image_processor.h"
#include "models/pil_resize_window.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 7) return 0;
  gill::Image img;
  img.width = data[0] % 97;  // 0 exercises the empty-image error
  img.height = data[1] % 97;
  gill::models::CLIPImageProcessorConfig cfg;
  cfg.size = 1 + data[2] % 80;
  cfg.crop_height = 1 + data[3] % 80;
  cfg.crop_width = 1 + data[4] % 80;
  cfg.resample = data[5] % 6;  // 0 (NEAREST) must be refused cleanly
  cfg.do_center_crop = data[6] & 1;
  cfg.do_resize = (data[6] & 2) == 0;
  const size_t n = static_cast<size_t>(img.width) * img.height * 3;
  img.pixels.resize(n);
  for (size_t i = 0; i < n; ++i) img.pixels[i] = size > 7 ? data[7 + i % (size - 7)] : 0;
  if (data[6] & 4 && !img.pixels.empty()) img.pixels.pop_back();  // wrong buffer size must be refused
  try {
    auto t = gill::models::clip_preprocess(img, cfg);
    (void)t;
    const int nw = 1 + data[2] % 70, nh = 1 + data[3] % 70;
    const auto filter = static_cast<gill::models::PilFilter>(cfg.resample);
    const auto r = gill::models::pil_resize(img, nw, nh, filter);
    // Oracle: a window of the resize is that crop of the full resize, bit for bit.
    const int w = 1 + data[4] % nw, h = 1 + data[5] % nh;
    const int x0 = (data[2] / 70 + data[4]) % (nw - w + 1), y0 = (data[3] / 70 + data[5]) % (nh - h + 1);
    const auto win = gill::models::pil_resize_window(img, nw, nh, filter, x0, y0, w, h);
    if (win.width != w || win.height != h) std::abort();
    for (int y = 0; y < h; ++y)
      if (std::memcmp(win.pixels.data() + static_cast<size_t>(y) * w * 3,
                      r.pixels.data() + (static_cast<size_t>(y0 + y) * nw + x0) * 3, static_cast<size_t>(w) * 3))
        std::abort();
  } catch (const gill::Error&) {
  }
  return 0;
}
