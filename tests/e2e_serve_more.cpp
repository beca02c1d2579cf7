// `gill serve`, the second piece: conversations (conversation_id keeps a gill::Chat; its turns equal the
// library's Chat turns; LRU and memory bounds; DELETE), --image-root (paths under it only, traversal refused), the
// request limits (max_tokens, prompt bytes, image pixels) and their 4xx answers, and the load test (16 clients x 5
// mixed requests, then clients that hang up mid-stream).
#include <gill/gill.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "io/atomic_file.h"
#include "io/image.h"
#include "serve_kit.h"
#include "test_support.h"

using namespace gill;
namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

using gill::test::serve_kit::forced_chat;
using gill::test::serve_kit::serve_b64_decode;
using gill::test::serve_kit::ServeProcess;

class ServeMore : public gill::test::serve_kit::ServeKit {};

json user_text(const std::string& text) {
  return json::array({{{"role", "user"}, {"content", text}}});
}

json image_part_request(const std::string& url) {
  return {
      {"messages", json::array({{{"role", "user"},
                                 {"content", json::array({{{"type", "text"}, {"text", "A picture of"}},
                                                          {{"type", "image_url"}, {"image_url", {{"url", url}}}}})}}})},
      {"max_tokens", 3}};
}

// The same two turns through the server (one conversation_id) and through the library's Chat: equal text, usage
// and image blocks. Then the bounds: --max-conversations 2 drops the least recently used, DELETE ends one, and a
// conversation whose cache alone is over --conversation-mb is not kept.
TEST_F(ServeMore, ConversationTurnsEqualTheLibrarysChat) {
  ServeProcess s(root(), {"--max-conversations", "2"});
  ASSERT_TRUE(s.wait_for("ready")) << s.output();
  const std::string png = io::read_file(image_path());
  const json t1 = {{"conversation_id", "c1"}, {"messages", user_text("Hello there")}, {"max_tokens", 4}};
  json t2 = forced_chat(data_url(png));
  t2["conversation_id"] = "c1";
  auto [st1, a1] = post(s, "/v1/chat/completions", t1.dump());
  ASSERT_EQ(st1, 200) << a1.dump();
  auto [st2, a2] = post(s, "/v1/chat/completions", t2.dump());
  ASSERT_EQ(st2, 200) << a2.dump();
  EXPECT_EQ(a1["conversation"]["id"], "c1");
  EXPECT_EQ(a1["conversation"]["turn"], 1);
  EXPECT_EQ(a2["conversation"]["turn"], 2);
  EXPECT_GT(a2["conversation"]["positions"].get<int64_t>(), a1["conversation"]["positions"].get<int64_t>());
  EXPECT_TRUE(a2["conversation"]["kept"].get<bool>());

  EngineOptions eo;
  eo.weights_root = root().string();
  Engine engine(eo);
  Chat chat = engine.chat();
  GenerateOptions g1;
  g1.num_words = 4;
  const Result r1 = chat.send({Segment::Text("Hello there")}, g1);
  GenerateOptions g2;
  g2.num_words = 6;
  g2.steps = 2;
  g2.min_word_tokens = 1;
  g2.ret_scale_factor = 1000;
  g2.always_generate = true;
  g2.seed = 7;
  const Result r2 = chat.send({Segment::Text("A picture of"), Segment::Pixels(read_image(image_path().string())),
                               Segment::Text("Show me a dog")},
                              g2);
  EXPECT_EQ(a1["choices"][0]["message"]["content"], r1.text);
  EXPECT_EQ(a2["choices"][0]["message"]["content"], r2.text);
  EXPECT_EQ(a2["usage"]["prompt_tokens"], r2.timings.prompt_tokens) << "turn 2 feeds only its own prompt";
  EXPECT_EQ(a2["usage"]["completion_tokens"], r2.timings.new_tokens);
  EXPECT_EQ(a2["conversation"]["positions"], chat.n_positions());
  const json& blocks = a2["choices"][0]["message"]["image_blocks"];
  ASSERT_EQ(blocks.size(), r2.images.size());
  ASSERT_EQ(r2.images.size(), 1u);
  EXPECT_EQ(blocks[0]["decision"], r2.images[0].decision);
  EXPECT_FLOAT_EQ(blocks[0]["probabilities"]["gen"].get<float>(), r2.images[0].p_gen);
  const std::string url = blocks[0]["generated"]["url"];
  const std::string got_png = serve_b64_decode(url.substr(url.find(',') + 1));
  const Image got = io::load_image_from_memory(got_png.data(), got_png.size());
  ASSERT_TRUE(r2.images[0].generated.has_value());
  EXPECT_TRUE(got.pixels == r2.images[0].generated->pixels);
  // A fresh request with turn 2's messages is another turn (the whole prompt, BOS included, and no history).
  json fresh = t2;
  fresh.erase("conversation_id");
  auto [st3, a3] = post(s, "/v1/chat/completions", fresh.dump());
  ASSERT_EQ(st3, 200) << a3.dump();
  EXPECT_FALSE(a3.contains("conversation"));
  EXPECT_EQ(a3["usage"]["prompt_tokens"].get<int64_t>(), r2.timings.prompt_tokens + 1) << "BOS";

  // LRU: c2 and c3 push c1 out; c1 then starts again at turn 1.
  for (const char* id : {"c2", "c3"}) {
    auto [st, j] = post(s, "/v1/chat/completions",
                        json{{"conversation_id", id}, {"messages", user_text("Hi")}, {"max_tokens", 2}}.dump());
    ASSERT_EQ(st, 200) << j.dump();
  }
  auto h = s.client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(json::parse(h->body)["conversations"], 2);
  EXPECT_GT(json::parse(h->body)["conversation_bytes"].get<int64_t>(), 0);
  auto [st4, a4] = post(s, "/v1/chat/completions", t1.dump());
  ASSERT_EQ(st4, 200) << a4.dump();
  EXPECT_EQ(a4["conversation"]["turn"], 1) << "c1 was the least recently used: dropped";
  EXPECT_EQ(a4["choices"][0]["message"]["content"], r1.text);
  EXPECT_NE(s.output().find("conversation c1: dropped"), std::string::npos) << s.output();
  // DELETE: c3 is live (c2 was dropped by c1's return), then gone.
  auto d = s.client().Delete("/v1/conversations/c3");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 200) << d->body;
  auto d2 = s.client().Delete("/v1/conversations/c3");
  ASSERT_TRUE(d2);
  EXPECT_EQ(d2->status, 404);
  EXPECT_EQ(json::parse(d2->body)["error"]["code"], "conversation_not_found");
  EXPECT_EQ(s.terminate(), 0) << s.output();

  // A memory bound below one small cache: the turn is answered, the conversation is not kept.
  ServeProcess tight(root(), {"--conversation-mb", "0.000001"});
  ASSERT_TRUE(tight.wait_for("ready")) << tight.output();
  auto [st5, a5] = post(tight, "/v1/chat/completions", t1.dump());
  ASSERT_EQ(st5, 200) << a5.dump();
  EXPECT_FALSE(a5["conversation"]["kept"].get<bool>());
  auto h2 = tight.client().Get("/health");
  ASSERT_TRUE(h2);
  EXPECT_EQ(json::parse(h2->body)["conversations"], 0);
  EXPECT_EQ(tight.terminate(), 0) << tight.output();
}

