// `gill serve` on the tiny kit: the server started as its own process on a free loopback port (--port 0, the port
// read from its first line), real HTTP requests through cpp-httplib's client, answers compared with the library
// (gill::Engine on the same kit), the errors' status codes and messages, the queue limit, and SIGTERM.
#include <gill/gill.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "io/atomic_file.h"
#include "io/image.h"
#include "result_schema.h"
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

class Serve : public gill::test::serve_kit::ServeKit {};

// A PNG's text chunks by key.
std::map<std::string, std::string> serve_png_text(const std::string& png) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : io::read_png_text(png)) out[k] = v;
  return out;
}

TEST_F(Serve, HealthModelsAndApiKey) {
  ServeProcess s(root(), {"--api-key", "s3cret"});
  ASSERT_TRUE(s.wait_for("ready")) << s.output();
  auto c = s.client();
  auto h = c.Get("/health");  // no key needed
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  const json hj = json::parse(h->body);
  EXPECT_EQ(hj["status"], "ready");
  EXPECT_EQ(hj["queued"], 0);
  EXPECT_EQ(hj["max_queue"], 4);
  auto no_key = c.Get("/v1/models");
  ASSERT_TRUE(no_key);
  EXPECT_EQ(no_key->status, 401);
  EXPECT_EQ(json::parse(no_key->body)["error"]["code"], "invalid_api_key");
  EXPECT_EQ(json::parse(no_key->body)["error"]["type"], "authentication_error");
  auto wrong = c.Get("/v1/models", {{"Authorization", "Bearer s3creT"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto chat_no_key = post(s, "/v1/chat/completions", R"({"messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(chat_no_key.first, 401);
  const httplib::Headers key = {{"Authorization", "Bearer s3cret"}};
  auto models = c.Get("/v1/models", key);
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 200);
  const json mj = json::parse(models->body);
  EXPECT_EQ(mj["object"], "list");
  ASSERT_EQ(mj["data"].size(), 1u);
  EXPECT_EQ(mj["data"][0]["id"], "gill");
  auto missing = c.Get("/v1/nothing", key);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_NE(json::parse(missing->body)["error"]["message"].get<std::string>().find("GET /v1/nothing"),
            std::string::npos);
  EXPECT_EQ(s.terminate(), 0) << s.output();
  EXPECT_NE(s.output().find("gill serve: stopped"), std::string::npos) << s.output();
}

TEST_F(Serve, ChatCompletionEqualsTheLibrarysTurn) {
  ServeProcess s(root(), {});
  ASSERT_TRUE(s.wait_for("ready")) << s.output();
  const std::string png = io::read_file(image_path());
  auto [status, j] = post(s, "/v1/chat/completions", forced_chat(data_url(png)).dump());
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "gill");
  const json& msg = j["choices"][0]["message"];
  EXPECT_EQ(msg["role"], "assistant");

  // The same turn through the library, on the same kit and options.
  EngineOptions eo;
  eo.weights_root = root().string();
  Engine engine(eo);
  GenerateOptions go;
  go.num_words = 6;
  go.steps = 2;
  go.min_word_tokens = 1;
  go.ret_scale_factor = 1000;
  go.always_generate = true;
  go.seed = 7;
  const Prompt prompt = {Segment::Text("A picture of"), Segment::Pixels(read_image(image_path().string())),
                         Segment::Text("Show me a dog")};
  const Result want = engine.generate(prompt, go);
  EXPECT_EQ(msg["content"], want.text);
  EXPECT_NE(want.text.find("[IMG0]"), std::string::npos);
  EXPECT_EQ(j["usage"]["completion_tokens"], want.timings.new_tokens);
  EXPECT_EQ(j["usage"]["prompt_tokens"], want.timings.prompt_tokens);
  ASSERT_EQ(msg["image_blocks"].size(), want.images.size());
  ASSERT_EQ(want.images.size(), 1u);
  const json& b = msg["image_blocks"][0];
  const ImageBlock& wb = want.images[0];
  // The blocks and timings are the library's serialiser's (docs/result-schema.md).
  EXPECT_EQ(gill::test::schema_problems(b, "block"), std::vector<std::string>{}) << b.dump(2);
  EXPECT_EQ(gill::test::schema_problems(j["timings"], "timings"), std::vector<std::string>{}) << j["timings"].dump(2);
  EXPECT_EQ(b["decision"], wb.decision);
  EXPECT_FLOAT_EQ(b["probabilities"]["gen"].get<float>(), wb.p_gen);
  EXPECT_FLOAT_EQ(b["probabilities"]["ret"].get<float>(), wb.p_ret);
  EXPECT_NEAR(b["probabilities"]["gen"].get<double>() + b["probabilities"]["ret"].get<double>(), 1.0, 1e-5);
  ASSERT_EQ(b["retrieved"].size(), wb.retrieved.size());
  ASSERT_FALSE(wb.retrieved.empty());
  EXPECT_EQ(b["retrieved"][0]["path"], wb.retrieved[0].path);
  EXPECT_EQ(b["retrieved"][0]["index"], wb.retrieved[0].index);
  // The generated picture: a PNG data URL whose pixels are the library's.
  ASSERT_TRUE(wb.generated.has_value());
  const std::string url = b["generated"]["url"];
  const std::string prefix = "data:image/png;base64,";
  ASSERT_EQ(url.rfind(prefix, 0), 0u) << url.substr(0, 40);
  const std::string got_png = serve_b64_decode(url.substr(prefix.size()));
  ASSERT_EQ(got_png.substr(0, 8), "\x89PNG\r\n\x1a\n");
  const Image got = io::load_image_from_memory(got_png.data(), got_png.size());
  EXPECT_EQ(got.width, wb.generated->width);
  EXPECT_EQ(got.height, wb.generated->height);
  EXPECT_EQ(b["generated"]["width"], got.width);
  EXPECT_EQ(b["generated"]["height"], got.height);
  EXPECT_TRUE(got.pixels == wb.generated->pixels) << "the served image differs from the library's";
  // Its settings in PNG text chunks, as every PNG gill writes (gill::png_settings).
  const auto text = serve_png_text(got_png);
  EXPECT_EQ(text.at("caption"), wb.caption);
  EXPECT_EQ(text.at("seed"), std::to_string(wb.seed));
  EXPECT_EQ(text.at("steps"), "2");
  EXPECT_EQ(text.at("Software"), "gill serve");
  EXPECT_EQ(s.terminate(), 0) << s.output();
}

TEST_F(Serve, ImagesGenerationsAreSeededPngs) {
  ServeProcess s(root(), {});
  ASSERT_TRUE(s.wait_for("ready")) << s.output();
  const json req = {{"prompt", "a red square"}, {"steps", 2}, {"seed", 5}, {"response_format", "b64_json"}};
  auto [st1, a] = post(s, "/v1/images/generations", req.dump());
  ASSERT_EQ(st1, 200) << a.dump();
  auto [st2, b] = post(s, "/v1/images/generations", req.dump());
  ASSERT_EQ(st2, 200) << b.dump();
  json other = req;
  other["seed"] = 6;
  auto [st3, c] = post(s, "/v1/images/generations", other.dump());
  ASSERT_EQ(st3, 200) << c.dump();
  const std::string pa = serve_b64_decode(a["data"][0]["b64_json"]), pb = serve_b64_decode(b["data"][0]["b64_json"]),
                    pc = serve_b64_decode(c["data"][0]["b64_json"]);
  EXPECT_EQ(pa, pb) << "the same seed gives the same bytes";
  EXPECT_NE(pa, pc) << "another seed gives another image";
  EXPECT_EQ(a["data"][0]["seed"], 5);
  const Image got = io::load_image_from_memory(pa.data(), pa.size());
  EngineOptions eo;
  eo.weights_root = root().string();
  Engine engine(eo);
  GenerateOptions go;
  go.steps = 2;
  go.seed = 5;
  const Image want = engine.generate_image_from_text("a red square", go);
  EXPECT_EQ(got.width, want.width);
  EXPECT_EQ(got.height, want.height);
  EXPECT_TRUE(got.pixels == want.pixels) << "the served image differs from the library's";
  const auto text = serve_png_text(pa);  // the settings chunks, the prompt as the caption
  EXPECT_EQ(text.at("caption"), "a red square");
  EXPECT_EQ(text.at("seed"), "5");
  EXPECT_EQ(text.at("steps"), "2");
  EXPECT_EQ(text.at("Software"), "gill serve");
  EXPECT_EQ(s.terminate(), 0) << s.output();
}

struct BadCase {
  const char* path;
  std::string body;
  int status;
  const char* code;
  const char* message_part;  // the field / value the message must name
};

TEST_F(Serve, BadRequestsAreAnsweredAndTheServerKeepsServing) {
  ServeProcess s(root(), {"--max-body-mb", "1"});
  ASSERT_TRUE(s.wait_for("ready")) << s.output();
  const std::string chat = "/v1/chat/completions", images = "/v1/images/generations";
  const std::string msgs = R"("messages":[{"role":"user","content":"hi"}])";
  const std::string png = io::read_file(image_path());
  auto with_part = [&](const json& part) {
    return json{{"messages", json::array({{{"role", "user"}, {"content", json::array({part})}}})}}.dump();
  };
  auto image_part = [&](const std::string& url) {
    return with_part({{"type", "image_url"}, {"image_url", {{"url", url}}}});
  };
  const std::vector<BadCase> cases = {
      {"/v1/chat/completions", "{\"messages\": [", 400, "invalid_json", "not valid JSON"},
      {"/v1/chat/completions", "[1, 2]", 400, "invalid_json", "must be a JSON object"},
      {"/v1/chat/completions", "{" + msgs + ", \"foo\": 1}", 400, "unknown_field", "'foo'"},
      {"/v1/chat/completions", "{}", 400, "missing_field", "messages: missing"},
      {"/v1/chat/completions", R"({"messages": []})", 400, "invalid_value", "messages: empty"},
      {"/v1/chat/completions", R"({"messages": [{"role": "robot", "content": "hi"}]})", 400, "invalid_value",
       "messages[0].role = \"robot\""},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": 3}]})", 400, "invalid_type",
       "messages[0].content: expected a string or an array"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi", "name": "x"}]})", 400,
       "unknown_field", "'messages[0].name'"},
      {"/v1/chat/completions", "{" + msgs + ", \"top_p\": 1.5}", 400, "invalid_value",
       "top_p = 1.5: must be in (0, 1]"},
      {"/v1/chat/completions", "{" + msgs + ", \"max_tokens\": \"six\"}", 400, "invalid_type",
       "max_tokens: expected an integer, got a string"},
      {"/v1/chat/completions", "{" + msgs + ", \"max_tokens\": 0}", 400, "invalid_value", "max_tokens = 0"},
      {"/v1/chat/completions", "{" + msgs + ", \"steps\": 2.5}", 400, "invalid_value", "steps = 2.5"},
      {"/v1/chat/completions", "{" + msgs + ", \"scheduler\": \"bogus\"}", 400, "invalid_value", "scheduler"},
      {"/v1/chat/completions", "{" + msgs + ", \"stream\": 1}", 400, "invalid_type",
       "stream: expected a boolean, got a number"},
      {"/v1/images/generations", R"({"prompt": "x", "stream": true})", 400, "unsupported", "stream = true"},
      {"/v1/chat/completions", "{" + msgs + ", \"n\": 2}", 400, "unsupported", "n = 2"},
      {"/v1/chat/completions", "{" + msgs + ", \"model\": \"gpt-4\"}", 404, "model_not_found", "\"gpt-4\""},
      {"/v1/chat/completions", image_part("http://example.com/a.png"), 400, "unsupported",
       "messages[0].content[0].image_url.url: gill serve does not fetch http(s) URLs"},
      {"/v1/chat/completions", image_part("data:image/png;base64,iVBO*w=="), 400, "invalid_base64",
       "messages[0].content[0].image_url.url: byte 4"},
      {"/v1/chat/completions", image_part(data_url("hello, world")), 400, "invalid_image",
       "messages[0].content[0].image_url.url"},
      {"/v1/chat/completions", image_part(data_url(png, "text/plain")), 400, "invalid_value", "'text/plain'"},
      {"/v1/chat/completions", with_part({{"type", "audio"}}), 400, "invalid_value",
       "messages[0].content[0].type = \"audio\""},
      {"/v1/images/generations", R"({"prompt": "x", "size": "512x512"})", 400, "unsupported", "size"},
      {"/v1/images/generations", R"({"prompt": "x", "response_format": "url"})", 400, "unsupported",
       "response_format = \"url\""},
      {"/v1/images/generations", R"({"prompt": "x", "temperature": 1})", 400, "unknown_field", "'temperature'"},
      {"/v1/images/generations", R"({"steps": 2})", 400, "missing_field", "prompt: missing"},
      {"/v1/images/generations", R"({"prompt": "x", "guidance_scale": -1})", 400, "invalid_value",
       "guidance_scale = -1"},
  };
  (void)chat;
  (void)images;
  for (const BadCase& c : cases) {
    auto [status, j] = post(s, c.path, c.body);
    EXPECT_EQ(status, c.status) << c.path << " " << c.body.substr(0, 200) << " -> " << j.dump();
    EXPECT_EQ(j["error"]["code"], c.code) << c.body.substr(0, 200) << " -> " << j.dump();
    const std::string m = j["error"].value("message", "");
    EXPECT_NE(m.find(c.message_part), std::string::npos)
        << "message: " << m << "\nexpected to name: " << c.message_part;
  }
  // Over --max-body-mb 1: 413 in the same JSON form.
  const std::string big = "{\"prompt\": \"" + std::string(size_t(2) << 20, 'a') + "\"}";
  auto [big_status, big_j] = post(s, images, big);
  EXPECT_EQ(big_status, 413);
  EXPECT_EQ(big_j["error"]["code"], "body_too_large");
  // Still serving.
  auto [ok, okj] = post(s, chat, "{" + msgs + ", \"max_tokens\": 2}");
  EXPECT_EQ(ok, 200) << okj.dump();
  EXPECT_TRUE(okj["choices"][0]["message"]["content"].is_string());
  EXPECT_EQ(s.terminate(), 0) << s.output();
}

// stream: true gives Server-Sent Events: the role chunk, the text pieces (together the non-streamed content), then
// per image block its decision event, its denoising progress events and a chunk with the finished block (equal to
// the non-streamed image_blocks[k]), the last chunk with finish_reason and usage, [DONE].
TEST_F(Serve, StreamedChatSendsTextDeltasProgressImageBlocksAndDone) {
  ServeProcess s(root(), {});
  ASSERT_TRUE(s.wait_for("ready")) << s.output();
  const std::string png = io::read_file(image_path());
  json req = forced_chat(data_url(png));
  req["max_num_rets"] = 2;  // two blocks
  auto [st_plain, plain] = post(s, "/v1/chat/completions", req.dump());
  ASSERT_EQ(st_plain, 200) << plain.dump();
  req["stream"] = true;
  auto r = s.client().Post("/v1/chat/completions", req.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  // Split into events: "event: NAME\n"? "data: ...\n\n".
  std::vector<std::pair<std::string, std::string>> events;
  size_t at = 0;
  while (at < r->body.size()) {
    const size_t end = r->body.find("\n\n", at);
    ASSERT_NE(end, std::string::npos) << "unterminated event at " << at;
    std::string ev = r->body.substr(at, end - at), name;
    if (ev.rfind("event: ", 0) == 0) {
      const size_t nl = ev.find('\n');
      name = ev.substr(7, nl - 7);
      ev = ev.substr(nl + 1);
    }
    ASSERT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    events.emplace_back(name, ev.substr(6));
    at = end + 2;
  }
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back().second, "[DONE]");
  const json first = json::parse(events.front().second);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  int progress = 0, blocks = 0, decided = 0, text_chunks = 0, block_progress = 0;
  const json& want_blocks = plain["choices"][0]["message"]["image_blocks"];
  ASSERT_EQ(want_blocks.size(), 2u);
  json last;
  for (size_t k = 1; k + 1 < events.size(); ++k) {
    const json j = json::parse(events[k].second);
    if (events[k].first == "progress") {
      EXPECT_EQ(decided, blocks + 1) << "denoising runs between a block's decision and its chunk";
      if (j["stage"] == "denoise") ++progress, ++block_progress;
      continue;
    }
    if (events[k].first == "image_block_decided") {
      EXPECT_EQ(decided, blocks) << "one decision per block, before its chunk";
      EXPECT_EQ(j["index"], blocks);
      ASSERT_LT(static_cast<size_t>(blocks), want_blocks.size());
      json want = want_blocks[blocks];
      want["generated"] = nullptr;  // no image yet
      EXPECT_EQ(j["block"], want);
      ++decided;
      block_progress = 0;
      continue;
    }
    ASSERT_EQ(events[k].first, "") << events[k].second;
    const json& d = j["choices"][0]["delta"];
    if (d.contains("content")) {
      EXPECT_EQ(decided, 0) << "text comes before the image blocks";
      text += d["content"].get<std::string>();
      ++text_chunks;
    } else if (d.contains("image_block")) {
      EXPECT_EQ(decided, blocks + 1);
      EXPECT_GE(block_progress, 2) << "steps = 2: the block's denoising steps came before it";
      EXPECT_EQ(d["image_block_index"], blocks);
      EXPECT_EQ(d["image_block"], want_blocks[blocks]);
      ++blocks;
    } else {
      last = j;
    }
  }
  EXPECT_EQ(text, plain["choices"][0]["message"]["content"]);
  EXPECT_GT(text_chunks, 1);
  EXPECT_GE(progress, 4) << "steps = 2 per block, 2 blocks";
  EXPECT_EQ(blocks, 2);
  EXPECT_EQ(last["choices"][0]["finish_reason"], plain["choices"][0]["finish_reason"]);
  EXPECT_EQ(last["usage"], plain["usage"]);
  EXPECT_EQ(s.terminate(), 0) << s.output();
}

// A client that goes away in the middle of a stream cancels its turn: the server logs it, is ready again long
// before the 1000 denoising steps would have ended, and answers the next request.
TEST_F(Serve, ClientDisconnectMidStreamCancelsTheTurn) {
  ServeProcess s(root(), {"--max-queue", "0"});
  ASSERT_TRUE(s.wait_for("ready")) << s.output();
  json req = {{"messages", json::array({{{"role", "user"}, {"content", "Show me a dog"}}})},
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
    return got.find("event: progress") == std::string::npos;  // hang up at the first denoising step
  };
  const auto t0 = Clock::now();
  auto r = s.client().send(hr);
  EXPECT_FALSE(r) << "the client stopped reading";
  EXPECT_NE(got.find("event: progress"), std::string::npos) << got.substr(0, 500);
  ASSERT_TRUE(s.wait_for("ready", std::chrono::seconds(60))) << s.output();
  const double cancelled_after = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_NE(s.output().find("the client went away; turn cancelled"), std::string::npos) << s.output();
  auto [st, j] = post(s, "/v1/images/generations", R"({"prompt": "after", "steps": 2})");
  EXPECT_EQ(st, 200) << j.dump();
  std::cerr << "turn cancelled " << cancelled_after << " s after the request\n";
  EXPECT_EQ(s.terminate(), 0) << s.output();
}

// --max-queue 0: while one request runs, a second gets 503 with Retry-After; SIGTERM cancels the running one
// (answered 503) and the server exits 0.
TEST_F(Serve, QueueLimitAndShutdownCancelTheRunningRequest) {
  ServeProcess s(root(), {"--max-queue", "0"});
  ASSERT_TRUE(s.wait_for("ready")) << s.output();
  const json long_req = {{"prompt", "slow"}, {"steps", 1000}, {"scheduler", "euler"}};
  auto first = std::async(std::launch::async, [&] { return post(s, "/v1/images/generations", long_req.dump()); });
  ASSERT_TRUE(s.wait_for("busy", std::chrono::seconds(60))) << "the first request never ran: " << s.output();
  auto r = s.client().Post("/v1/images/generations", R"({"prompt": "second", "steps": 1})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "queue_full");
  auto h = s.client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(json::parse(h->body)["status"], "busy");
  EXPECT_EQ(json::parse(h->body)["running"], 1);
  // The first request is still denoising (1000 steps): SIGTERM cancels it.
  EXPECT_EQ(s.terminate(), 0) << s.output();
  auto [st, j] = first.get();
  EXPECT_EQ(st, 503) << j.dump();
  EXPECT_EQ(j["error"]["code"], "shutting_down") << j.dump();
}

}  // namespace
