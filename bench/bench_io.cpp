// gill-bench io — opening a large safetensors file and taking a bf16 tensor without copying (time, RSS delta),
// and a dtype conversion at load that never holds two converted copies. Writes a temporary file (default 1 GiB)
// under --dir and deletes it. Run under `flock /tmp/gill-bench.lock`.
#include <filesystem>
#include <unistd.h>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "bench_cli.h"
#include "io/safetensors.h"

namespace gill::cli {


void register_bench_io(CLI::App& bench, Context& ctx) {
  auto* sub = bench.add_subcommand("io", "Zero-copy safetensors open + bf16 view, and load-time dtype conversion");
  auto dir = std::make_shared<std::string>("/work/bigtmp");
  auto mib = std::make_shared<int64_t>(1024);
  sub->add_option("--dir", *dir, "Folder for the temporary file");
  sub->add_option("--mib", *mib, "Size of the bf16 tensor in MiB");
  sub->callback([&ctx, dir, mib] {
    ctx.action = [dir, mib] {
      namespace fs = std::filesystem;
      const fs::path file = fs::path(*dir) / ("gill-bench-io-" + std::to_string(::getpid()) + ".safetensors");
      struct Cleanup {
        fs::path p;
        ~Cleanup() {
          std::error_code ec;
          fs::remove(p, ec);
        }
      } cleanup{file};
      const int64_t numel = *mib * 1024 * 1024 / 2;
      const int64_t cols = 4096;
      nlohmann::json j;
      {
        bench::Timer tw;
        torch::Tensor t = torch::arange(numel, torch::kFloat32).remainder(1000).to(torch::kBFloat16).view({-1, cols});
        io::write_safetensors(file, {{"w", t}});
        j["write_s"] = tw.seconds();
      }
      j["file_bytes"] = fs::file_size(file);
      bench::drop_file_cache(file.string());
      const double rss0 = bench::current_rss_gb(), anon0 = bench::rss_anon_gb();
      bench::Timer t0;
      io::SafetensorsFile src(file);
      torch::Tensor v = src.get("w");
      j["open_and_view_s"] = t0.seconds();
      j["view_is_zero_copy"] = v.data_ptr() == static_cast<const void*>(src.raw_data("w"));
      j["rss_delta_after_view_gb"] = bench::current_rss_gb() - rss0;
      j["anon_delta_after_view_gb"] = bench::rss_anon_gb() - anon0;
      // Convert to fp32 at load: the result is one new fp32 copy; the bf16 source is the file mapping
      // (page cache, reclaimable), never a second anonymous copy.
      bench::drop_file_cache(file.string());
      const double rss1 = bench::current_rss_gb(), anon1 = bench::rss_anon_gb();
      bench::Timer t1;
      torch::Tensor f = src.get("w", torch::kFloat32);
      j["convert_bf16_to_fp32_s"] = t1.seconds();
      j["rss_delta_after_fp32_gb"] = bench::current_rss_gb() - rss1;
      j["anon_delta_after_fp32_gb"] = bench::rss_anon_gb() - anon1;
      j["fp32_bytes_gb"] = static_cast<double>(f.numel()) * 4 / 1e9;
      j["bf16_bytes_gb"] = static_cast<double>(v.numel()) * 2 / 1e9;
      j["read_gbs_cold"] = static_cast<double>(v.numel()) * 2 / 1e9 / t1.seconds();
      j["peak_rss_gb"] = bench::peak_rss_gb();
      std::cout << j.dump() << std::endl;
      return 0;
    };
  });
}

}  // namespace gill::cli
