// CLIP preprocessing and Pillow's convolution resampler, written from the algorithm in gill-spec 4.2.
// Ref: Pillow 9.4.0 src/libImaging/Resample.c; transformers v4.30.2 image_processing_clip.py, image_transforms.py.
#include "models/clip_image_processor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "models/pil_resize_window.h"
#include "util/error.h"
#include "util/json.h"

// The filters and the coefficient arithmetic must round exactly as Pillow's C code does (no fused multiply-add).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace gill::models {
namespace {

using detail::str_cat;
using nlohmann::json;

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow: PRECISION_BITS
// Largest output (or intermediate) image pil_resize will allocate: 2^28 pixels (768 MiB of RGB).
constexpr int64_t kMaxResizePixels = int64_t(1) << 28;

// Pillow's filters (Resample.c): kernel and support at scale 1.
double box_filter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }
double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}
double hamming_filter(double x) {
  if (x < 0.0) x = -x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * M_PI;
  return std::sin(x) / x * (0.54 + 0.46 * std::cos(x));
}
double bicubic_filter(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
double sinc_filter(double x) {
  if (x == 0.0) return 1.0;
  x = x * M_PI;
  return std::sin(x) / x;
}
double lanczos_filter(double x) {
  if (-3.0 <= x && x < 3.0) return sinc_filter(x) * sinc_filter(x / 3);
  return 0.0;
}

struct Filter {
  double (*fn)(double);
  double support;
};

Filter filter_for(PilFilter f) {
  switch (f) {
    case PilFilter::kBox: return {box_filter, 0.5};
    case PilFilter::kBilinear: return {bilinear_filter, 1.0};
    case PilFilter::kHamming: return {hamming_filter, 1.0};
    case PilFilter::kBicubic: return {bicubic_filter, 2.0};
    case PilFilter::kLanczos: return {lanczos_filter, 3.0};
    case PilFilter::kNearest: break;
  }
  detail::fail(ErrorCode::kUnsupported, str_cat("resampling filter ", static_cast<int>(f),
                                                 " (NEAREST) is not supported; use BICUBIC (3)"));
}

// One axis: for each output index, the first input index, the tap count and ksize fixed-point weights.
struct Coeffs {
  int ksize = 0;
  std::vector<int> xmin, count;
  std::vector<int32_t> k;  // [out_size * ksize]
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc over the box [in0, in1) of an input of in_size, for the n
// output indices first .. first + n - 1 of an output of out_size (entry i is output index first + i).
Coeffs precompute_coeffs(int in_size, float in0, float in1, int out_size, const Filter& filter, int first, int n) {
  double scale = static_cast<double>(in1 - in0) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = filter.support * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.xmin.resize(n);
  c.count.resize(n);
  c.k.assign(static_cast<size_t>(n) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int i = 0; i < n; ++i) {
    const int xx = first + i;
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = filter.fn((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    int32_t* k = &c.k[static_cast<size_t>(i) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      // Fixed point, rounded half away from zero (normalize_coeffs_8bpc).
      k[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                   : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    c.xmin[i] = xmin;
    c.count[i] = xmax;
  }
  return c;
}

inline uint8_t clip8(int64_t acc) {
  const int64_t v = acc >> kPrecisionBits;  // arithmetic shift, as Pillow's int
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

void check_image(const gill::Image& img, const char* what) {
  GILL_CHECK(img.width > 0 && img.height > 0, ErrorCode::kInvalidArgument, what, ": empty image (", img.width, "x",
             img.height, ")");
  const size_t expected = static_cast<size_t>(img.width) * static_cast<size_t>(img.height) * 3;
  GILL_CHECK(img.pixels.size() == expected, ErrorCode::kInvalidArgument, what, ": image of ", img.width, "x",
             img.height, " has ", img.pixels.size(), " bytes, expected ", expected, " (RGB8)");
}

int json_int(const json& j, const char* key, const std::string& where) {
  return util::read_value<int>(j, key, where);
}

}  // namespace

gill::Image pil_resize_window(const gill::Image& img, int new_w, int new_h, PilFilter filter, int x0, int y0, int w,
                              int h) {
  check_image(img, "pil_resize");
  GILL_CHECK(new_w > 0 && new_h > 0, ErrorCode::kInvalidArgument, "pil_resize: height and width must be > 0 (got ",
             new_w, "x", new_h, ")");
  GILL_CHECK(x0 >= 0 && y0 >= 0 && w > 0 && h > 0 && x0 <= new_w - w && y0 <= new_h - h, ErrorCode::kInvalidArgument,
             "pil_resize: window ", w, "x", h, " at (", x0, ", ", y0, ") is not inside the ", new_w, "x", new_h,
             " output");
  // What is allocated: the window and the intermediate (the window's columns over the input rows it needs).
  GILL_CHECK(int64_t(w) * h <= kMaxResizePixels && int64_t(w) * img.height <= kMaxResizePixels,
             ErrorCode::kInvalidArgument, "pil_resize: ", img.width, "x", img.height, " -> ", new_w, "x", new_h,
             " exceeds the limit of ", kMaxResizePixels, " pixels");
  const bool need_horizontal = new_w != img.width;
  const bool need_vertical = new_h != img.height;
  gill::Image out;
  out.width = w;
  out.height = h;
  out.pixels.resize(static_cast<size_t>(w) * h * 3);
  if (!need_horizontal && !need_vertical) {  // PIL: same size and full box -> a copy (ImagingCopy)
    for (int y = 0; y < h; ++y)
      std::memcpy(out.pixels.data() + static_cast<size_t>(y) * w * 3,
                  img.pixels.data() + (static_cast<size_t>(y0 + y) * img.width + x0) * 3, static_cast<size_t>(w) * 3);
    return out;
  }
  const Filter f = filter_for(filter);

  // Input rows the vertical pass reads for output rows [y0, y0 + h): all of [y0, y0 + h) when there is none.
  Coeffs cv;
  int ybox_first = y0, ybox_last = y0 + h;
  if (need_vertical) {
    cv = precompute_coeffs(img.height, 0.f, static_cast<float>(img.height), new_h, f, y0, h);
    ybox_first = cv.xmin[0];
    ybox_last = cv.xmin[h - 1] + cv.count[h - 1];
  }

  // Horizontal pass over rows [ybox_first, ybox_last) and output columns [x0, x0 + w) into a uint8 intermediate
  // (ImagingResampleHorizontal_8bpc). Without one, the vertical pass reads the input's columns [x0, x0 + w).
  const uint8_t* src = img.pixels.data() + static_cast<size_t>(x0) * 3;
  size_t stride = static_cast<size_t>(img.width) * 3;
  int row0 = 0;  // input row of src's row 0
  std::vector<uint8_t> temp;
  if (need_horizontal) {
    const Coeffs ch = precompute_coeffs(img.width, 0.f, static_cast<float>(img.width), new_w, f, x0, w);
    const int rows = ybox_last - ybox_first;
    uint8_t* dst = need_vertical ? (temp.resize(static_cast<size_t>(rows) * w * 3), temp.data()) : out.pixels.data();
    for (int yy = 0; yy < rows; ++yy) {
      const uint8_t* in_row = img.pixels.data() + static_cast<size_t>(yy + ybox_first) * img.width * 3;
      uint8_t* out_row = dst + static_cast<size_t>(yy) * w * 3;
      for (int xx = 0; xx < w; ++xx) {
        const int32_t* k = &ch.k[static_cast<size_t>(xx) * ch.ksize];
        const uint8_t* p = in_row + static_cast<size_t>(ch.xmin[xx]) * 3;
        int64_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
        for (int x = 0; x < ch.count[xx]; ++x) {
          s0 += int64_t(p[3 * x + 0]) * k[x];
          s1 += int64_t(p[3 * x + 1]) * k[x];
          s2 += int64_t(p[3 * x + 2]) * k[x];
        }
        out_row[3 * xx + 0] = clip8(s0);
        out_row[3 * xx + 1] = clip8(s1);
        out_row[3 * xx + 2] = clip8(s2);
      }
    }
    if (!need_vertical) return out;  // only the horizontal pass ran
    src = temp.data();
    stride = static_cast<size_t>(w) * 3;
    row0 = ybox_first;
  }

  for (int yy = 0; yy < h; ++yy) {
    const int32_t* k = &cv.k[static_cast<size_t>(yy) * cv.ksize];
    const uint8_t* col0 = src + static_cast<size_t>(cv.xmin[yy] - row0) * stride;
    uint8_t* out_row = out.pixels.data() + static_cast<size_t>(yy) * w * 3;
    for (size_t i = 0; i < static_cast<size_t>(w) * 3; ++i) {
      int64_t s = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < cv.count[yy]; ++y) s += int64_t(col0[y * stride + i]) * k[y];
      out_row[i] = clip8(s);
    }
  }
  return out;
}

gill::Image pil_resize(const gill::Image& img, int new_w, int new_h, PilFilter filter) {
  check_image(img, "pil_resize");
  GILL_CHECK(new_w > 0 && new_h > 0, ErrorCode::kInvalidArgument, "pil_resize: height and width must be > 0 (got ",
             new_w, "x", new_h, ")");
  if (new_w == img.width && new_h == img.height) return img;
  return pil_resize_window(img, new_w, new_h, filter, 0, 0, new_w, new_h);
}

std::pair<int, int> clip_resize_output_size(int height, int width, int shortest_edge) {
  // transformers image_transforms.get_resize_output_image_size(default_to_square=False).
  const int short_side = std::min(width, height), long_side = std::max(width, height);
  if (short_side == shortest_edge) return {height, width};
  const double new_long_f = static_cast<double>(int64_t(shortest_edge) * long_side) / static_cast<double>(short_side);
  GILL_CHECK(new_long_f < double(std::numeric_limits<int>::max()), ErrorCode::kInvalidArgument, "a ", width, "x",
             height, " image resized to shortest edge ", shortest_edge, " is too large");
  const int new_long = static_cast<int>(new_long_f);  // Python int(): truncation toward zero
  return width <= height ? std::pair<int, int>{new_long, shortest_edge} : std::pair<int, int>{shortest_edge, new_long};
}

torch::Tensor clip_preprocess(const gill::Image& img, const CLIPImageProcessorConfig& cfg) {
  check_image(img, "clip_preprocess");
  GILL_CHECK(cfg.image_mean.size() == 3 && cfg.image_std.size() == 3, ErrorCode::kInvalidArgument,
             "clip_preprocess: image_mean and image_std need 3 values, got ", cfg.image_mean.size(), " and ",
             cfg.image_std.size());
  // 3. Resize the shortest side (skipping the copy PIL makes when the size is unchanged); 4. centre crop
  // (image_transforms.center_crop), zero padding where the crop is larger than the image. The resize computes only
  // the part of its output the crop keeps (the same pixels, bit for bit): a 10000x100 image becomes a 224x224
  // window, not a 22400x224 image of which 99 % is thrown away.
  int H = img.height, W = img.width;
  if (cfg.do_resize) std::tie(H, W) = clip_resize_output_size(img.height, img.width, cfg.size);
  int out_h = H, out_w = W, top = 0, left = 0;
  if (cfg.do_center_crop) {
    const auto floordiv2 = [](int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); };
    top = floordiv2(H - cfg.crop_height);
    left = floordiv2(W - cfg.crop_width);
    out_h = cfg.crop_height;
    out_w = cfg.crop_width;
  }
  // The resized image's window [wy0, wy0 + wh) x [wx0, wx0 + ww) that the crop reads.
  const int wy0 = std::max(top, 0), wx0 = std::max(left, 0);
  const int wh = std::min(top + out_h, H) - wy0, ww = std::min(left + out_w, W) - wx0;
  gill::Image window;
  const gill::Image* cur = &img;
  if (H != img.height || W != img.width) {
    window = pil_resize_window(img, W, H, static_cast<PilFilter>(cfg.resample), wx0, wy0, ww, wh);
    cur = &window;
  }
  const int cur_y0 = cur == &img ? 0 : wy0, cur_x0 = cur == &img ? 0 : wx0, cur_w = cur->width;
  // 5-6. Rescale in float64 then float32, normalise in float32 (numpy's casts); 7. CHW.
  float mean[3], stdv[3];
  for (int c = 0; c < 3; ++c) {
    mean[c] = static_cast<float>(cfg.image_mean[c]);
    stdv[c] = static_cast<float>(cfg.image_std[c]);
  }
  auto out = torch::empty({3, out_h, out_w}, torch::kFloat32);
  float* o = out.data_ptr<float>();
  for (int y = 0; y < out_h; ++y) {
    const int sy = y + top;
    for (int x = 0; x < out_w; ++x) {
      const int sx = x + left;
      const bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
      const size_t at = inside ? (static_cast<size_t>(sy - cur_y0) * cur_w + (sx - cur_x0)) * 3 : 0;
      for (int c = 0; c < 3; ++c) {
        const uint8_t u = inside ? cur->pixels[at + c] : 0;
        float v =
            cfg.do_rescale ? static_cast<float>(static_cast<double>(u) * cfg.rescale_factor) : static_cast<float>(u);
        if (cfg.do_normalize) v = (v - mean[c]) / stdv[c];
        o[(static_cast<size_t>(c) * out_h + y) * out_w + x] = v;
      }
    }
  }
  return out;
}

torch::Tensor clip_preprocess_batch(const std::vector<gill::Image>& images, const CLIPImageProcessorConfig& cfg) {
  GILL_CHECK(!images.empty(), ErrorCode::kInvalidArgument, "clip_preprocess_batch: no images");
  std::vector<torch::Tensor> ts;
  ts.reserve(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    ts.push_back(clip_preprocess(images[i], cfg));
    GILL_CHECK(ts[i].sizes() == ts[0].sizes(), ErrorCode::kInvalidArgument, "clip_preprocess_batch: image ", i,
               " gives ", detail::shape_str(ts[i].sizes().vec()), " but image 0 gives ",
               detail::shape_str(ts[0].sizes().vec()), " (enable do_center_crop)");
  }
  return torch::stack(ts);  // [N, 3, H, W]
}

gill::Image image_from_hwc_uint8(const torch::Tensor& hwc) {
  GILL_CHECK(hwc.dim() == 3 && hwc.size(2) == 3 && hwc.scalar_type() == torch::kUInt8, ErrorCode::kInvalidArgument,
             "expected a [H, W, 3] uint8 tensor, got ", detail::shape_str(hwc.sizes().vec()), " ",
             c10::toString(hwc.scalar_type()));
  auto t = hwc.contiguous().cpu();
  gill::Image img;
  img.height = static_cast<int>(t.size(0));
  img.width = static_cast<int>(t.size(1));
  img.pixels.assign(t.data_ptr<uint8_t>(), t.data_ptr<uint8_t>() + t.numel());
  return img;
}

torch::Tensor image_to_hwc_uint8(const gill::Image& img) {
  check_image(img, "image_to_hwc_uint8");
  auto t = torch::empty({img.height, img.width, 3}, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), img.pixels.data(), img.pixels.size());
  return t;
}

CLIPImageProcessorConfig CLIPImageProcessorConfig::from_json(const json& j, const std::string& where) {
  GILL_CHECK(j.is_object(), ErrorCode::kFormat, where, ": expected a JSON object");
  CLIPImageProcessorConfig c;
  util::read_field(j, "do_resize", c.do_resize, where);
  util::read_field(j, "do_center_crop", c.do_center_crop, where);
  util::read_field(j, "do_rescale", c.do_rescale, where);
  util::read_field(j, "do_normalize", c.do_normalize, where);
  util::read_field(j, "do_convert_rgb", c.do_convert_rgb, where);
  if (j.contains("size")) {
    const json& s = j["size"];
    if (s.is_object()) {
      GILL_CHECK(s.contains("shortest_edge"), ErrorCode::kUnsupported, where,
                 ": \"size\" must have \"shortest_edge\" for CLIP, got ", s.dump());
      c.size = json_int(s["shortest_edge"], "size.shortest_edge", where);
    } else {
      c.size = json_int(s, "size", where);
    }
  }
  if (j.contains("crop_size")) {
    const json& s = j["crop_size"];
    if (s.is_object()) {
      GILL_CHECK(s.contains("height") && s.contains("width"), ErrorCode::kFormat, where,
                 ": \"crop_size\" needs \"height\" and \"width\", got ", s.dump());
      c.crop_height = json_int(s["height"], "crop_size.height", where);
      c.crop_width = json_int(s["width"], "crop_size.width", where);
    } else {
      c.crop_height = c.crop_width = json_int(s, "crop_size", where);
    }
  }
  util::read_field(j, "rescale_factor", c.rescale_factor, where);
  for (const char* key : {"image_mean", "image_std"}) {
    if (!j.contains(key)) continue;
    const json& a = j[key];
    GILL_CHECK(a.is_array() && a.size() == 3 && std::all_of(a.begin(), a.end(), [](const json& v) {
                 return v.is_number();
               }),
               ErrorCode::kFormat, where, ": \"", key, "\" must be 3 numbers, got ", a.dump());
    (std::string(key) == "image_mean" ? c.image_mean : c.image_std) = a.get<std::vector<double>>();
  }
  if (j.contains("resample")) c.resample = json_int(j["resample"], "resample", where);
  GILL_CHECK(c.size > 0 && c.crop_height > 0 && c.crop_width > 0, ErrorCode::kFormat, where,
             ": size and crop_size must be positive (size ", c.size, ", crop ", c.crop_height, "x", c.crop_width, ")");
  GILL_CHECK(c.resample >= 1 && c.resample <= 5, ErrorCode::kUnsupported, where, ": resample ", c.resample,
             " is not supported (1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING)");
  GILL_CHECK(c.do_convert_rgb, ErrorCode::kUnsupported, where, ": do_convert_rgb=false is not supported");
  return c;
}

CLIPImageProcessorConfig CLIPImageProcessorConfig::from_file(const std::filesystem::path& path) {
  return from_json(util::read_json_file(path, str_cat(path.string(), ": cannot open the preprocessor config")),
                   path.string());
}

}  // namespace gill::models
