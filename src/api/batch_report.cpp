// index.html for a batch run: one section per item, the prompt (text and images) next to the outputs (text,
// [IMG] decisions with probabilities, generated and retrieved images) and timings. Well-formed XHTML-style
// markup (every element closed, attributes quoted, text escaped), no scripts, images by relative path.
#include <gill/batch.h>
#include <gill/gill.h>

#include <cstdio>
#include <sstream>

#include "io/atomic_file.h"
#include "util/error.h"

namespace gill::batch {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string esc(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default:
        // Control characters other than tab/newline are not allowed in XML text.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') o += "&#xFFFD;";
        else o += c;
    }
  }
  return o;
}

// Percent-encodes a relative path for an src/href attribute ('/' kept).
std::string url_path(const std::string& p) {
  std::string o;
  for (unsigned char c : p) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' || c == '.' ||
        c == '-' || c == '_' || c == '~') {
      o += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      o += buf;
    }
  }
  return o;
}

// A path as the report references it: relative to OUT_DIR.
std::string rel_to(const std::string& path, const fs::path& out_dir) {
  std::error_code ec;
  fs::path rel = fs::relative(fs::absolute(path, ec), fs::absolute(out_dir, ec), ec);
  if (ec || rel.empty()) return path;
  return rel.generic_string();
}

std::string fmt(double v, int digits = 3) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

