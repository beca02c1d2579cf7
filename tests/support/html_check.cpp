#include "html_check.h"

#include <cctype>
#include <cstdlib>

namespace gill::test {

namespace {

bool valid_entities(const std::string& text, std::string& bad) {
  for (size_t i = text.find('&'); i != std::string::npos; i = text.find('&', i + 1)) {
    const size_t semi = text.find(';', i);
    const std::string ent = semi == std::string::npos ? text.substr(i, 10) : text.substr(i, semi - i + 1);
    const bool ok = ent == "&amp;" || ent == "&lt;" || ent == "&gt;" || ent == "&quot;" || ent == "&#39;" ||
                    (ent.size() > 4 && ent.rfind("&#x", 0) == 0) ||
                    (ent.size() > 3 && ent[1] == '#' && std::isdigit(static_cast<unsigned char>(ent[2])));
    if (!ok) {
      bad = ent;
      return false;
    }
  }
  return true;
}

std::string decode_entities(std::string s) {
  const std::pair<const char*, const char*> map[] = {
      {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&amp;", "&"}};
  for (const auto& [from, to] : map)
    for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + 1)) s.replace(p, std::string(from).size(), to);
  return s;
}

}  // namespace

std::string url_decode(const std::string& s) {
  std::string o;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      o += static_cast<char>(std::strtol(s.substr(i + 1, 2).c_str(), nullptr, 16));
      i += 2;
    } else {
      o += s[i];
    }
  }
  return o;
}

HtmlCheck check_html(const std::string& html) {
  HtmlCheck r;
  auto fail = [&](size_t at, const std::string& why) {
    if (r.ok) {
      r.ok = false;
      r.error = "at offset " + std::to_string(at) + ": " + why;
    }
  };
  std::vector<std::string> stack;
  size_t i = 0;
  if (html.rfind("<!DOCTYPE html>", 0) != 0) fail(0, "no <!DOCTYPE html>");
  else i = 15;
  bool in_style = false;
  while (i < html.size() && r.ok) {
    const size_t lt = html.find('<', i);
    const std::string text = html.substr(i, (lt == std::string::npos ? html.size() : lt) - i);
    std::string bad;
    if (!in_style && !valid_entities(text, bad)) fail(i, "bad entity " + bad);
    if (!in_style && text.find('>') != std::string::npos) fail(i, "raw '>' in text");
    if (lt == std::string::npos) break;
    const size_t gt = html.find('>', lt);
    if (gt == std::string::npos) {
      fail(lt, "unterminated tag");
      break;
    }
    std::string tag = html.substr(lt + 1, gt - lt - 1);
    i = gt + 1;
    if (tag.empty()) {
      fail(lt, "empty tag");
      break;
    }
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name)
        fail(lt, "</" + name + "> closes <" + (stack.empty() ? std::string("nothing") : stack.back()) + ">");
      else
        stack.pop_back();
      if (name == "style") in_style = false;
      continue;
    }
    const bool self_closed = tag.back() == '/';
    if (self_closed) tag.pop_back();
    size_t p = 0;
    while (p < tag.size() && !std::isspace(static_cast<unsigned char>(tag[p]))) ++p;
    const std::string name = tag.substr(0, p);
    // Attributes: name="value" pairs.
    while (p < tag.size()) {
      while (p < tag.size() && std::isspace(static_cast<unsigned char>(tag[p]))) ++p;
      if (p >= tag.size()) break;
      const size_t eq = tag.find('=', p);
      if (eq == std::string::npos || eq + 1 >= tag.size() || tag[eq + 1] != '"') {
        fail(lt, "unquoted attribute in <" + name + ">");
        break;
      }
      const std::string attr = tag.substr(p, eq - p);
      const size_t close = tag.find('"', eq + 2);
      if (close == std::string::npos) {
        fail(lt, "unterminated attribute in <" + name + ">");
        break;
      }
      const std::string value = tag.substr(eq + 2, close - eq - 2);
      std::string bad_entity;
      if (!valid_entities(value, bad_entity)) fail(lt, "bad entity " + bad_entity + " in attribute");
      if (name == "img" && attr == "src") r.srcs.push_back(decode_entities(value));
      p = close + 1;
    }
    const bool is_void = name == "img" || name == "meta" || name == "br" || name == "hr" || name == "link";
    if (is_void && !self_closed) fail(lt, "<" + name + "> not self-closed");
    if (!is_void && self_closed) fail(lt, "<" + name + "/> self-closed");
    if (!is_void) {
      stack.push_back(name);
      if (name == "style") in_style = true;
    }
  }
  if (r.ok && !stack.empty()) fail(html.size(), "unclosed <" + stack.back() + ">");
  return r;
}

}  // namespace gill::test
