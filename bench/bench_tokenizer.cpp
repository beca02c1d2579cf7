// gill-bench tokenizer — load time of a real-size vocabulary and single-thread encode/decode throughput on
// English prose.
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "bench_cli.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/tokenizer.h"

namespace gill::cli {

namespace {

std::string default_dir() {
  const char* shared = std::getenv("GILL_SHARED_DIR");
  return std::string(shared ? shared : "../shared") + "/tokenizer-data/opt";
}

}  // namespace

void register_bench_tokenizer(CLI::App& bench, Context& ctx) {
  auto* sub = bench.add_subcommand("tokenizer", "Tokenizer load time and encode/decode MB/s on one core");
  auto dir = std::make_shared<std::string>(default_dir());
  auto mb = std::make_shared<double>(8.0);
  sub->add_option("--tokenizer", *dir, "Tokenizer folder (default: ../shared/tokenizer-data/opt)");
  sub->add_option("--mb", *mb, "Megabytes of prose to encode")->check(CLI::PositiveNumber);
  sub->callback([&ctx, dir, mb] {
    ctx.action = [dir, mb] {
      nlohmann::json j;
      j["tokenizer"] = *dir;
      double best_load = 1e9;
      std::unique_ptr<tokenizer::Tokenizer> tok;
      for (int i = 0; i < 3; ++i) {
        bench::Timer t;
        tok = tokenizer::load_tokenizer(*dir);
        best_load = std::min(best_load, t.seconds());
      }
      j["load_ms"] = best_load * 1e3;
      j["vocab"] = tok->size();
      const std::string& sample = tokenizer::english_sample_text();
      {  // first pass over the sample with an empty word cache
        bench::Timer t;
        const auto ids = tok->encode(sample, false);
        j["cold_encode_mb_s"] = sample.size() / 1e6 / t.seconds();
      }
      std::string text;
      while (text.size() < *mb * 1e6) text += sample;
      bench::Timer t;
      const auto ids = tok->encode(text, false);
      const double enc_s = t.seconds();
      j["bytes"] = text.size();
      j["tokens"] = ids.size();
      j["encode_mb_s"] = text.size() / 1e6 / enc_s;
      j["encode_tokens_per_s"] = ids.size() / enc_s;
      bench::Timer td;
      const std::string back = tok->decode(ids, true);
      j["decode_mb_s"] = back.size() / 1e6 / td.seconds();
      j["round_trip_equal"] = back == text;
      std::cout << j.dump() << std::endl;
      return 0;
    };
  });
}

}  // namespace gill::cli
