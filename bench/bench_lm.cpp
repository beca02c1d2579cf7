// gill-bench lm — OPT at real shapes with random weights: load (cold/warm), peak RSS, prefill tokens/s,
// decode s/token, against this machine's measured GEMM peak and memory read bandwidth. One JSON object.
//   flock /tmp/gill-bench.lock gill-bench lm --shape opt-6.7b --dtype bf16 --prompt-tokens 64 --prompt-tokens 512
#include <spdlog/spdlog.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "bench_cli.h"
#include "io/tensor_source.h"
#include "kernels/linear_bf16.h"
#include "models/opt.h"
#include "pipeline/lm_generate.h"
#include "tiny/tiny_opt.h"
#include "util/error.h"

namespace gill::cli {

namespace {

struct BenchLmOptions {
  std::string shape = "opt-125m";  // opt-6.7b | opt-125m | a model folder
  std::string dtype = "bf16";
  std::string compute = "auto";
  std::vector<int64_t> prompt_tokens{64};
  int64_t new_tokens = 16;
  std::string work_dir = "/work/bigtmp";
  bool keep = false;              // keep the generated weights
  bool libtorch_compare = true;   // also time libtorch's own bf16 path
  bool compare_gemv1 = false;     // also time decode with the 8-row tile kernels (same run)
  std::string weights = "mmap";  // mmap | memory | both (io::Residency; both: decode timed for each, same run)
};

models::OPTConfig shape_config(const std::string& shape) {
  models::OPTConfig c;  // OPTConfig defaults are opt-125m
  c.vocab_size = 50272;
  c.max_position_embeddings = 2048;
  if (shape == "opt-125m") return c;
  if (shape == "opt-6.7b") {
    c.hidden_size = c.word_embed_proj_dim = 4096;
    c.ffn_dim = 16384;
    c.num_attention_heads = 32;
    c.num_hidden_layers = 32;
    return c;
  }
  detail::fail(ErrorCode::kInvalidArgument, "--shape: expected opt-6.7b, opt-125m or a model folder, got '" + shape + "'");
}

double weight_bytes(models::OPTForCausalLM& m) {
  double b = 0;
  for (auto& p : m->parameters()) b += static_cast<double>(p.nbytes());
  return b;
}

// Our bf16 linear vs libtorch's bf16 linear on one weight shape, for M rows.
// x in `dt`, the activation dtype the policy picked (fp32: widened weights; bf16: bf16 GEMV / oneDNN).
nlohmann::json kernel_compare(int64_t n, int64_t k, int64_t m, torch::Dtype dt) {
  auto w = (torch::randn({n, k}) * 0.02).to(torch::kBFloat16);
  auto x = torch::randn({m, k}).to(dt);
  auto xb = x.to(torch::kBFloat16);
  kernels::linear_bf16_weight(x, w, {});
  const int reps = m == 1 ? 5 : 2;
  const double ours = bench::best_seconds(reps, [&] { kernels::linear_bf16_weight(x, w, {}); });
  const double lib = bench::best_seconds(m == 1 ? 3 : 1, [&] { torch::nn::functional::linear(xb, w); });
  const double bytes = static_cast<double>(w.nbytes()), flops = 2.0 * n * k * m;
  return {{"shape", {n, k}}, {"rows", m}, {"activations", io::torch_dtype_name(dt)}, {"ours_s", ours}, {"libtorch_bf16_s", lib},
          {"ours_gbs", bytes / ours / 1e9}, {"libtorch_gbs", bytes / lib / 1e9},
          {"ours_gflops", flops / ours / 1e9}, {"libtorch_gflops", flops / lib / 1e9}, {"speedup", lib / ours}};
}

int run_bench(const BenchLmOptions& o) {
  namespace fs = std::filesystem;
  c10::InferenceMode guard;
  nlohmann::json j;
  j["threads"] = torch::get_num_threads();
  j["shape"] = o.shape;
  j["dtype"] = o.dtype;
  j["cpu"] = util::cpu_features().describe();
  j["gemv_kernel"] = util::gemv_kernel_name(kernels::default_gemv_kernel());
  // Machine limits first (their buffers are freed before the model loads, so they do not count in peak RSS).
  const double gemm_fp32 = bench::gemm_gflops("fp32", 4096);
  const auto policy = util::decide_compute(util::cpu_features(), util::parse_compute_mode(o.compute));
  // 4096^3 in bf16 takes ~30 s without native bf16: there 1024^3
  const double gemm_bf16 = bench::gemm_gflops("bf16", policy.native_bf16 ? 4096 : 1024);
  const double read_gbs = bench::read_bandwidth_gbs();
  j["gemm_gflops"] = {{"fp32_4096", gemm_fp32}, {policy.native_bf16 ? "libtorch_bf16_4096" : "libtorch_bf16_1024", gemm_bf16}};
  j["read_gbs"] = read_gbs;
  spdlog::info("machine: fp32 GEMM {:.1f} GFLOP/s, bf16 GEMM {:.1f} GFLOP/s, read {:.1f} GB/s", gemm_fp32, gemm_bf16,
               read_gbs);

  const torch::Dtype dtype = pipeline::parse_lm_dtype(o.dtype);
  fs::path dir = o.shape;
  bool generated = false;
  if (!fs::is_directory(dir)) {
    const auto config = shape_config(o.shape);
    dir = fs::path(o.work_dir) / ("gill-bench-" + o.shape + "-" + o.dtype);
    if (!fs::exists(dir / "model.safetensors")) {
      spdlog::info("writing random {} weights to {}", o.shape, dir.string());
      bench::Timer t;
      tiny::write_random_opt(dir, config, dtype, 1234);
      j["write_s"] = t.seconds();
      generated = true;
    }
  }
  const std::string file = (dir / "model.safetensors").string();
  GILL_CHECK(o.weights == "mmap" || o.weights == "memory" || o.weights == "both", ErrorCode::kInvalidArgument,
             "--weights: expected mmap, memory or both, got '", o.weights, "'");
  models::ModuleOptions mo{dtype, torch::kCPU, policy};
  mo.residency = o.weights == "memory" ? io::Residency::kMemory : io::Residency::kMap;
  j["weights"] = io::residency_name(mo.residency);
  j["compute_policy"] = mo.compute.describe();

  // Cold load: weights dropped from the page cache; load = parse + map + populate every page.
  bench::drop_file_cache(file);
  models::OPTForCausalLM model{nullptr};
  {
    bench::Timer t;
    model = models::load_opt(dir, mo);
    model->prefault();
    j["load_cold_s"] = t.seconds();
  }
  model = models::OPTForCausalLM{nullptr};
  {
    bench::Timer t;
    model = models::load_opt(dir, mo);
    model->prefault();
    j["load_s"] = t.seconds();  // warm (file in the page cache)
  }
  const auto& c = model->config();
  const double wbytes = weight_bytes(model);
  const double params = wbytes / (dtype == torch::kBFloat16 ? 2.0 : 4.0);
  j["weight_gb"] = wbytes / 1e9;
  j["compute_dtype"] = io::torch_dtype_name(model->compute_dtype());
  j["anon_huge_pages_gb"] = bench::anon_huge_pages_gb();  // --weights memory: how much of the copy got 2 MiB pages
  spdlog::info("loaded {} ({:.2f} GB) warm in {:.2f} s; {:.2f} GB in anonymous huge pages", dir.string(), wbytes / 1e9,
               j["load_s"].get<double>(), j["anon_huge_pages_gb"].get<double>());

  // Prefill: FLOPs of the weight GEMMs (2 * params per token, the position table excluded; the lm_head counts
  // once, for the last position only) + attention.
  const double pos_params = static_cast<double>(model->decoder()->embed_positions->weight.numel());
  const double embed_params = static_cast<double>(model->embedding_weight().numel());
  const double body_params = params - pos_params - embed_params;
  nlohmann::json prefill = nlohmann::json::array();
  auto gen = pipeline::make_generator({});
  {  // warm-up (oneDNN's kernel JIT, first-touch of scratch memory), as for the peer below
    models::KVCache cache;
    model->forward_ids(torch::randint(4, c.vocab_size, {1, 16}, gen, torch::kLong), &cache);
  }
  for (int64_t t_prompt : o.prompt_tokens) {
    auto ids = torch::randint(4, c.vocab_size, {1, t_prompt}, gen, torch::kLong);
    models::OPTForwardOptions fo;
    fo.last_logits_only = true;
    models::KVCache cache;
    bench::Timer t;
    model->forward_ids(ids, &cache, fo);
    const double s = t.seconds();
    const double attn = 4.0 * c.num_hidden_layers * c.hidden_size * double(t_prompt) * double(t_prompt) / 2.0;
    const double flops = 2.0 * body_params * t_prompt + 2.0 * embed_params + attn;
    prefill.push_back({{"prompt_tokens", t_prompt}, {"s", s}, {"prefill_tok_s", t_prompt / s},
                       {"gflops", flops / s / 1e9}, {"ratio_vs_fp32_gemm_peak", flops / s / 1e9 / gemm_fp32},
                       {"ratio_vs_compute_dtype_gemm_peak",
                        flops / s / 1e9 / (model->compute_dtype() == torch::kBFloat16 ? gemm_bf16 : gemm_fp32)}});
    spdlog::info("prefill {} tokens: {:.2f} s ({:.1f} GFLOP/s)", t_prompt, s, flops / s / 1e9);
  }
  j["prefill"] = prefill;
  j["prefill_tok_s"] = prefill[0]["prefill_tok_s"];

  // Decode with the KV cache after a prompt of the first length.
  const double floor_s = wbytes / (read_gbs * 1e9) - pos_params * (dtype == torch::kBFloat16 ? 2 : 4) / (read_gbs * 1e9);
  auto time_decode = [&](models::OPTForCausalLM& m) {
    auto ids = torch::randint(4, c.vocab_size, {1, o.prompt_tokens.front()}, gen, torch::kLong);
    pipeline::GenerateOptions g;
    g.max_new_tokens = o.new_tokens + 1;  // step 0 comes from the prefill
    auto r = pipeline::generate(*m, m->embed_tokens(ids), g, gen);
    return r.decode_s / std::max<int64_t>(1, static_cast<int64_t>(r.ids.size()) - 1);
  };
  {
    const double per_token = time_decode(model);
    j["decode_s_per_token"] = per_token;
    j["decode_floor_s"] = floor_s;
    j["ratio_decode_vs_bandwidth_floor"] = floor_s / per_token;
    j["decode_effective_gbs"] = floor_s * read_gbs / per_token;
    spdlog::info("decode ({} weights): {:.3f} s/token (floor {:.3f} s)", io::residency_name(mo.residency), per_token,
                 floor_s);
  }
  if (dtype == torch::kBFloat16) {
    // The token's GEMVs alone on the model's own weights (every 2-D weight but the position table, the lm_head
    // being the tied embedding), one call each, in the model's order: how far decode is from its kernels.
    std::vector<std::pair<torch::Tensor, torch::Tensor>> calls;  // (weight, x)
    for (const auto& p : model->named_parameters(true))
      if (p.value().dim() == 2 && p.key().find("embed_positions") == std::string::npos)
        calls.emplace_back(p.value(), torch::randn({1, p.value().size(1)}).to(model->compute_dtype()));
    auto pass = [&] {
      for (const auto& [w, x] : calls) (void)kernels::linear_bf16_weight(x, w, {});
    };
    pass();
    int64_t misaligned = 0;
    for (const auto& wx : calls) misaligned += reinterpret_cast<uintptr_t>(wx.first.data_ptr()) % 64 != 0;
    j["weights_not_64b_aligned"] = misaligned;
    spdlog::info("{} of {} weights start off a 64-byte boundary", misaligned, calls.size());
    const double s = bench::best_seconds(3, pass);
    j["decode_gemvs_only_s"] = s;
    j["decode_gemvs_only_gbs"] = floor_s * read_gbs / s;
    spdlog::info("the token's {} GEMVs alone: {:.3f} s ({:.1f} GB/s)", calls.size(), s, floor_s * read_gbs / s);
  }
  if (o.compare_gemv1) {  // the default one-token kernel is the row-order one (AVX2, AVX-512); the 8-row tiles beside it
    kernels::use_row_order_gemv(false);
    const double per_token = time_decode(model);
    kernels::use_row_order_gemv(true);
    j["tiles8_decode_s_per_token"] = per_token;
    j["tiles8_ratio_decode_vs_bandwidth_floor"] = floor_s / per_token;
    spdlog::info("decode, 8-row tile kernel: {:.3f} s/token", per_token);
    const double again = time_decode(model);  // the default again: drift between the two is visible
    j["decode_s_per_token_again"] = again;
    spdlog::info("decode, default kernel again: {:.3f} s/token", again);
  }
  j["peak_rss_gb"] = bench::peak_rss_gb();
  j["ratio_peak_rss_vs_weights"] = bench::peak_rss_gb() * 1e9 / wbytes;

  if (o.libtorch_compare && dtype == torch::kBFloat16) {
    // libtorch's own bf16 path on the same model (torch::linear everywhere, as transformers runs it): prefill of
    // the first prompt length and decode, then per-shape kernels.
    const auto saved = model->compute_dtype();
    model->set_compute_dtype(torch::kBFloat16);
    model->use_gill_kernels(false);
    {
      auto pids = torch::randint(4, c.vocab_size, {1, o.prompt_tokens.front()}, gen, torch::kLong);
      models::OPTForwardOptions fo;
      fo.last_logits_only = true;
      models::KVCache cache;
      bench::Timer t;
      model->forward_ids(pids, &cache, fo);
      j["libtorch_bf16_prefill_s"] = t.seconds();
    }
    auto ids = torch::randint(4, c.vocab_size, {1, 8}, gen, torch::kLong);
    pipeline::GenerateOptions g;
    g.max_new_tokens = 1 + std::min<int64_t>(o.new_tokens, 4);
    auto r = pipeline::generate(*model, model->embed_tokens(ids), g, gen);
    j["libtorch_bf16_decode_s_per_token"] = r.decode_s / std::max<int64_t>(1, static_cast<int64_t>(r.ids.size()) - 1);
    model->use_gill_kernels(true);
    model->set_compute_dtype(saved);
    nlohmann::json kc = nlohmann::json::array();
    for (int64_t m : {int64_t(1), int64_t(64)}) {
      kc.push_back(kernel_compare(c.hidden_size, c.hidden_size, m, saved));
      kc.push_back(kernel_compare(c.ffn_dim, c.hidden_size, m, saved));
    }
    j["kernels"] = kc;
  }
  model = models::OPTForCausalLM{nullptr};
  if (o.weights == "both") {
    // The same file read into anonymous (huge-page) memory: load time from a warm page cache and decode, after the
    // mapped model is gone (the two copies would not both fit in memory at 6.7B).
    models::ModuleOptions mem = mo;
    mem.residency = io::Residency::kMemory;
    bench::Timer t;
    model = models::load_opt(dir, mem);
    j["memory_load_s"] = t.seconds();
    const double per_token = time_decode(model);
    j["memory_decode_s_per_token"] = per_token;
    j["memory_ratio_decode_vs_bandwidth_floor"] = floor_s / per_token;
    j["memory_peak_rss_gb"] = bench::peak_rss_gb();
    spdlog::info("decode (memory weights): {:.3f} s/token (floor {:.3f} s), loaded in {:.2f} s", per_token, floor_s,
                 j["memory_load_s"].get<double>());
    model = models::OPTForCausalLM{nullptr};
  }
  if (generated && !o.keep) {
    fs::remove_all(dir);
    j["deleted_weights"] = dir.string();
  }
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace

void register_bench_lm(CLI::App& bench, Context& ctx) {
  auto* sub = bench.add_subcommand("lm", "OPT load / prefill / decode at real shapes (random weights)");
  auto o = std::make_shared<BenchLmOptions>();
  sub->add_option("--shape", o->shape, "opt-6.7b | opt-125m | an OPT model folder")->capture_default_str();
  sub->add_option("--dtype", o->dtype, "fp32 | bf16 weight storage")->capture_default_str();
  sub->add_option("--compute", o->compute, "auto | fp32 | bf16 compute policy")->capture_default_str();
  sub->add_option("--prompt-tokens", o->prompt_tokens, "Prompt lengths for prefill (repeatable)")
      ->capture_default_str();
  sub->add_option("--new-tokens", o->new_tokens, "Decode steps timed")->capture_default_str();
  sub->add_option("--work-dir", o->work_dir, "Where random weights are written")->capture_default_str();
  sub->add_flag("--keep", o->keep, "Keep the generated weights folder");
  sub->add_option("--weights", o->weights, "mmap | memory | both: where the weights live (both: decode timed for each)")
      ->capture_default_str();
  sub->add_flag("--compare-gemv1", o->compare_gemv1,
                "Also time decode with the 8-row tile kernels instead of the one-token row-order ones (same run)");
  sub->add_flag("!--no-libtorch-compare", o->libtorch_compare, "Skip timing libtorch's own bf16 path");
  sub->callback([&ctx, o] { ctx.action = [o] { return run_bench(*o); }; });
}

}  // namespace gill::cli
