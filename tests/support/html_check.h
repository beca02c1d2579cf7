// A small well-formedness checker for the XHTML-style markup gill writes (batch report): every element closed
// and properly nested (void elements self-closed), attributes quoted, only known entities. Collects img srcs.
#pragma once
#include <string>
#include <vector>

namespace gill::test {

struct HtmlCheck {
  bool ok = true;
  std::string error;              // first problem, with its offset
  std::vector<std::string> srcs;  // every <img src="..."> (entities decoded)
};
HtmlCheck check_html(const std::string& html);
// Decodes %XX escapes of a URL path.
std::string url_decode(const std::string& s);

}  // namespace gill::test
