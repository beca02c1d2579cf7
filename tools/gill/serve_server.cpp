#include "serve_server.h"

#include <gill/result_json.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "cli_common.h"
#include "serve_api.h"
#include "serve_conversations.h"
#include "serve_page_html.h"

namespace gill::cli::serve {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Server::State {
  ServeOptions options;
  httplib::Server http;
  int port = 0;
  fs::path scratch;                // a private folder for image encoding/decoding, removed by the destructor
  std::unique_ptr<Engine> engine;  // set once loaded
  std::atomic<bool> ready{false}, stopping{false};
  std::mutex model;              // held by the request running on the engine
  std::atomic<int> admitted{0};  // running + waiting requests
  std::atomic<int> running{0};
  std::atomic<uint64_t> counter{0};  // request ids and scratch file names
  RequestLimits limits;
  std::unique_ptr<Conversations> conversations;
  // Index entries retrieval has answered with (index -> local file): what GET /v1/retrieved/N may serve.
  std::mutex retrieved_mu;
  std::map<int64_t, std::string> retrieved;

  // A block's local retrieved files become servable by GET /v1/retrieved/N.
  void remember_retrieved(const ImageBlock& b) {
    std::lock_guard<std::mutex> lock(retrieved_mu);
    for (const RetrievedImage& r : b.retrieved)
      if (r.path.find("://") == std::string::npos) retrieved[r.index] = r.path;
  }
  // The JSON of a block for a streamed response.
  json block(const ImageBlock& b, const GenerateOptions& o) {
    remember_retrieved(b);
    return block_json(b, png_of(o));
  }
  // A block's generated PNG with the turn's settings in its text chunks (gill::png_settings, as every writer).
  PngEncoder png_of(const GenerateOptions& o) {
    return [this, &o](const ImageBlock& b) { return encode_png(*b.generated, png_settings(b, o, "gill serve")); };
  }

  // PNG bytes of an image, through gill::write_png (the library's one PNG writer), with text chunks.
  std::string encode_png(const Image& image, const std::vector<std::pair<std::string, std::string>>& text) {
    const fs::path p = scratch / cat("out-", ++counter, ".png");
    write_png(image, p.string(), text);
    std::string bytes = read_file(p.string());
    fs::remove(p);
    return bytes;
  }
  // Decodes image bytes like gill::read_image; errors name `what` instead of the scratch file.
  Image decode_image(const std::string& bytes, const std::string& what) {
    const fs::path p = scratch / cat("in-", ++counter);
    write_file_atomic(p.string(), bytes);
    struct Remove {
      fs::path p;
      ~Remove() {
        std::error_code ec;
        fs::remove(p, ec);
      }
    } remove{p};
    try {
      return read_image(p.string());
    } catch (const Error& e) {
      std::string m = e.what();
      for (size_t at; (at = m.find(p.string())) != std::string::npos;) m.replace(at, p.string().size(), what);
      throw ApiError{400, "invalid_request_error", "invalid_image", m};
    }
  }
};

namespace {

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(e.body().dump(), "application/json");
}

void send_json(httplib::Response& res, const json& j) {
  res.status = 200;
  res.set_content(j.dump(), "application/json");
}

// Constant-time comparison of the Authorization header with the expected one.
bool serve_key_matches(const std::string& got, const std::string& want) {
  unsigned char diff = got.size() == want.size() ? 0 : 1;
  for (size_t i = 0; i < got.size(); ++i) diff |= static_cast<unsigned char>(got[i] ^ want[i % want.size()]);
  return diff == 0;
}

// One admitted request: counts towards the queue limit until it ends.
class QueueSlot {
 public:
  explicit QueueSlot(Server::State& st) : st_(st) {
    const int limit = 1 + st.options.max_queue;
    if (st.admitted.fetch_add(1) >= limit) {
      st.admitted.fetch_sub(1);
      throw ApiError{503, "server_error", "queue_full",
                     cat("the server is busy: one request running and ", st.options.max_queue,
                         " waiting (--max-queue); retry later")};
    }
  }
  ~QueueSlot() { st_.admitted.fetch_sub(1); }
  QueueSlot(const QueueSlot&) = delete;
  QueueSlot& operator=(const QueueSlot&) = delete;

