// The chat page of `gill serve` in a real browser: headless Debian chromium, driven over the DevTools protocol
// (a small WebSocket client here, no Node or npm). The page loads without the API key, the key goes into the
// settings panel, a prompt is typed and sent with Enter, and the reply's text (equal to the API's answer) and the
// image block's <img> (a decoded 64x64 PNG) appear in the DOM, with its decision probabilities; Stop cancels a
// long turn; a narrow window has no horizontal scrolling. A screenshot is saved as a test artifact
// (BUILD/test-artifacts/serve_chat_page.png; docs/images/serve_chat_page.png is one of them). Skipped with the
// reason when chromium is absent (tools/scripts/setup.sh installs it).
#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <thread>

#include "serve_kit.h"
#include "test_support.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

using gill::test::serve_kit::serve_b64_decode;
using gill::test::serve_kit::ServeProcess;

class ServeBrowser : public gill::test::serve_kit::ServeKit {};

// A WebSocket client (RFC 6455) for one DevTools target: text frames, masked as a client must, fragments joined.
class WebSocket {
 public:
  WebSocket(int port, const std::string& path) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("cannot connect to the DevTools port");
    timeval tv{120, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                            "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    write_all(req);
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) head += static_cast<char>(read_byte());
    if (head.rfind("HTTP/1.1 101", 0) != 0) throw std::runtime_error("WebSocket upgrade refused: " + head);
  }
  ~WebSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  void send_text(const std::string& text) {
    std::string f(1, static_cast<char>(0x81));  // FIN, text
    const size_t n = text.size();
    if (n < 126) {
      f += static_cast<char>(0x80 | n);
    } else if (n < 65536) {
      f += static_cast<char>(0x80 | 126);
      f += static_cast<char>(n >> 8);
      f += static_cast<char>(n & 255);
    } else {
      f += static_cast<char>(0x80 | 127);
      for (int s = 56; s >= 0; s -= 8) f += static_cast<char>((n >> s) & 255);
    }
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    f.append(reinterpret_cast<const char*>(mask), 4);
    for (size_t i = 0; i < n; ++i) f += static_cast<char>(text[i] ^ mask[i % 4]);
    write_all(f);
  }
  std::string receive() {
    std::string msg;
    for (;;) {
      const int b0 = read_byte(), b1 = read_byte();
      uint64_t n = b1 & 127;
      if (n == 126) n = (uint64_t(read_byte()) << 8) | uint64_t(read_byte());
      if (n == 127) {
        n = 0;
        for (int k = 0; k < 8; ++k) n = (n << 8) | uint64_t(read_byte());
      }
      std::string payload(n, '\0');
      for (uint64_t i = 0; i < n; ++i) payload[i] = static_cast<char>(read_byte());
      const int op = b0 & 15;
      if (op == 8) throw std::runtime_error("DevTools closed the WebSocket");
      if (op == 9 || op == 10) continue;  // ping / pong
      msg += payload;
      if (b0 & 0x80) return msg;
    }
  }

 private:
  void write_all(const std::string& s) {
    for (size_t at = 0; at < s.size();) {
      const ssize_t k = ::send(fd_, s.data() + at, s.size() - at, MSG_NOSIGNAL);
      if (k <= 0) throw std::runtime_error("WebSocket write failed");
      at += static_cast<size_t>(k);
    }
  }
  int read_byte() {
    if (at_ == len_) {
      const ssize_t k = ::recv(fd_, buf_, sizeof buf_, 0);
      if (k <= 0) throw std::runtime_error("WebSocket read failed (timeout or closed)");
      at_ = 0;
      len_ = static_cast<size_t>(k);
    }
    return static_cast<unsigned char>(buf_[at_++]);
  }
  int fd_ = -1;
  char buf_[65536];
  size_t at_ = 0, len_ = 0;
};