// --image-root: image_url may name files under it (relative, absolute or file://), equal to sending the bytes;
// anything that resolves outside it (.., an absolute path elsewhere, a symbolic link out) is 403.
TEST_F(ServeMore, ImageRootServesPathsUnderItOnly) {
  const fs::path dir = gill::test::temp_dir("serve-root");
  const fs::path images = dir / "images";
  fs::create_directories(images / "sub");
  fs::copy_file(image_path(), images / "sub" / "rgb.png");
  fs::copy_file(image_path(), dir / "secret.png");
  fs::create_symlink(dir / "secret.png", images / "link.png");
  ServeProcess s(root(), {"--image-root", images.string()});
  ASSERT_TRUE(s.wait_for("ready")) << s.output();
  auto [st0, want] = post(s, "/v1/chat/completions", image_part_request(data_url(io::read_file(image_path()))).dump());
  ASSERT_EQ(st0, 200) << want.dump();
  for (const std::string& ok : {std::string("sub/rgb.png"), (images / "sub" / "rgb.png").string(),
                                "file://" + (images / "sub" / "rgb.png").string(), std::string("sub/../sub/rgb.png")}) {
    auto [st, j] = post(s, "/v1/chat/completions", image_part_request(ok).dump());
    EXPECT_EQ(st, 200) << ok << " -> " << j.dump();
    EXPECT_EQ(j["choices"][0]["message"]["content"], want["choices"][0]["message"]["content"]) << ok;
  }
  const std::vector<std::string> outside = {"../secret.png", (dir / "secret.png").string(),
                                            "link.png",      "sub/../../secret.png",
                                            "/etc/passwd",   "file:///etc/passwd"};
  for (const std::string& bad : outside) {
    auto [st, j] = post(s, "/v1/chat/completions", image_part_request(bad).dump());
    EXPECT_EQ(st, 403) << bad << " -> " << j.dump();
    EXPECT_EQ(j["error"]["code"], "path_not_allowed") << bad;
    EXPECT_NE(j["error"]["message"].get<std::string>().find("outside the server's --image-root"), std::string::npos);
  }
  auto [st1, j1] = post(s, "/v1/chat/completions", image_part_request("sub/missing.png").dump());
  EXPECT_EQ(st1, 400) << j1.dump();
  EXPECT_NE(j1["error"]["message"].get<std::string>().find("no such image file"), std::string::npos) << j1.dump();
  auto [st2, j2] = post(s, "/v1/chat/completions", image_part_request("sub").dump());
  EXPECT_EQ(st2, 400) << j2.dump();
  EXPECT_EQ(s.terminate(), 0) << s.output();
  fs::remove_all(dir);
}

