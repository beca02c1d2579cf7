#include <gill/progress.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace gill {

namespace {
constexpr double kRedrawSeconds = 0.1;   // terminal bar: at most 10 redraws a second
constexpr double kLineSeconds = 10.0;    // log lines: at least every 10% or every 10 s

std::string rate_str(double per_s, const std::string& unit) {
  char buf[64];
  if (!(per_s > 0) || !std::isfinite(per_s)) return "? " + unit + "/s";
  if (per_s >= 1)
    std::snprintf(buf, sizeof buf, "%.2f %s/s", per_s, unit.c_str());
  else
    std::snprintf(buf, sizeof buf, "%.2f s/%s", 1.0 / per_s, unit.c_str());
  return buf;
}
}  // namespace

ProgressStyle progress_style_for(std::FILE* stream, bool quiet) {
  if (quiet) return ProgressStyle::kNone;
  return ::isatty(::fileno(stream)) ? ProgressStyle::kBar : ProgressStyle::kLines;
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

std::string format_progress(const std::string& label, int64_t done, int64_t total, double elapsed_s,
                            const std::string& unit, const std::string& note, int bar_width) {
  const double rate = elapsed_s > 0 ? done / elapsed_s : 0;
  std::string s = label;
  if (total > 0) {
    const double frac = std::min(1.0, std::max(0.0, static_cast<double>(done) / total));
    char pct[8];
    std::snprintf(pct, sizeof pct, "%3d%%", static_cast<int>(frac * 100));
    s += " ";
    s += pct;
    if (bar_width > 0) {
      const int full = static_cast<int>(frac * bar_width);
      s += "|" + std::string(full, '#') + std::string(bar_width - full, ' ') + "|";
    }
    const double eta = rate > 0 ? (total - done) / rate : -1;
    s += " " + std::to_string(done) + "/" + std::to_string(total) + " [" + format_duration(elapsed_s) + "<" +
         format_duration(eta) + ", " + rate_str(rate, unit) + "]";
  } else {
    s += " " + std::to_string(done) + " " + unit + " [" + format_duration(elapsed_s) + ", " + rate_str(rate, unit) +
         "]";
  }
  if (!note.empty()) s += " " + note;
  return s;
}

ProgressBar::ProgressBar(std::string label, int64_t total, ProgressStyle style, std::FILE* out, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), style_(style), out_(out) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
  if (style_ == ProgressStyle::kBar) draw(false);
}

ProgressBar::~ProgressBar() { finish(); }

double ProgressBar::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::set(int64_t done) {
  done_ = done;
  if (style_ == ProgressStyle::kNone || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (style_ == ProgressStyle::kBar) {
    if (since >= kRedrawSeconds || (total_ > 0 && done_ >= total_)) draw(false);
  } else {
    const int decile = total_ > 0 ? static_cast<int>(10 * std::min<int64_t>(done_, total_) / total_) : -1;
    if (decile > last_decile_ || since >= kLineSeconds) {
      last_decile_ = std::max(decile, last_decile_);
      draw(false);
    }
  }
}

void ProgressBar::set_total(int64_t total) { total_ = total; }

void ProgressBar::set_note(std::string note) { note_ = std::move(note); }

void ProgressBar::draw(bool final) {
  last_draw_ = std::chrono::steady_clock::now();
  if (style_ == ProgressStyle::kBar) {
    // \r + erase line, so a shorter line leaves no tail; newline only at the end.
    const std::string line = format_progress(label_, done_, total_, elapsed(), unit_, note_, 24);
    std::fprintf(out_, "\r\033[2K%s%s", line.c_str(), final ? "\n" : "");
  } else {
    const std::string line = format_progress(label_, done_, total_, elapsed(), unit_, note_, 0);
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (style_ == ProgressStyle::kNone) return;
  // A log line for the final state unless the last line already said it.
  if (style_ == ProgressStyle::kBar || !drawn_ || !(total_ > 0 && last_decile_ == 10)) draw(true);
}

ProgressPrinter::~ProgressPrinter() { finish(); }

void ProgressPrinter::operator()(const std::string& stage, int64_t done, int64_t total) {
  if (style_ == ProgressStyle::kNone) return;
  if (!bar_ || stage != stage_) {
    finish();
    stage_ = stage;
    bar_ = std::make_unique<ProgressBar>(stage, total, style_, out_);
  }
  if (total != 0) bar_->set_total(total);
  bar_->set(done);
  if (total > 0 && done >= total) finish();
}

void ProgressPrinter::finish() {
  bar_.reset();
  stage_.clear();
}

std::function<void(const std::string&, int64_t, int64_t)> make_progress_callback(ProgressStyle style,
                                                                                std::FILE* out) {
  auto printer = std::make_shared<ProgressPrinter>(style, out);
  return [printer](const std::string& stage, int64_t done, int64_t total) { (*printer)(stage, done, total); };
}

}  // namespace gill