 private:
  Server::State& st_;
};

// Runs fn with the model to itself (waiting for the running request), answering a shutdown with 503.
template <typename Fn>
void with_model(Server::State& st, Fn&& fn) {
  std::lock_guard<std::mutex> lock(st.model);
  if (st.stopping) throw ApiError{503, "server_error", "shutting_down", "the server is shutting down"};
  st.running = 1;
  struct Idle {
    Server::State& st;
    ~Idle() { st.running = 0; }
  } idle{st};
  fn();
}

// A POST endpoint: readiness, errors as JSON, Retry-After on 503.
template <typename Fn>
void serve_post(Server::State& st, httplib::Response& res, Fn&& fn) {
  try {
    if (!st.ready)
      throw ApiError{503, "server_error", "model_loading",
                     "the model is still loading; retry when GET /health says ready"};
    fn();
  } catch (const ApiError& e) {
    send_error(res, e);
  } catch (const Error& e) {
    ApiError a = api_error_for(e);
    if (e.code() == ErrorCode::kCancelled && st.stopping) a = {503, "server_error", "shutting_down", e.what()};
    send_error(res, a);
  } catch (const std::exception& e) {
    send_error(res, {500, "server_error", "internal_error", e.what()});
  }
  if (res.status == 503) res.set_header("Retry-After", "1");
}

GenerateOptions with_cancel(Server::State& st, GenerateOptions o) {
  o.is_cancelled = [&st] { return st.stopping.load(); };
  return o;
}

// One chat turn on the model (the caller holds it): a fresh Engine::generate, or the next turn of the request's
// conversation (made when new). For a conversation `conv` gets {"id", "turn", "positions", "cache_bytes", "kept"}.
Result chat_turn(Server::State& st, const ChatRequest& r, const GenerateOptions& o, json& conv) {
  if (r.conversation_id.empty()) return st.engine->generate(r.prompt, o);
  bool created = false;
  auto c = st.conversations->find_or_add(
      r.conversation_id, [&st] { return st.engine->chat(); }, created);
  Result out;
  try {
    out = c->chat.send(r.prompt, o);  // a failed turn leaves the chat as it was
  } catch (...) {
    if (created) st.conversations->erase(c->id);
    throw;
  }
  const Conversations::Settled s = st.conversations->settle(c);
  for (const std::string& id : s.evicted)
    spdlog::info("conversation {}: dropped (least recently used; --max-conversations / --conversation-mb)", id);
  if (!s.kept)
    spdlog::warn("conversation {}: its KV cache ({} bytes) alone is over --conversation-mb; not kept", c->id, c->bytes);
  conv = {{"id", c->id},
          {"turn", c->chat.turns()},
          {"positions", c->chat.n_positions()},
          {"cache_bytes", c->bytes},
          {"kept", s.kept}};
  return out;
}

int64_t now_s() {
  return static_cast<int64_t>(std::time(nullptr));
}

// stream: true. The queue slot is taken before the answer starts (so a full queue is still a 503); the turn runs
// inside the content provider: a chunk per text piece, per image block an `event: image_block_decided` (decision,
// retrieved items) then its `event: progress` denoising steps then a chunk with the finished block, the last chunk
// (finish_reason, usage, timings), then "data: [DONE]". A client that goes away makes a write fail, which cancels the
// turn (the token and cancel callbacks) and frees the slot.
void serve_chat_stream(Server::State& st, ChatRequest r, httplib::Response& res) {
  auto slot = std::make_shared<QueueSlot>(st);
  auto req = std::make_shared<ChatRequest>(std::move(r));
  const std::string id = cat("chatcmpl-", ++st.counter);
  const int64_t created = now_s();
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [&st, slot, req, id, created](size_t, httplib::DataSink& sink) {
    bool gone = false;
    auto send = [&](const char* event, const json& j) {
      if (gone) return false;
      std::string text = event ? cat("event: ", event, "\n") : "";
      text += "data: " + j.dump() + "\n\n";
      gone = !sink.write(text.data(), text.size());
      return !gone;
    };
    try {
      with_model(st, [&] {
        GenerateOptions o = req->options;
        o.is_cancelled = [&] { return gone || st.stopping.load(); };
        o.on_token = [&](const std::string& piece) {
          return send(nullptr, chat_chunk(id, created, {{"content", piece}}));
        };
        o.on_progress = [&](const std::string& stage, int64_t done, int64_t total) {
          if (stage != "tokens") send("progress", {{"stage", stage}, {"done", done}, {"total", total}});
        };
        // Each block as the turn reaches it: its decision and retrieved items first (a named event, before
        // its denoising), then the finished block as a chunk (the non-streamed response's image_blocks[k]).
        o.on_image_block = [&](int64_t k, const ImageBlock& b, bool done) {
          const json bj = st.block(b, req->options);
          if (!done) return send("image_block_decided", {{"index", k}, {"block", bj}});
          return send(nullptr, chat_chunk(id, created, {{"image_block", bj}, {"image_block_index", k}}));
        };
        send(nullptr, chat_chunk(id, created, {{"role", "assistant"}, {"content", ""}}));
        json conv;
        const Result out = chat_turn(st, *req, o, conv);
        json last = chat_chunk(id, created, json::object(), finish_reason(out, req->options));
        last["usage"] = usage_json(out);
        last["timings"] = timings_json(out);
        if (!conv.is_null()) last["conversation"] = conv;
        send(nullptr, last);
      });
    } catch (const ApiError& e) {
      send(nullptr, e.body());
    } catch (const Error& e) {
      ApiError a = api_error_for(e);
      if (e.code() == ErrorCode::kCancelled && st.stopping) a = {503, "server_error", "shutting_down", e.what()};
      if (e.code() == ErrorCode::kCancelled && gone) spdlog::info("{}: the client went away; turn cancelled", id);
      send(nullptr, a.body());
    } catch (const std::exception& e) {
      send(nullptr, ApiError{500, "server_error", "internal_error", e.what()}.body());
    }
    if (!gone) {
      const std::string done = "data: [DONE]\n\n";
      sink.write(done.data(), done.size());
    }
    sink.done();
    return true;
  });
}