struct LimitCase {
  const char* path;
  std::string body;
  int status;
  const char* code;
  const char* message_part;
};

// The request limits and the new fields' bad values: status, code and a message naming the field and the flag.
TEST_F(ServeMore, LimitsAndConversationFieldsAreCheckedByName) {
  ServeProcess s(root(), {"--max-tokens", "8", "-n", "4", "--max-prompt-bytes", "100", "--max-image-pixels", "1000"});
  ASSERT_TRUE(s.wait_for("ready")) << s.output();
  const std::string png = io::read_file(image_path());  // 45 x 37 = 1665 pixels
  const std::string chat = "/v1/chat/completions";
  const json hi = user_text("hi");
  const std::vector<LimitCase> cases = {
      {"/v1/chat/completions", json{{"messages", hi}, {"max_tokens", 9}}.dump(), 400, "invalid_value",
       "max_tokens = 9: over this server's limit of 8 (--max-tokens)"},
      {"/v1/chat/completions", json{{"messages", user_text(std::string(101, 'a'))}}.dump(), 400, "prompt_too_long",
       "messages: 101 bytes of text, over this server's limit of 100 (--max-prompt-bytes)"},
      {"/v1/chat/completions",
       json{{"messages", json::array({{{"role", "system"}, {"content", std::string(60, 'a')}},
                                      {{"role", "user"}, {"content", std::string(60, 'b')}}})}}
           .dump(),
       400, "prompt_too_long", "120 bytes"},
      {"/v1/chat/completions", image_part_request(data_url(png)).dump(), 400, "image_too_large",
       "messages[0].content[1].image_url.url: 45x37 = 1665 pixels, over this server's limit of 1000"},
      {"/v1/images/generations", json{{"prompt", std::string(101, 'a')}}.dump(), 400, "prompt_too_long",
       "prompt: 101 bytes"},
      {"/v1/chat/completions", json{{"messages", hi}, {"conversation_id", "a b"}}.dump(), 400, "invalid_value",
       "conversation_id = \"a b\""},
      {"/v1/chat/completions", json{{"messages", hi}, {"conversation_id", ""}}.dump(), 400, "invalid_value",
       "conversation_id = \"\""},
      {"/v1/chat/completions", json{{"messages", hi}, {"conversation_id", std::string(65, 'x')}}.dump(), 400,
       "invalid_value", "1 to 64 characters"},
      {"/v1/chat/completions", json{{"messages", hi}, {"conversation_id", 5}}.dump(), 400, "invalid_type",
       "conversation_id: expected a string, got a number"},
      {"/v1/chat/completions", image_part_request("sub/x.png").dump(), 400, "unsupported",
       "local paths need the server's --image-root"},
      {"/v1/chat/completions", image_part_request("https://example.com/x.png").dump(), 400, "unsupported",
       "does not fetch http(s) URLs"},
  };
  for (const LimitCase& c : cases) {
    auto [status, j] = post(s, c.path, c.body);
    EXPECT_EQ(status, c.status) << c.body.substr(0, 200) << " -> " << j.dump();
    EXPECT_EQ(j["error"]["code"], c.code) << c.body.substr(0, 200) << " -> " << j.dump();
    const std::string m = j["error"].value("message", "");
    EXPECT_NE(m.find(c.message_part), std::string::npos) << "message: " << m << "\nexpected: " << c.message_part;
  }
  // Within the limits the same server answers.
  auto [ok, okj] = post(s, chat, json{{"messages", hi}, {"max_tokens", 8}}.dump());
  EXPECT_EQ(ok, 200) << okj.dump();
  auto d = s.client().Delete("/v1/conversations/nothing");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 404);
  EXPECT_EQ(s.terminate(), 0) << s.output();
  // The flags themselves: -n over --max-tokens, a missing --image-root are refused at start.
  auto r = gill::test::run_cli({"serve", "-m", root().string(), "--max-tokens", "8", "-n", "9", "--port", "0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("-n 9: over --max-tokens 8"), std::string::npos) << r.out << r.err;
  r = gill::test::run_cli({"serve", "-m", root().string(), "--image-root", "/nonexistent-dir", "--port", "0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("--image-root /nonexistent-dir: not an existing folder"), std::string::npos)
      << r.out << r.err;
}

// /proc/PID/status fields in KiB (VmRSS: now, VmHWM: the peak).
int64_t proc_kib(pid_t pid, const std::string& field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  return -1;
}

// Load: 16 clients x 5 requests each (health, chat, streamed chat with an image block, images, streamed chat),
// all at once against --max-queue 4: every request gets a complete answer or a 503 with Retry-After, in bounded
// time, and the server's RSS stays bounded. Then 6 clients hang up in the middle of long streams: the server is
// ready again soon after and answers the next requests.
TEST_F(ServeMore, LoadSixteenClientsThenDisconnects) {
  ServeProcess s(root(), {"--max-queue", "4"});
  ASSERT_TRUE(s.wait_for("ready")) << s.output();
  const std::string png = io::read_file(image_path());
  {  // warm-up: one of each, so the baseline RSS has every code path's buffers
    auto [a, ja] = post(s, "/v1/chat/completions", forced_chat(data_url(png)).dump());
    ASSERT_EQ(a, 200) << ja.dump();
    auto [b, jb] = post(s, "/v1/images/generations", R"({"prompt": "warm", "steps": 2})");
    ASSERT_EQ(b, 200) << jb.dump();
  }
  const int64_t rss0 = proc_kib(s.pid(), "VmRSS");
  std::atomic<bool> sampling{true};
  std::atomic<int64_t> rss_max{rss0};
  std::thread sampler([&] {
    while (sampling) {
      const int64_t r = proc_kib(s.pid(), "VmRSS");
      if (r > rss_max) rss_max = r;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::mutex mu;
  std::vector<std::string> failures;
  std::atomic<int> ok{0}, busy{0};
  auto fail = [&](const std::string& m) {
    std::lock_guard<std::mutex> lock(mu);
    failures.push_back(m);
  };
  // One request of kind k; true when it got a complete answer or a 503 queue_full with Retry-After.
  auto one = [&](int client, int k) {
    auto c = s.client();
    const bool streamed = k == 2 || k == 4;
    httplib::Result r = [&] {
      if (k == 0) return c.Get("/health");
      if (k == 3)
        return c.Post("/v1/images/generations", json{{"prompt", "load"}, {"steps", 2}, {"seed", client}}.dump(),
                      "application/json");
      json body = k == 2 ? forced_chat(data_url(png)) : json{{"messages", user_text("Hello")}, {"max_tokens", 4}};
      if (streamed) body["stream"] = true;
      if (k == 4) body["conversation_id"] = "load-" + std::to_string(client);
      return c.Post("/v1/chat/completions", body.dump(), "application/json");
    }();
    const std::string what = "client " + std::to_string(client) + " request kind " + std::to_string(k);
    if (!r) return fail(what + ": no answer");
    if (r->status == 503) {
      if (r->get_header_value("Retry-After") != "1") fail(what + ": 503 without Retry-After");
      if (json::parse(r->body, nullptr, false)["error"]["code"] != "queue_full") fail(what + ": 503 " + r->body);
      ++busy;
      return;
    }
    if (r->status != 200) return fail(what + ": status " + std::to_string(r->status) + " " + r->body.substr(0, 300));
    if (streamed) {
      const std::string& t = r->body;
      const std::string tail = "data: [DONE]\n\n";
      if (t.size() < tail.size() || t.compare(t.size() - tail.size(), tail.size(), tail) != 0 ||
          t.find("\"finish_reason\":\"") == std::string::npos || t.find("\"error\"") != std::string::npos)
        return fail(what + ": incomplete stream " + t.substr(0, 300));
    } else if (k == 3) {
      const json j = json::parse(r->body, nullptr, false);
      const std::string p = serve_b64_decode(j["data"][0].value("b64_json", ""));
      if (p.substr(0, 8) != "\x89PNG\r\n\x1a\n") return fail(what + ": not a PNG");
    } else {
      const json j = json::parse(r->body, nullptr, false);
      if (k == 0 ? !j.contains("status") : !j["choices"][0]["message"]["content"].is_string())
        return fail(what + ": " + r->body.substr(0, 300));
    }
    ++ok;
  };
  const auto t0 = Clock::now();
  std::vector<std::thread> clients;
  for (int client = 0; client < 16; ++client)
    clients.emplace_back([&, client] {
      for (int k = 0; k < 5; ++k) one(client, (client + k) % 5);
    });
  for (auto& t : clients) t.join();
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  sampling = false;
  sampler.join();
  for (const auto& f : failures) ADD_FAILURE() << f;
  EXPECT_EQ(ok.load() + busy.load(), 80);
  EXPECT_GT(ok.load(), 16) << "the queue serves most of the requests";
  EXPECT_LT(load_s, 300.0);
  const int64_t hwm = proc_kib(s.pid(), "VmHWM");
  // Bounded: the peak stays within 256 MiB of the warm server (16 clients' bodies, PNGs and queue).
  EXPECT_LT(rss_max - rss0, 256 * 1024) << "RSS grew from " << rss0 << " KiB to " << rss_max << " KiB";
  auto h = s.client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(json::parse(h->body)["status"], "ready");
  EXPECT_LE(json::parse(h->body)["conversations"].get<int>(), 8) << "--max-conversations 8 (default)";

  // Clients that hang up in the middle of long streams (1000 denoising steps each).
  const auto t1 = Clock::now();
  std::atomic<int> hung_up{0}, refused{0};
  std::vector<std::thread> quitters;
  for (int q = 0; q < 6; ++q)
    quitters.emplace_back([&] {
      json req = {{"messages", user_text("Show me a dog")},
                  {"stream", true},
                  {"max_tokens", 3},
                  {"min_word_tokens", 1},
                  {"ret_scale_factor", 1000},
                  {"always_generate", true},
                  {"steps", 1000},
                  {"scheduler", "euler"}};
      httplib::Request hr;
      hr.method = "POST";
      hr.path = "/v1/chat/completions";
      hr.body = req.dump();
      hr.set_header("Content-Type", "application/json");
      std::string got;
      hr.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
        got.append(data, n);
        return got.find("event: progress") == std::string::npos;
      };
      auto r = s.client().send(hr);
      if (r && r->status == 503)
        ++refused;  // the queue was full: answered at once
      else if (!r && got.find("event: progress") != std::string::npos)
        ++hung_up;
      else
        fail("disconnecting client: " + (r ? std::to_string(r->status) + " " + r->body : got.substr(0, 200)));
    });
  for (auto& t : quitters) t.join();
  EXPECT_EQ(hung_up.load() + refused.load(), 6);
  EXPECT_GE(hung_up.load(), 1);
  ASSERT_TRUE(s.wait_for("ready", std::chrono::seconds(120))) << s.output();
  const double recover_s = std::chrono::duration<double>(Clock::now() - t1).count();
  for (int k = 0; k < 3; ++k) {
    auto [st, j] = post(s, "/v1/chat/completions", json{{"messages", user_text("After")}, {"max_tokens", 2}}.dump());
    EXPECT_EQ(st, 200) << j.dump();
  }
  auto h2 = s.client().Get("/health");
  ASSERT_TRUE(h2);
  EXPECT_EQ(json::parse(h2->body)["queued"], 0);
  const int64_t hwm_end = proc_kib(s.pid(), "VmHWM");
  std::cerr << "load: 80 requests from 16 clients in " << load_s << " s: " << ok.load() << " answered, " << busy.load()
            << " x 503; RSS " << rss0 / 1024 << " MiB warm, " << rss_max / 1024 << " MiB max under load, VmHWM "
            << hwm / 1024 << " MiB; 6 hang-ups (" << hung_up.load() << " mid-stream, " << refused.load()
            << " x 503), ready again " << recover_s << " s later; VmHWM at the end " << hwm_end / 1024 << " MiB\n";
  EXPECT_EQ(s.terminate(), 0) << s.output();
}

}  // namespace
