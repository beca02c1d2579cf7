// Part of a Pillow resize (kept out of clip_image_processor.h, which much of the engine includes).
#pragma once
#include "models/clip_image_processor.h"

namespace gill::models {

// The window [x0, x0 + w) x [y0, y0 + h) of pil_resize(img, new_w, new_h, filter), computed without the rest:
// every output pixel depends only on its own coefficients, so the window equals that crop of the full result bit
// for bit, at the window's cost in time and memory. clip_preprocess resizes only what its centre crop keeps.
gill::Image pil_resize_window(const gill::Image& img, int new_w, int new_h, PilFilter filter, int x0, int y0, int w,
                              int h);

}  // namespace gill::models
