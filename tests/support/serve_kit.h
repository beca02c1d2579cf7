// Helpers of the `gill serve` end-to-end tests (e2e_serve*.cpp): a server process on a free loopback port, the
// tiny kit made once per suite, base64, and the chat request that reaches an [IMG] block.
#pragma once
#include <gill/gill.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"
#include "tiny/tiny.h"

extern char** environ;

namespace gill::test::serve_kit {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

inline std::string serve_b64_encode(const std::string& in) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    if (i + 2 < in.size()) v |= uint8_t(in[i + 2]);
    out += a[(v >> 18) & 63];
    out += a[(v >> 12) & 63];
    out += i + 1 < in.size() ? a[(v >> 6) & 63] : '=';
    out += i + 2 < in.size() ? a[v & 63] : '=';
  }
  return out;
}

inline std::string serve_b64_decode(const std::string& in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    if (v < 0) continue;  // '=' padding
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 255);
    }
  }
  return out;
}

// A `gill serve` process: started with extra args, its port read from stdout (stderr's log lines share the pipe),
// stopped with SIGTERM.
class ServeProcess {
 public:
  ServeProcess(const fs::path& root, const std::vector<std::string>& extra) {
    std::vector<std::string> args = {gill::test::cli_path().string(), "serve", "-m", root.string(), "--port", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);  // the request log too
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    if (posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error("cannot start " + args[0]);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    out_fd_ = fds[0];
    // "gill serve: listening on http://127.0.0.1:PORT (loading the model)", within 60 s.
    const std::string mark = "listening on http://127.0.0.1:";
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (port_ == 0 && Clock::now() < deadline) {
      read_some(200);
      const size_t at = out_.find(mark);
      if (at != std::string::npos && out_.find(' ', at + mark.size()) != std::string::npos)
        port_ = std::stoi(out_.substr(at + mark.size()));
      if (exited()) break;
    }
    if (port_ == 0) throw std::runtime_error("gill serve did not report its port; stdout: " + out_);
  }
  ~ServeProcess() {
    if (pid_ > 0 && !exited()) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(std::chrono::seconds(300));
    return c;
  }
  // Polls GET /health (every 50 ms, up to `timeout`) until it reports `status`.
  bool wait_for(const std::string& status, std::chrono::seconds timeout = std::chrono::seconds(120)) {
    auto c = client();
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (auto r = c.Get("/health"); r && json::parse(r->body, nullptr, false).value("status", "") == status)
        return true;
      if (exited()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  // SIGTERM, then the exit status within `timeout` (-1: still running, killed).
  int terminate(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (exited()) return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  const std::string& output() {
    read_some(0);
    return out_;
  }

 private:
  void read_some(int timeout_ms) {
    pollfd p{out_fd_, POLLIN, 0};
    while (::poll(&p, 1, timeout_ms) > 0 && (p.revents & POLLIN)) {
      char buf[4096];
      const ssize_t n = ::read(out_fd_, buf, sizeof buf);
      if (n <= 0) break;
      out_.append(buf, static_cast<size_t>(n));
      timeout_ms = 0;
    }
  }
  bool exited() {
    if (reaped_) return true;
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
    return reaped_;
  }
  pid_t pid_ = -1;
  int out_fd_ = -1, port_ = 0, status_ = 0;
  bool reaped_ = false;
  std::string out_;
};

class ServeKit : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(gill::test::temp_dir("serve"));
    tiny::make_tiny(*dir_ / "tiny", 0);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path root() { return *dir_ / "tiny"; }
  static fs::path image_path() { return gill::test::data_dir() / "clip" / "rgb_45x37.png"; }
  static std::string data_url(const std::string& bytes, const std::string& mime = "image/png") {
    return "data:" + mime + ";base64," + serve_b64_encode(bytes);
  }
  // POST with a JSON body; the answer's status and parsed body (status -1: no answer).
  static std::pair<int, json> post(ServeProcess& s, const std::string& path, const std::string& body,
                                   const httplib::Headers& h = {}) {
    auto r = s.client().Post(path.c_str(), h, body, "application/json");
    if (!r) return {-1, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  static inline fs::path* dir_ = nullptr;
};

// The chat request whose first step is a word and whose next is an [IMG] block (as e2e_gill_cli's `forced`).
inline json forced_chat(const std::string& image_url) {
  return {
      {"model", "gill"},
      {"messages", json::array({{{"role", "user"},
                                 {"content", json::array({{{"type", "text"}, {"text", "A picture of"}},
                                                          {{"type", "image_url"}, {"image_url", {{"url", image_url}}}},
                                                          {{"type", "text"}, {"text", "Show me a dog"}}})}}})},
      {"max_tokens", 6},
      {"steps", 2},
      {"min_word_tokens", 1},
      {"ret_scale_factor", 1000},
      {"always_generate", true},
      {"seed", 7}};
}

}  // namespace gill::test::serve_kit
