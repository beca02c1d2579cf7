// Progress reporting on a stream (stderr): a redrawn bar with rate and ETA when the stream is a terminal, plain
// log lines (every 10% or 10 s) otherwise, nothing when quiet. Small and torch-free; one thread at a time.
//
//   ProgressBar bar("denoise", n_steps, progress_style_for(stderr, quiet));
//   for (...) { ...; bar.add(); }          // finish() (or the destructor) ends the line
//
// ProgressPrinter adapts the (stage, done, total) callbacks of gill::ProgressCallback to bars, one per stage.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

namespace gill {

enum class ProgressStyle { kNone, kBar, kLines };

// kNone when quiet, kBar when `stream` is a terminal, kLines otherwise.
ProgressStyle progress_style_for(std::FILE* stream, bool quiet);

// "42s" -> "00:42", "3725s" -> "1:02:05"; "?" for a negative or non-finite value.
std::string format_duration(double seconds);
// One progress line without terminal codes: "LABEL  42%|#####     | 21/50 [00:09<00:12, 2.31 it/s] NOTE".
// total <= 0 (unknown) gives "LABEL 21 it [00:09, 2.31 it/s] NOTE". `bar_width` 0 leaves the bar out.
std::string format_progress(const std::string& label, int64_t done, int64_t total, double elapsed_s,
                            const std::string& unit, const std::string& note, int bar_width);

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, ProgressStyle style, std::FILE* out = stderr,
              std::string unit = "it");
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void set(int64_t done);  // absolute position
  void add(int64_t n = 1) { set(done_ + n); }
  void set_total(int64_t total);
  void set_note(std::string note);  // shown after the numbers (e.g. the current item's id)
  // Draws the final state and ends the line. Idempotent.
  void finish();
  int64_t done() const { return done_; }

 private:
  void draw(bool final);
  double elapsed() const;

  std::string label_, unit_, note_;
  int64_t total_ = 0, done_ = 0;
  ProgressStyle style_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int last_decile_ = 0;  // log lines: the first at 10%
  bool drawn_ = false, finished_ = false;
};

// Turns a stream of (stage, done, total) reports into one bar per stage: a new stage finishes the previous bar.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(ProgressStyle style, std::FILE* out = stderr) : style_(style), out_(out) {}
  ~ProgressPrinter();
  ProgressPrinter(const ProgressPrinter&) = delete;
  ProgressPrinter& operator=(const ProgressPrinter&) = delete;
  void operator()(const std::string& stage, int64_t done, int64_t total);
  void finish();  // ends the current bar

 private:
  ProgressStyle style_;
  std::FILE* out_;
  std::string stage_;
  std::unique_ptr<ProgressBar> bar_;
};

// A copyable callback (the shape of gill::ProgressCallback) that draws through a shared ProgressPrinter.
std::function<void(const std::string&, int64_t, int64_t)> make_progress_callback(ProgressStyle style,
                                                                                std::FILE* out = stderr);

}  // namespace gill
