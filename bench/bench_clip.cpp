// gill-bench clip — CLIP ViT-L/14 vision tower (random weights, the real shape): seconds per image in fp32 and
// bf16, against this machine's fp32 GEMM peak and the plain-libtorch tower on the same weights (the in-process
// peer: fp32 and the dtype's own), both measured in the same run.
#include <spdlog/spdlog.h>

#include <torch/csrc/autograd/profiler_legacy.h>

#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "bench_cli.h"
#include "peers.h"
#include "models/clip_vision.h"
#include "util/compute_policy.h"
#include "util/cpu.h"

namespace gill::cli {
namespace {

struct BenchClipOptions {
  int images = 1;       // batch size of one forward
  int reps = 3;         // timed forwards per dtype (after one warm-up)
  std::string dtypes = "fp32,bf16";
  int layers = 24;      // ViT-L/14 has 24; fewer for a quick run (time is scaled back to 24)
  bool peer = true;     // also time the plain-libtorch tower on the same weights
  std::string compute = "auto";  // compute policy for bf16/fp16 weights, decided as the engine decides it
  std::string profile;           // write libtorch's profile of one more forward of ours (chrome trace), per dtype
};

// FLOPs of one image through the tower (GEMMs and attention matmuls only).
double flops_per_image(const models::CLIPVisionConfig& c) {
  const double T = double(c.num_positions()), D = double(c.hidden_size), I = double(c.intermediate_size);
  const double per_layer = 2 * T * (4 * D * D + 2 * D * I) + 2 * 2 * T * T * D;
  const double patch = 2 * double(c.num_patches()) * D * c.num_channels * c.patch_size * c.patch_size;
  return per_layer * c.num_hidden_layers + patch;
}

nlohmann::json run_one(const BenchClipOptions& o, torch::Dtype dtype, double fp32_peak) {
  std::string j_profile;
  models::CLIPVisionConfig cfg;  // ViT-L/14 (gill-spec 5.1)
  cfg.hidden_size = 1024;
  cfg.intermediate_size = 4096;
  cfg.num_attention_heads = 16;
  cfg.num_hidden_layers = o.layers;
  cfg.patch_size = 14;
  cfg.image_size = 224;
  models::ModuleOptions mo;
  mo.dtype = dtype;
  mo.compute = util::decide_compute(util::cpu_features(), util::parse_compute_mode(o.compute));
  bench::Timer t_init;
  models::CLIPVisionModel model(cfg, mo);
  models::init_random(*model, 0);
  const double init_s = t_init.seconds();
  auto gen = at::detail::createCPUGenerator(1);
  const auto pixels = torch::randn({o.images, 3, 224, 224}, gen);
  model->forward(pixels);  // warm-up
  double best = 1e30, total = 0;
  for (int r = 0; r < o.reps; ++r) {
    bench::Timer t;
    auto out = model->forward(pixels);
    const double s = t.seconds();
    best = std::min(best, s);
    total += s;
  }
  if (!o.profile.empty()) {  // one more forward under libtorch's profiler: every op with its CPU time
    const std::string path = o.profile + "." + torch::toString(dtype) + ".json";
    {
      torch::autograd::profiler::RecordProfile prof(path);
      model->forward(pixels);
    }
    j_profile = path;
    spdlog::info("CLIP {}: profile of one forward written to {}", torch::toString(dtype), path);
  }
  const double scale = 24.0 / o.layers;  // report for the full 24-layer tower
  const double s_per_image = best / o.images * scale;
  auto full = cfg;
  full.num_hidden_layers = 24;
  const double gflops = flops_per_image(full) / s_per_image / 1e9;
  nlohmann::json j;
  j["dtype"] = torch::toString(dtype);
  j["s_per_image"] = s_per_image;
  j["s_per_image_mean"] = total / o.reps / o.images * scale;
  j["gflops"] = gflops;
  j["fraction_of_fp32_gemm_peak"] = gflops / fp32_peak;
  j["gemm_fp32"] = model->gemm_fp32();
  j["compute_policy"] = mo.compute.describe();
  if (!j_profile.empty()) j["profile"] = j_profile;
  j["init_s"] = init_s;
  j["meets_target_0_58_s"] = s_per_image <= 0.58;
  // The plain-libtorch peer on the same weights, in fp32 and in this dtype (the faster one is the one to beat).
  if (o.peer) {
    const auto ours = model->forward(pixels).last_hidden.to(torch::kFloat32);
    std::vector<torch::Dtype> peer_dtypes{torch::kFloat32};
    if (dtype != torch::kFloat32) peer_dtypes.push_back(dtype);
    double best_peer = 1e30;
    for (auto pd : peer_dtypes) {
      const auto w = bench::parameter_copies(*model, pd);
      bench::plain_clip_forward(w, cfg, pixels);  // warm-up
      double pbest = 1e30;
      for (int r = 0; r < o.reps; ++r) {
        bench::Timer t;
        bench::plain_clip_forward(w, cfg, pixels);
        pbest = std::min(pbest, t.seconds());
      }
      const auto ref = bench::plain_clip_forward(w, cfg, pixels).to(torch::kFloat32);
      const std::string key = std::string("peer_plain_") + torch::toString(pd);
      j[key + "_s_per_image"] = pbest / o.images * scale;
      j[key + "_max_abs_diff_vs_ours"] = (ref - ours).abs().max().item<double>();
      best_peer = std::min(best_peer, pbest / o.images * scale);
    }
    j["ratio_vs_fastest_plain_peer"] = s_per_image / best_peer;
    spdlog::info("CLIP {}: ours {:.3f} s/image, fastest plain-libtorch peer {:.3f} s/image ({:.2f}x)",
                 torch::toString(dtype), s_per_image, best_peer, s_per_image / best_peer);
  }
  return j;
}

}  // namespace

void register_bench_clip(CLI::App& bench, Context& ctx) {
  auto* sub = bench.add_subcommand("clip", "CLIP ViT-L/14 vision tower, random weights: seconds per image");
  auto o = std::make_shared<BenchClipOptions>();
  sub->add_option("--images", o->images, "Images per forward (batch)")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--reps", o->reps, "Timed forwards per dtype")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--dtypes", o->dtypes, "Comma-separated dtypes to time (fp32, bf16, fp16)")->capture_default_str();
  sub->add_option("--layers", o->layers, "Encoder layers to build (time is scaled to 24)")
      ->capture_default_str()
      ->check(CLI::Range(1, 24));
  sub->add_option("--compute", o->compute, "auto | fp32 | bf16 compute policy for bf16 weights (as gill --compute)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  sub->add_option("--profile", o->profile,
                  "Also write libtorch's profile of one forward of ours to PREFIX.<dtype>.json (chrome trace)");
  sub->add_flag("!--no-peer", o->peer, "Skip the plain-libtorch tower on the same weights (fp32 and each dtype)");
  sub->callback([&ctx, o] {
    ctx.action = [o] {
      nlohmann::json j;
      j["bench"] = "clip";
      j["model"] = "ViT-L/14 vision tower (hidden 1024, 24 layers, 257 tokens), random weights";
      j["threads"] = torch::get_num_threads();
      j["cpu"] = util::cpu_features().describe();
      j["images_per_forward"] = o->images;
      const double peak = bench::gemm_gflops("fp32", 2048);
      j["gemm_gflops_fp32"] = peak;
      models::CLIPVisionConfig full;
      full.hidden_size = 1024, full.intermediate_size = 4096, full.num_hidden_layers = 24, full.patch_size = 14;
      j["gflop_per_image"] = flops_per_image(full) / 1e9;
      j["target_s_per_image"] = 0.58;
      std::stringstream ss(o->dtypes);
      std::string name;
      while (std::getline(ss, name, ',')) {
        j["results"].push_back(run_one(*o, io::parse_torch_dtype(name), peak));
      }
      j["peak_rss_gb"] = bench::peak_rss_gb();
      std::cout << j.dump() << std::endl;
      return 0;
    };
  });
}

}  // namespace gill::cli
