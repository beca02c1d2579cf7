// gill serve -m ROOT — an HTTP server with an OpenAI-style API (docs/server.md): GET /health, GET /v1/models,
// POST /v1/chat/completions, POST /v1/images/generations. One model is loaded once; one request runs at a time.
// SIGINT/SIGTERM cancel the running request (answered 503) and exit 0.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
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

// The write end of the self-pipe that SIGINT/SIGTERM write to: the one global, since a signal handler can reach
// nothing else (other threads, such as OpenBLAS's workers made before main, may be the ones the signal lands on,
// so sigwait with a blocked mask is not enough).
int g_serve_signal_fd = -1;

void serve_on_signal(int) {
  const char byte = 's';
  const ssize_t n = ::write(g_serve_signal_fd, &byte, 1);  // async-signal-safe
  (void)n;
}

int run_serve(ServeArgs& a, const Context& ctx) {
  serve::ServeOptions o = a.serve;
  o.engine.threads = ctx.threads;
  serve::Server server(o);
  int fds[2];
  require(::pipe(fds) == 0, ErrorCode::kIo, "gill serve: cannot create the signal pipe");
  g_serve_signal_fd = fds[1];
  struct sigaction sa {};
  sa.sa_handler = serve_on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  std::cout << "gill serve: listening on http://" << o.host << ":" << server.port() << " (loading the model)"
            << std::endl;
  // A byte on the pipe (a signal, or stop_waiter below) stops the server; shutdown() is harmless when stopped.
  std::thread waiter([&server, fd = fds[0]] {
    char byte = 0;
    while (::read(fd, &byte, 1) < 0 && errno == EINTR) {
    }
    server.shutdown();
  });
  auto stop_waiter = [&] {
    const char byte = 'q';
    const ssize_t n = ::write(fds[1], &byte, 1);
    (void)n;
    waiter.join();
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    g_serve_signal_fd = -1;
    ::close(fds[0]);
    ::close(fds[1]);
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
  sub->add_option("--api-key", a->serve.api_key, "Require 'Authorization: Bearer KEY' on every endpoint but /health");
  sub->add_option("--max-queue", a->serve.max_queue, "Requests that may wait while one runs (beyond: 503)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  sub->add_option("--max-body-mb", a->serve.max_body_mb, "Largest request body in MiB (beyond: 413)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  sub->add_option("--image-root", a->serve.image_root,
                  "Folder whose image files image_url may name by path (default: data: URLs only)");
  sub->add_option("--max-tokens", a->serve.max_tokens, "Largest max_tokens a request may ask for (beyond: 400)")
      ->capture_default_str();
  sub->add_option("--max-prompt-bytes", a->serve.max_prompt_bytes,
                  "Largest prompt text of a request in UTF-8 bytes (beyond: 400)")
      ->capture_default_str();
  sub->add_option("--max-image-pixels", a->serve.max_image_pixels,
                  "Largest image (width x height) a request may send (beyond: 400)")
      ->capture_default_str();
  sub->add_option("--max-conversations", a->serve.max_conversations,
                  "Live conversations (conversation_id) kept; the least recently used is dropped")
      ->capture_default_str();
  sub->add_option("--conversation-mb", a->serve.conversation_mb,
                  "MiB of KV cache the live conversations may hold together")
      ->capture_default_str();
  sub->callback([&ctx, a] {
    require(!a->serve.engine.weights_root.empty() || !a->serve.engine.gill_dir.empty(), ErrorCode::kInvalidArgument,
            "gill serve: give -m WEIGHTS_ROOT (or --gill DIR with --lm, --clip, --sd)");
    ctx.action = [&ctx, a] { return run_serve(*a, ctx); };
  });
}

}  // namespace gill::cli
