// `gill serve`: the HTTP server (cpp-httplib) around one gill::Engine, streaming chat as Server-Sent Events. One
// request runs on the model at a time; up to max_queue more wait for it, and beyond that a request gets 503 with
// Retry-After. All of the server's state lives in this object (no globals); it is built, run and stopped by
// cmd_serve.cpp.
#pragma once
#include <gill/gill.h>

#include <cstdint>
#include <memory>
#include <string>

namespace gill::cli::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                      // 0: any free port (the chosen one is printed and returned by port())
  std::string api_key;                  // "": no authentication; else every endpoint but /health needs "Bearer KEY"
  int max_queue = 4;                    // requests that may wait while one runs
  int max_body_mb = 32;                 // request bodies above this many MiB get 413
  std::string image_root;               // local image paths in image_url allowed under it ("" = none)
  int64_t max_tokens = 1024;            // largest max_tokens of a request
  int64_t max_prompt_bytes = 64 << 10;  // text bytes of a request's prompt
  int64_t max_image_pixels = 4096 * 4096;
  int max_conversations = 8;      // live conversations (conversation_id) kept, least recently used dropped
  double conversation_mb = 4096;  // MiB of KV cache the live conversations may hold together
  EngineOptions engine;
  GenerateOptions defaults;  // the generation defaults of a request (command-line flags)
};

class Server {
 public:
  // Checks the options and binds the socket (kInvalidArgument naming the flag, kIo when the port is taken).
  explicit Server(const ServeOptions& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;
  // Serves: /health answers "loading" while the model loads on this thread, then requests are served until
  // shutdown(). Returns normally after shutdown(); throws the load error when the model cannot be loaded.
  // `on_ready` runs once the model is loaded.
  void run(const std::function<void()>& on_ready = {});
  // Thread-safe (not from a signal handler): cancels the running request (answered 503) and stops serving.
  void shutdown();

  struct State;

 private:
  std::unique_ptr<State> state_;
};

}  // namespace gill::cli::serve
