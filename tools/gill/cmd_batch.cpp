// gill batch IN.jsonl -o OUT_DIR -m WEIGHTS [--shard i/N] — many prompts with one model load (src/api/batch.h).
// SIGINT finishes the current item and stops cleanly (a second one kills the process; rerun to resume).
#include <gill/batch.h>
#include <gill/progress.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <iostream>

#include "api_options.h"
#include "cli_common.h"
#include "output_checks.h"

namespace gill::cli {

namespace {

std::atomic<bool> g_stop{false};  // the one global: a signal handler can reach nothing else

void on_sigint(int) {
  if (g_stop.exchange(true)) {
    ::signal(SIGINT, SIG_DFL);
    ::raise(SIGINT);
    return;
  }
  const char msg[] = "\ngill batch: finishing the current item, then stopping (Ctrl-C again to kill)\n";
  (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
}

struct BatchArgs {
  std::string input, out_dir, shard = "0/1";
  bool no_report = false;
  EngineOptions engine;
  GenerateOptions gen;
};

}  // namespace

void register_batch(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand("batch", "Run a JSONL file of prompts with one model load (resumable, shardable)");
  auto a = std::make_shared<BatchArgs>();
  sub->add_option("IN", a->input, "Input JSONL: {\"id\", \"prompt\": [{\"text\"}|{\"image\"}...], \"options\"}")
      ->required();
  sub->add_option("-o,--out", a->out_dir, "Output folder (results.jsonl, images/, index.html)")->required();
  sub->add_option("--shard", a->shard, "Take items I, I+N, I+2N, ... (0 <= I < N)")->capture_default_str();
  sub->add_flag("--no-report", a->no_report, "Do not write index.html");
  add_engine_options(sub, a->engine);
  add_generate_options(sub, a->gen);
  sub->callback([&ctx, a] {
    ctx.action = [&ctx, a] {
      batch::BatchOptions bo;
      bo.input = a->input;
      bo.out_dir = a->out_dir;
      bo.shard = batch::parse_shard(a->shard);
      bo.defaults = a->gen;
      bo.defaults.validate();
      bo.defaults.on_progress = [](const std::string&, int64_t, int64_t) {};  // items have their own bar
      bo.write_report = !a->no_report;
      // Fail on a bad input file before spending minutes on loading.
      const auto n_items = batch::read_items(bo.input, bo.defaults).size();
      check_output_dir(a->out_dir, "-o");
      const ProgressStyle style = progress_style_for(stderr, ctx.verbosity < 0);
      EngineOptions eo = a->engine;
      eo.threads = ctx.threads;
      eo.on_progress = make_progress_callback(style);
      Engine engine(eo);

      auto bar = std::make_shared<ProgressBar>("batch", 0, style, stderr, "item");
      bo.on_item = [bar](const std::string& id, int64_t done, int64_t total) {
        bar->set_total(total);
        bar->set_note(id);
        bar->set(done);
      };
      bo.scorer = [&engine](const Prompt& p, const std::vector<std::string>& c) { return engine.score(p, c); };
      bo.stop = &g_stop;
      struct sigaction sa {};
      sa.sa_handler = on_sigint;
      sigemptyset(&sa.sa_mask);
      ::sigaction(SIGINT, &sa, nullptr);
      const batch::BatchSummary s =
          batch::run_batch(bo, [&engine](const Prompt& p, const GenerateOptions& o) { return engine.generate(p, o); });
      bar->finish();
      std::cerr << "gill batch: " << n_items << " items, shard " << a->shard << ": " << s.n_in_shard
                << " in shard, " << s.n_skipped << " already done, " << s.n_ok << " ok, " << s.n_errors
                << " errors" << (s.stopped ? " (stopped by SIGINT; rerun to resume)" : "") << "\n  results: "
                << s.results_path.string() << "\n";
      if (!s.report_path.empty()) std::cerr << "  report:  " << s.report_path.string() << "\n";
      // Failed items do not stop the run (their lines record the error), but the exit status reports them: the
      // code of the first failure, so a script notices.
      const size_t kShown = 20;
      for (size_t k = 0; k < s.errors.size() && k < kShown; ++k)
        std::cerr << "gill batch: error: " << s.errors[k].second << "\n";
      if (s.errors.size() > kShown)
        std::cerr << "gill batch: ... and " << s.errors.size() - kShown << " more errors (see the results file)\n";
      if (s.stopped) return 130;
      return s.errors.empty() ? 0 : exit_code_for(s.errors.front().first);
    };
  });
}

}  // namespace gill::cli