void add_routes(Server::State& st) {
  auto& http = st.http;
  http.Get("/health", [&st](const httplib::Request&, httplib::Response& res) {
    const int running = st.running, admitted = st.admitted;
    const char* status = !st.ready ? "loading" : running > 0 ? "busy" : "ready";
    json j = {{"status", status},
              {"running", running},
              {"queued", std::max(0, admitted - running)},
              {"max_queue", st.options.max_queue},
              {"conversations", st.conversations->count()},
              {"conversation_bytes", st.conversations->bytes()}};
    send_json(res, j);
    if (!st.ready) {
      res.status = 503;
      res.set_header("Retry-After", "1");
    }
  });
  // The chat page, without the API key (the page asks for it and sends it on each call).
  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(reinterpret_cast<const char*>(kServePageHtml), kServePageHtml_size, "text/html; charset=utf-8");
    res.set_header("Cache-Control", "no-cache");
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' data: blob: http: https:; style-src 'unsafe-inline'; "
                   "script-src 'unsafe-inline'");
  });
  // A retrieved item's image file: only entries retrieval has returned in a response (never a path from a request).
  http.Get(R"(/v1/retrieved/(\d{1,18}))", [&st](const httplib::Request& req, httplib::Response& res) {
    const int64_t index = std::stoll(req.matches[1]);
    std::string path;
    {
      std::lock_guard<std::mutex> lock(st.retrieved_mu);
      const auto at = st.retrieved.find(index);
      if (at != st.retrieved.end()) path = at->second;
    }
    if (path.empty())
      return send_error(res, {404, "invalid_request_error", "not_found",
                              cat("retrieved item ", index, ": not in any answer of this server")});
    std::string ext = fs::path(path).extension().string();
    for (char& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const char* type = ext == ".png"                     ? "image/png"
                       : ext == ".jpg" || ext == ".jpeg" ? "image/jpeg"
                       : ext == ".gif"                   ? "image/gif"
                       : ext == ".webp"                  ? "image/webp"
                       : ext == ".bmp"                   ? "image/bmp"
                                                         : "application/octet-stream";
    try {
      res.set_content(read_file(path), type);
    } catch (const Error& e) {
      send_error(res, {404, "invalid_request_error", "not_found", e.what()});
    }
  });
  http.Get("/v1/models", [](const httplib::Request&, httplib::Response& res) { send_json(res, models_response()); });
  http.Post("/v1/chat/completions", [&st](const httplib::Request& req, httplib::Response& res) {
    serve_post(st, res, [&] {
      ChatRequest r =
          parse_chat_request(req.body, st.options.defaults, st.limits,
                             [&st](const std::string& b, const std::string& w) { return st.decode_image(b, w); });
      if (r.stream) return serve_chat_stream(st, std::move(r), res);
      QueueSlot slot(st);
      with_model(st, [&] {
        json conv;
        const Result out = chat_turn(st, r, with_cancel(st, r.options), conv);
        for (const ImageBlock& b : out.images) st.remember_retrieved(b);
        json body = chat_response(out, r.options, cat("chatcmpl-", ++st.counter), now_s(), st.png_of(r.options));
        if (!conv.is_null()) body["conversation"] = conv;
        send_json(res, body);
      });
    });
  });
  http.Delete(R"(/v1/conversations/([^/]+))", [&st](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    if (!st.conversations->erase(id))
      return send_error(res, {404, "invalid_request_error", "conversation_not_found",
                              cat("conversation_id = \"", id, "\": no such live conversation")});
    send_json(res, {{"id", id}, {"object", "conversation.deleted"}, {"deleted", true}});
  });
  http.Post("/v1/images/generations", [&st](const httplib::Request& req, httplib::Response& res) {
    serve_post(st, res, [&] {
      ImageRequest r = parse_image_request(req.body, st.options.defaults, st.limits);
      QueueSlot slot(st);
      with_model(st, [&] {
        const Image im = st.engine->generate_image_from_text(r.prompt, with_cancel(st, r.options));
        ImageBlock b;  // the prompt is the caption, as a turn's block carries its own
        b.caption = r.prompt;
        b.seed = r.options.seed;
        send_json(res, image_response(st.encode_png(im, png_settings(b, r.options, "gill serve")), now_s(),
                                      r.options.seed));
      });
    });
  });
}

}  // namespace

