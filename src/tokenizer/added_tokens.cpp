#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace gill::tokenizer {

void AddedVocab::add(AddedToken token) {
  if (token.content.empty()) return;
  auto it = std::find_if(tokens_.begin(), tokens_.end(), [&](const AddedToken& t) { return t.content == token.content; });
  if (it != tokens_.end()) {
    *it = std::move(token);
  } else {
    tokens_.push_back(std::move(token));
  }
  for (auto& v : by_first_) v.clear();
  for (size_t i = 0; i < tokens_.size(); ++i) by_first_[static_cast<uint8_t>(tokens_[i].content[0])].push_back(i);
  for (auto& v : by_first_)
    std::stable_sort(v.begin(), v.end(),
                     [&](size_t a, size_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
}

const AddedToken* AddedVocab::find(const std::string& content) const {
  for (const auto& t : tokens_)
    if (t.content == content) return &t;
  return nullptr;
}

std::vector<Segment> AddedVocab::split(std::string_view text, AddedTokenStrip strip) const {
  struct Piece {
    std::string_view text;
    const AddedToken* tok;
  };
  std::vector<Piece> pieces;
  size_t start = 0;
  if (!tokens_.empty()) {
    for (size_t i = 0; i < text.size();) {
      const auto& cands = by_first_[static_cast<uint8_t>(text[i])];
      const AddedToken* hit = nullptr;
      for (size_t c : cands) {
        const auto& t = tokens_[c];
        if (text.compare(i, t.content.size(), t.content) == 0) {
          hit = &t;
          break;
        }
      }
      if (!hit) {
        ++i;
        continue;
      }
      if (i > start) pieces.push_back({text.substr(start, i - start), nullptr});
      pieces.push_back({std::string_view(hit->content), hit});
      i += hit->content.size();
      start = i;
    }
  }
  if (start < text.size()) pieces.push_back({text.substr(start), nullptr});

  // tokenize() of transformers 4.30: for each token, strip its neighbours (neighbours that are tokens
  // themselves are unaffected: token contents hold no surrounding whitespace).
  for (size_t i = 0; i < pieces.size(); ++i) {
    const AddedToken* t = pieces[i].tok;
    if (!t) continue;
    const bool legacy = strip == AddedTokenStrip::kLegacy430 && t->plain_str;
    if ((legacy || t->rstrip) && i + 1 < pieces.size() && !pieces[i + 1].tok)
      pieces[i + 1].text = uni::py_lstrip(pieces[i + 1].text);
    if ((legacy || t->lstrip) && i > 0 && !pieces[i - 1].tok) pieces[i - 1].text = uni::py_rstrip(pieces[i - 1].text);
  }
  std::vector<Segment> out;
  out.reserve(pieces.size());
  for (const auto& p : pieces) {
    if (p.tok) {
      out.push_back({p.text, p.tok->id});
    } else if (!p.text.empty()) {
      out.push_back({p.text, -1});
    }
  }
  return out;
}

}  // namespace gill::tokenizer