const char* kStyle = R"(body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em}section{background:#fff;border:1px solid #ddd;border-radius:6px;margin:1em 0;padding:.8em 1em}
section.error{border-color:#c33;background:#fff5f5}h2{font-size:1.05em;margin:0 0 .5em}
h2 .line{color:#888;font-weight:normal;font-size:.85em}.cols{display:flex;gap:2em;flex-wrap:wrap}
.col{flex:1;min-width:280px}h3{font-size:.9em;color:#555;margin:.2em 0}.text{white-space:pre-wrap;margin:.3em 0}
img{max-width:256px;max-height:256px;border:1px solid #ccc;margin:.2em;vertical-align:top}
.block{border-left:3px solid #69c;padding-left:.6em;margin:.5em 0}.block.gen{border-color:#c90}
.decision{font-weight:bold}.muted{color:#888;font-size:.85em}.err{color:#a00;white-space:pre-wrap}
table.sum td{padding:0 1em 0 0}ul{margin:.2em 0;padding-left:1.2em})";

void render_item(std::ostringstream& h, const json& r, const fs::path& out_dir) {
  const bool ok = r.value("status", "") == "ok";
  h << "<section class=\"" << (ok ? "ok" : "error") << "\" id=\"item-" << esc(safe_name(r["id"].get<std::string>()))
    << "\">\n<h2>" << esc(r["id"].get<std::string>()) << " <span class=\"line\">line " << r.value("line", 0)
    << "</span></h2>\n<div class=\"cols\">\n<div class=\"col\">\n<h3>Prompt</h3>\n";
  if (r.contains("prompt") && r["prompt"].is_array()) {
    for (const json& seg : r["prompt"]) {
      if (seg.contains("text") && seg["text"].is_string()) {
        h << "<p class=\"text\">" << esc(seg["text"].get<std::string>()) << "</p>\n";
      } else if (seg.contains("path") && seg["path"].is_string()) {
        const std::string src = rel_to(seg["path"].get<std::string>(), out_dir);
        h << "<img src=\"" << esc(url_path(src)) << "\" alt=\"" << esc(seg.value("image", "")) << "\" />\n";
      }
    }
  }
  if (r.contains("options") && !r["options"].empty())
    h << "<p class=\"muted\">options: " << esc(r["options"].dump()) << "</p>\n";
  h << "</div>\n<div class=\"col\">\n<h3>Output</h3>\n";
  if (!ok) {
    const json& e = r.contains("error") ? r["error"] : json::object();
    h << "<p class=\"err\">" << esc(e.value("code", "error")) << ": " << esc(e.value("message", "")) << "</p>\n";
  } else {
    if (r.contains("scores") && r["scores"].is_array()) {  // a scored line: candidates with their log-likelihood
      h << "<ol class=\"scores\">\n";
      for (const json& c : r["scores"])
        h << "<li>" << fmt(c.value("log_likelihood", 0.0), 6) << " " << esc(c.value("candidate", "")) << "</li>\n";
      h << "</ol>\n";
    }
    h << "<p class=\"text\">" << esc(r.value("text", "")) << "</p>\n";
    for (const json& b : r.value("images", json::array())) {
      const std::string decision = b.value("decision", "");
      const json& pr = b.contains("probabilities") ? b["probabilities"] : json::object();
      h << "<div class=\"block " << esc(decision) << "\">\n<p><span class=\"decision\">"
        << (decision == "gen"   ? "generate"
            : decision == "ret" ? "retrieve"
                                : esc(decision))
        << "</span> <span class=\"muted\">p_gen " << fmt(pr.value("gen", 0.0)) << ", p_ret "
        << fmt(pr.value("ret", 0.0)) << "</span></p>\n";
      if (!b.value("caption", "").empty())
        h << "<p class=\"muted\">caption: " << esc(b.value("caption", "")) << "</p>\n";
      if (b.contains("generated") && b["generated"].is_object() && b["generated"].contains("file"))
        h << "<img src=\"" << esc(url_path(b["generated"].value("file", ""))) << "\" alt=\"generated (seed "
          << b["generated"].value("seed", uint64_t{0}) << ")\" />\n";
      const json& ret = b.contains("retrieved") ? b["retrieved"] : json::array();
      if (!ret.empty()) {
        h << "<ul>\n";
        for (const json& ri : ret) {
          const std::string p = ri.value("path", "");
          h << "<li>" << fmt(ri.value("score", 0.0), 4) << " ";
          std::error_code ec;
          if (!is_url(p) && !p.empty() && fs::is_regular_file(p, ec))
            h << "<img src=\"" << esc(url_path(rel_to(p, out_dir))) << "\" alt=\"" << esc(p) << "\" />";
          else
            h << "<span class=\"muted\">" << esc(p) << "</span>";  // URLs are shown, never fetched
          h << "</li>\n";
        }
        h << "</ul>\n";
      }
      h << "</div>\n";
    }
    if (!r.value("trailing_text", "").empty())
      h << "<p class=\"muted\">after the last block: " << esc(r.value("trailing_text", "")) << "</p>\n";
    if (r.contains("timings")) {
      const json& t = r["timings"];
      h << "<p class=\"muted\">" << fmt(t.value("item_s", 0.0), 2) << " s (prompt " << fmt(t.value("prompt_s", 0.0), 2)
        << ", decode " << fmt(t.value("decode_s", 0.0), 2) << ", image " << fmt(t.value("generation_s", 0.0), 2)
        << "); " << t.value("prompt_tokens", 0) << " prompt + " << t.value("new_tokens", 0) << " new tokens</p>\n";
    }
  }
  h << "</div>\n</div>\n</section>\n";
}

}  // namespace

std::string render_report(const std::vector<json>& results, const fs::path& out_dir, const std::string& title) {
  int64_t n_ok = 0, n_err = 0, n_gen = 0, n_ret = 0;
  for (const json& r : results) {
    (r.value("status", "") == "ok" ? n_ok : n_err)++;
    for (const json& b : r.value("images", json::array())) (b.value("decision", "") == "gen" ? n_gen : n_ret)++;
  }
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n<title>gill batch: " << esc(title)
    << "</title>\n<style>" << kStyle << "</style>\n</head>\n<body>\n<h1>gill batch: " << esc(title) << "</h1>\n"
    << "<table class=\"sum\"><tr><td>items</td><td>" << results.size() << "</td><td>ok</td><td>" << n_ok
    << "</td><td>errors</td><td>" << n_err << "</td><td>[IMG] blocks generated</td><td>" << n_gen
    << "</td><td>retrieved</td><td>" << n_ret << "</td></tr></table>\n";
  for (const json& r : results) render_item(h, r, out_dir);
  h << "<p class=\"muted\">gill " << esc(version()) << "</p>\n</body>\n</html>\n";
  return h.str();
}

fs::path write_report(const fs::path& out_dir, const std::string& title) {
  const fs::path path = out_dir / "index.html";
  io::write_file_atomic(path, render_report(read_results(out_dir), out_dir, title));
  return path;
}

}  // namespace gill::batch
