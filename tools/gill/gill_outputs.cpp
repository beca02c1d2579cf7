#include "gill_outputs.h"

#include <gill/result_json.h>

#include <cstdio>

#include "cli_common.h"

namespace gill::cli {

namespace {
std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}
}  // namespace

void print_image_lines(const Result& r, std::ostream& out) {
  for (size_t k = 0; k < r.images.size(); ++k) {
    const ImageBlock& b = r.images[k];
    const std::string probs = cat("p_gen ", fmt(b.p_gen), ", p_ret ", fmt(b.p_ret));
    const std::string& gen = b.generated_file;
    if (b.decision == "gen" && !gen.empty()) {
      out << "[image " << k + 1 << ": generated (" << probs << ") -> " << gen << "]\n";
    } else if (!b.retrieved.empty()) {
      const auto& h = b.retrieved[0];
      out << "[image " << k + 1 << ": retrieved #" << h.index << " (score " << fmt(h.score) << "; " << probs << ") -> "
          << (h.file.empty() ? h.path : h.file) << "]\n";
      if (!gen.empty()) out << "[image " << k + 1 << ": also generated (--always-generate) -> " << gen << "]\n";
    } else if (!gen.empty()) {
      out << "[image " << k + 1 << ": generated (" << probs << ") -> " << gen << "]\n";
    } else {
      out << "[image " << k + 1 << ": decision '" << b.decision << "' (" << probs
          << ") but nothing to show: no retrieval index and Stable Diffusion not loaded]\n";
    }
  }
}

void write_json_file(const std::filesystem::path& path, const nlohmann::json& j) {
  write_file_atomic(path.string(), dump_json(j) + "\n");
}

}  // namespace gill::cli