Server::Server(const ServeOptions& options) : state_(std::make_unique<State>()) {
  State& st = *state_;
  st.options = options;
  const ServeOptions& o = st.options;
  require(o.port >= 0 && o.port <= 65535, ErrorCode::kInvalidArgument,
          cat("--port ", o.port, ": must be in [0, 65535] (0 = any free port)"));
  require(o.max_queue >= 0 && o.max_queue <= 1024, ErrorCode::kInvalidArgument,
          cat("--max-queue ", o.max_queue, ": must be in [0, 1024]"));
  require(o.max_body_mb >= 1 && o.max_body_mb <= 4096, ErrorCode::kInvalidArgument,
          cat("--max-body-mb ", o.max_body_mb, ": must be in [1, 4096]"));
  require(!o.host.empty(), ErrorCode::kInvalidArgument, "--host: empty");
  require(o.max_tokens >= 1, ErrorCode::kInvalidArgument, cat("--max-tokens ", o.max_tokens, ": must be >= 1"));
  require(o.defaults.num_words <= o.max_tokens, ErrorCode::kInvalidArgument,
          cat("-n ", o.defaults.num_words, ": over --max-tokens ", o.max_tokens));
  require(o.max_prompt_bytes >= 1, ErrorCode::kInvalidArgument,
          cat("--max-prompt-bytes ", o.max_prompt_bytes, ": must be >= 1"));
  require(o.max_image_pixels >= 1, ErrorCode::kInvalidArgument,
          cat("--max-image-pixels ", o.max_image_pixels, ": must be >= 1"));
  require(o.max_conversations >= 1 && o.max_conversations <= 4096, ErrorCode::kInvalidArgument,
          cat("--max-conversations ", o.max_conversations, ": must be in [1, 4096]"));
  require(o.conversation_mb > 0 && o.conversation_mb <= 1 << 24, ErrorCode::kInvalidArgument,
          cat("--conversation-mb ", o.conversation_mb, ": must be in (0, 16777216]"));
  o.defaults.validate();
  o.engine.validate();
  st.limits.max_tokens = o.max_tokens;
  st.limits.max_prompt_bytes = o.max_prompt_bytes;
  st.limits.max_image_pixels = o.max_image_pixels;
  if (!o.image_root.empty()) {
    std::error_code ec;
    const fs::path root = fs::canonical(o.image_root, ec);
    require(!ec && fs::is_directory(root), ErrorCode::kNotFound,
            cat("--image-root ", o.image_root, ": not an existing folder"));
    st.limits.image_root = root.string();
  }
  st.conversations =
      std::make_unique<Conversations>(o.max_conversations, static_cast<int64_t>(o.conversation_mb * 1024.0 * 1024.0));

  std::string templ = (fs::temp_directory_path() / "gill-serve-XXXXXX").string();
  require(::mkdtemp(templ.data()) != nullptr, ErrorCode::kIo, cat("cannot create a scratch folder ", templ));
  st.scratch = templ;

  // Own workers: the running request, the waiting ones, and spares so that /health and the 503 answers are
  // never starved by requests waiting for the model.
  const size_t workers = static_cast<size_t>(o.max_queue) + 1 + 4;
  st.http.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  st.http.set_payload_max_length(static_cast<size_t>(o.max_body_mb) << 20);
  st.http.set_pre_routing_handler([&st](const httplib::Request& req, httplib::Response& res) {
    if (st.options.api_key.empty() || req.path == "/health" || (req.path == "/" && req.method == "GET"))
      return httplib::Server::HandlerResponse::Unhandled;
    if (serve_key_matches(req.get_header_value("Authorization"), "Bearer " + st.options.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, {401, "authentication_error", "invalid_api_key",
                     "missing or wrong API key: send the header 'Authorization: Bearer KEY' (--api-key)"});
    res.set_header("WWW-Authenticate", "Bearer");
    return httplib::Server::HandlerResponse::Handled;
  });
  // Answers httplib produces itself (unknown path, body too large, bad request line) in the same JSON form.
  st.http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404)
      send_error(res, {404, "invalid_request_error", "not_found",
                       cat("no endpoint ", req.method, " ", req.path,
                           " (GET /, GET /health, GET /v1/models, POST /v1/chat/completions, ",
                           "POST /v1/images/generations, DELETE /v1/conversations/ID)")});
    else if (res.status == 413)
      send_error(res,
                 {413, "invalid_request_error", "body_too_large", "the request body is larger than --max-body-mb"});
    else
      send_error(res, {res.status, "invalid_request_error", "bad_request", cat("HTTP ", res.status)});
  });
  st.http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::info("{} {} -> {}", req.method, req.path, res.status);
  });
  add_routes(st);

  if (o.port == 0) {
    st.port = st.http.bind_to_any_port(o.host);
    require(st.port > 0, ErrorCode::kIo, cat("--host ", o.host, ": cannot bind any port"));
  } else {
    require(st.http.bind_to_port(o.host, o.port), ErrorCode::kIo,
            cat("--host ", o.host, " --port ", o.port, ": cannot bind (address in use or not local?)"));
    st.port = o.port;
  }
}

Server::~Server() {
  std::error_code ec;
  if (!state_->scratch.empty()) fs::remove_all(state_->scratch, ec);
}

int Server::port() const {
  return state_->port;
}

void Server::run(const std::function<void()>& on_ready) {
  State& st = *state_;
  std::atomic<bool> listen_returned{false};
  std::thread listener([&] {
    st.http.listen_after_bind();
    listen_returned = true;
  });
  // A shutdown() that came before the listener ran could not stop it: wait for it to run, then stop it here.
  while (!st.http.is_running() && !listen_returned) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (st.stopping) st.http.stop();
  auto stop_listener = [&] {
    st.http.stop();
    listener.join();
  };
  try {
    EngineOptions eo = st.options.engine;
    eo.is_cancelled = [&st] { return st.stopping.load(); };
    st.engine = std::make_unique<Engine>(eo);
  } catch (const Error& e) {
    stop_listener();
    if (e.code() == ErrorCode::kCancelled && st.stopping) return;
    throw;
  } catch (...) {
    stop_listener();
    throw;
  }
  st.ready = true;
  if (on_ready) on_ready();
  listener.join();
}

void Server::shutdown() {
  state_->stopping = true;
  state_->http.stop();
}

}  // namespace gill::cli::serve