// chromium --headless with a DevTools port; one page target driven through Runtime/Input/Page commands.
class Browser {
 public:
  Browser(const std::string& exe, const fs::path& profile) : profile_(profile) {
    fs::create_directories(profile);
    std::vector<std::string> args = {exe,
                                     "--headless",
                                     "--no-sandbox",
                                     "--disable-gpu",
                                     "--no-first-run",
                                     "--no-default-browser-check",
                                     "--disable-extensions",
                                     "--remote-debugging-port=0",
                                     "--window-size=1000,760",
                                     "--user-data-dir=" + profile.string(),
                                     "about:blank"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const std::string log = (profile / "chromium.log").string();
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    if (posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error("cannot start " + exe);
    posix_spawn_file_actions_destroy(&fa);
    // Chromium writes its port to DevToolsActivePort in the profile.
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (port_ == 0 && Clock::now() < deadline) {
      std::ifstream f(profile / "DevToolsActivePort");
      int p = 0;
      if (f >> p && p > 0)
        port_ = p;
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (port_ == 0) throw std::runtime_error("chromium gave no DevTools port; " + gill::read_file(log));
    httplib::Client c("127.0.0.1", port_);
    std::string ws;
    for (int tries = 0; tries < 100 && ws.empty(); ++tries) {
      if (auto r = c.Get("/json/list"))
        for (const auto& t : json::parse(r->body, nullptr, false))
          if (t.is_object() && t.value("type", "") == "page") ws = t.value("webSocketDebuggerUrl", "");
      if (ws.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (ws.empty()) throw std::runtime_error("chromium has no page target");
    socket_ = std::make_unique<WebSocket>(port_, ws.substr(ws.find("/devtools/")));
  }
  ~Browser() {
    socket_.reset();
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    fs::remove_all(profile_, ec);
  }
  // A DevTools command; its result (events that come first are kept in events_).
  json call(const std::string& method, const json& params = json::object()) {
    const int id = ++id_;
    socket_->send_text(json{{"id", id}, {"method", method}, {"params", params}}.dump());
    for (;;) {
      json m = json::parse(socket_->receive());
      if (m.value("id", 0) == id) {
        if (m.contains("error")) throw std::runtime_error(method + ": " + m["error"].dump());
        return m["result"];
      }
      if (m.value("method", "") == "Runtime.exceptionThrown") exceptions_ += m["params"].dump() + "\n";
    }
  }
  // The value of a JavaScript expression.
  json eval(const std::string& expr) {
    json r = call("Runtime.evaluate", {{"expression", expr}, {"returnByValue", true}, {"awaitPromise", true}});
    if (r.contains("exceptionDetails")) throw std::runtime_error(expr + ": " + r["exceptionDetails"].dump());
    return r["result"].value("value", json());
  }
  // Polls `expr` until it is true (every 100 ms, up to `timeout`).
  bool wait_until(const std::string& expr, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (eval("!!(" + expr + ")") == true) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  void key(const std::string& key, const std::string& code, int vk, const std::string& text = "") {
    json down = {{"type", "keyDown"}, {"key", key}, {"code", code}, {"windowsVirtualKeyCode", vk}};
    if (!text.empty()) down["text"] = text;
    call("Input.dispatchKeyEvent", down);
    call("Input.dispatchKeyEvent", {{"type", "keyUp"}, {"key", key}, {"code", code}, {"windowsVirtualKeyCode", vk}});
  }
  // Focuses `selector` and types `text` into it (Input.insertText: the page sees real input events).
  void type_into(const std::string& selector, const std::string& text) {
    eval("document.querySelector(" + json(selector).dump() + ").focus()");
    call("Input.insertText", {{"text", text}});
  }
  std::string screenshot_png() { return serve_b64_decode(call("Page.captureScreenshot", {{"format", "png"}})["data"]); }
  const std::string& exceptions() const { return exceptions_; }

 private:
  fs::path profile_;
  pid_t pid_ = -1;
  int port_ = 0, id_ = 0;
  std::unique_ptr<WebSocket> socket_;
  std::string exceptions_;
};

std::string find_chromium() {
  if (const char* e = std::getenv("GILL_CHROMIUM"); e && *e) return e;
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (fs::exists(p)) return p;
  return "";
}

TEST_F(ServeBrowser, ChatPageStreamsTextAndImagesAndStops) {
  const std::string exe = find_chromium();
  if (exe.empty()) GTEST_SKIP() << "chromium not found (apt-get install chromium; tools/scripts/setup.sh installs it)";
  // Server defaults that reach an [IMG] block on the tiny kit at once, and generate it.
  ServeProcess s(root(), {"--api-key", "k3y", "-n", "6", "--min-word-tokens", "1", "--ret-scale-factor", "1000",
                          "--always-generate", "--steps", "2", "--seed", "11"});
  ASSERT_TRUE(s.wait_for("ready")) << s.output();
  const std::string base = "http://127.0.0.1:" + std::to_string(s.port()) + "/";
  const fs::path profile = gill::test::temp_dir("chromium");
  Browser b(exe, profile);
  b.call("Page.enable");
  b.call("Runtime.enable");
  b.call("Page.navigate", {{"url", base}});
  ASSERT_TRUE(b.wait_until("document.readyState === 'complete' && document.getElementById('prompt')"));
  EXPECT_EQ(b.eval("document.title"), "gill");
  // The key, entered once in the settings panel (opened from the keyboard: focus + Enter on the button).
  b.eval("document.getElementById('toggle-settings').focus()");
  b.key("Enter", "Enter", 13, "\r");
  ASSERT_TRUE(b.wait_until("!document.getElementById('settings').hidden"));
  EXPECT_EQ(b.eval("document.activeElement.id"), "key") << "the settings open on the key field";
  b.call("Input.insertText", {{"text", "k3y"}});
  // A prompt, sent with Enter.
  b.type_into("#prompt", "Show me a dog");
  b.key("Enter", "Enter", 13, "\r");
  const std::string done =
      "document.querySelector('.msg.assistant .stats') && "
      "document.querySelector('.msg.assistant figure.block img') && "
      "document.querySelector('.msg.assistant figure.block img').complete";
  ASSERT_TRUE(b.wait_until(done)) << b.eval("document.body.innerText") << b.exceptions() << s.output();
  EXPECT_EQ(b.eval("document.querySelectorAll('.error').length"), 0) << b.eval("document.body.innerText");
  const std::string shown = b.eval("document.querySelector('.msg.assistant .text').textContent");
  const json img = b.eval(
      "(() => { const i = document.querySelector('.msg.assistant figure.block img'); return {src: i.src.slice(0, 22), "
      "w: i.naturalWidth, h: i.naturalHeight, alt: i.alt}; })()");
  const std::string caption = b.eval("document.querySelector('.msg.assistant figcaption').textContent");
  // The same turn through the API: the page shows its text without the [IMG] tokens, and its block.
  const json req = {{"messages", json::array({{{"role", "user"}, {"content", "Show me a dog"}}})}};
  auto r = s.client().Post("/v1/chat/completions", {{"Authorization", "Bearer k3y"}}, req.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json api = json::parse(r->body);
  const std::string want = std::regex_replace(api["choices"][0]["message"]["content"].get<std::string>(),
                                              std::regex(R"(\s*\[IMG\d+\])"), "");
  EXPECT_FALSE(want.empty());
  EXPECT_EQ(shown, want);
  EXPECT_EQ(img["src"], "data:image/png;base64,");
  EXPECT_EQ(img["w"], 64);
  EXPECT_EQ(img["h"], 64);
  const json& blk = api["choices"][0]["message"]["image_blocks"][0];
  char pct[32];
  std::snprintf(pct, sizeof pct, "p(gen) %.1f%%", 100 * blk["probabilities"]["gen"].get<double>());
  EXPECT_NE(caption.find(pct), std::string::npos) << caption << " should show " << pct;
  const std::string png = b.screenshot_png();
  ASSERT_EQ(png.substr(0, 8), "\x89PNG\r\n\x1a\n");
  const fs::path artifacts = gill::test::cli_path().parent_path() / "test-artifacts";
  fs::create_directories(artifacts);
  gill::write_file_atomic((artifacts / "serve_chat_page.png").string(), png);

  // Stop: a long turn (1000 denoising steps) is cancelled from the page; the server is ready again.
  b.eval("document.getElementById('steps').value = '1000'; document.getElementById('scheduler').value = 'euler'");
  b.type_into("#prompt", "Another one");
  b.key("Enter", "Enter", 13, "\r");
  ASSERT_TRUE(b.wait_until("!document.getElementById('progress-row').hidden")) << b.eval("document.body.innerText");
  b.eval("document.getElementById('stop').click()");
  ASSERT_TRUE(
      b.wait_until("document.getElementById('stop').disabled && "
                   "[...document.querySelectorAll('.stats')].some(e => e.textContent === 'stopped')"));
  ASSERT_TRUE(s.wait_for("ready", std::chrono::seconds(60))) << s.output();
  EXPECT_NE(s.output().find("the client went away; turn cancelled"), std::string::npos) << s.output();

  // A narrow window: nothing wider than the viewport.
  b.call("Emulation.setDeviceMetricsOverride",
         {{"width", 360}, {"height", 640}, {"deviceScaleFactor", 1}, {"mobile", true}});
  ASSERT_TRUE(b.wait_until("window.innerWidth === 360"));
  EXPECT_LE(b.eval("document.documentElement.scrollWidth").get<int>(), 360);
  gill::write_file_atomic((artifacts / "serve_chat_page_narrow.png").string(), b.screenshot_png());
  EXPECT_EQ(b.exceptions(), "");
  EXPECT_EQ(s.terminate(), 0) << s.output();
}

}  // namespace
