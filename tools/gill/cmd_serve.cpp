// gill serve -m ROOT — an HTTP server with an OpenAI-style API (docs/serve.md): GET /health, GET /v1/models,
// POST /v1/chat/completions, POST /v1/images/generations. One model is loaded once; one request runs at a time.
// SIGINT/SIGTERM cancel the running request (answered 503) and exit 0.
#include <pthread.h>
#include <signal.h>

#include <iostream>
#include <thread>

#include "api_options.h"
#include "cli_common.h"
#include "serve_server.h"

namespace gill::cli {

namespace {

struct ServeArgs {
  serve::ServeOptions serve;
};

int run_serve(ServeArgs& a, const Context& ctx) {
  serve::ServeOptions o = a.serve;
  o.engine.threads = ctx.threads;
  // SIGINT/SIGTERM are taken by a thread of our own (sigwait), so shutdown runs in a normal thread context; the
  // mask is set before any other thread exists, so every thread inherits it.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  require(pthread_sigmask(SIG_BLOCK, &signals, nullptr) == 0, ErrorCode::kInternal, "cannot block SIGINT/SIGTERM");
  serve::Server server(o);
  std::cout << "gill serve: listening on http://" << o.host << ":" << server.port() << " (loading the model)"
            << std::endl;
  std::thread waiter([&server, &signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    server.shutdown();
  });
  auto stop_waiter = [&] {
    pthread_kill(waiter.native_handle(), SIGTERM);  // wakes sigwait when no signal came (harmless otherwise)
    waiter.join();
  };
  try {
    server.run([&] { std::cout << "gill serve: ready" << std::endl; });
  } catch (...) {
    stop_waiter();
    throw;
  }
  stop_waiter();
  std::cout << "gill serve: stopped" << std::endl;
  return 0;
}

}  // namespace

void register_serve(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand("serve", "HTTP server with an OpenAI-style API (chat completions, images)");
  auto a = std::make_shared<ServeArgs>();
  add_engine_options(sub, a->serve.engine);
  add_generate_options(sub, a->serve.defaults);
  sub->add_option("--host", a->serve.host, "Address to bind (default loopback only)")->capture_default_str();
  sub->add_option("--port", a->serve.port, "TCP port (0 = any free port, printed at start)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  sub->add_option("--api-key", a->serve.api_key,
                  "Require 'Authorization: Bearer KEY' on every endpoint but /health");
  sub->add_option("--max-queue", a->serve.max_queue, "Requests that may wait while one runs (beyond: 503)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  sub->add_option("--max-body-mb", a->serve.max_body_mb, "Largest request body in MiB (beyond: 413)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  sub->callback([&ctx, a] {
    require(!a->serve.engine.weights_root.empty() || !a->serve.engine.gill_dir.empty(), ErrorCode::kInvalidArgument,
            "gill serve: give -m WEIGHTS_ROOT (or --gill DIR with --lm, --clip, --sd)");
    ctx.action = [&ctx, a] { return run_serve(*a, ctx); };
  });
}

}  // namespace gill::cli
