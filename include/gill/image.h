// gill::Image — an 8-bit RGB image as a plain value (no torch). Row-major, 3 bytes per pixel, no padding.
#pragma once
#include <cstdint>
#include <vector>

namespace gill {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3 bytes, RGB
  bool empty() const { return width == 0 || height == 0; }
};

}  // namespace gill
