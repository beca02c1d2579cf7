#include "tokenizer/bpe.h"

#include <climits>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/unicode.h"
#include "util/error.h"

namespace gill::tokenizer {

namespace {

struct ByteTables {
  std::array<std::string, 256> to_uni;
  std::array<int16_t, 512> from_uni{};  // code points used are < 0x144
  ByteTables() {
    from_uni.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      uni::append_utf8(to_uni[b], cp);
      from_uni[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteTables& tables() {
  static const ByteTables t;
  return t;
}

// SAX handler collecting a flat {string: integer} object.
struct VocabSax : nlohmann::json_sax<nlohmann::json> {
  std::vector<std::pair<std::string, int64_t>>* out;
  std::string key_;
  int depth = 0;
  std::string error;
  bool null() override { return fail("null"); }
  bool boolean(bool) override { return fail("boolean"); }
  bool number_integer(number_integer_t v) override { return add(v); }
  bool number_unsigned(number_unsigned_t v) override { return add(static_cast<int64_t>(v)); }
  bool number_float(number_float_t, const string_t&) override { return fail("float"); }
  bool string(string_t&) override { return fail("string"); }
  bool binary(binary_t&) override { return fail("binary"); }
  bool start_object(std::size_t) override { return ++depth == 1 || fail("nested object"); }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool end_object() override { return --depth, true; }
  bool start_array(std::size_t) override { return fail("array"); }
  bool end_array() override { return true; }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& e) override {
    error = detail::str_cat("at byte ", pos, ": ", e.what());
    return false;
  }
  bool add(int64_t v) {
    out->emplace_back(std::move(key_), v);
    return true;
  }
  bool fail(const char* what) {
    error = detail::str_cat("expected {token: id} entries, found a ", what, " (key '", key_, "')");
    return false;
  }
};

}  // namespace

const std::array<std::string, 256>& byte_to_unicode() { return tables().to_uni; }

int unicode_to_byte(char32_t cp) { return cp < 512 ? tables().from_uni[cp] : -1; }

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  GILL_CHECK(f, ErrorCode::kNotFound, "cannot open ", path.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::pair<std::string, int64_t>> read_vocab_json(const std::filesystem::path& path) {
  const std::string text = read_text_file(path);
  std::vector<std::pair<std::string, int64_t>> out;
  out.reserve(text.size() / 16);
  VocabSax sax;
  sax.out = &out;
  const bool ok = nlohmann::json::sax_parse(text, &sax);
  GILL_CHECK(ok && sax.error.empty(), ErrorCode::kFormat, path.string(), ": not a vocabulary: ", sax.error);
  return out;
}

std::vector<std::pair<std::string, std::string>> read_merges(const std::filesystem::path& path) {
  const std::string text = read_text_file(path);
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(text.size() / 9);
  size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const size_t sp = line.find(' ');
    GILL_CHECK(sp != std::string_view::npos && sp > 0 && sp + 1 < line.size() &&
                   line.find(' ', sp + 1) == std::string_view::npos,
               ErrorCode::kFormat, path.string(), " line ", line_no, ": expected two symbols separated by a space, got '",
               std::string(line), "'");
    out.emplace_back(std::string(line.substr(0, sp)), std::string(line.substr(sp + 1)));
  }
  return out;
}

namespace {

// string -> symbol, used only while the merge table is built: open addressing over (hash tag, symbol) slots
// with the strings kept in a deque (stable addresses), so a lookup is one probe into a compact array plus one
// string compare.
class SymbolTable {
 public:
  explicit SymbolTable(size_t expected) { rehash(expected * 2); }

  // The symbol of s; a new one (the next id) when absent, and `added` is set.
  int32_t intern(std::string_view s, bool& added) {
    const uint64_t h = std::hash<std::string_view>{}(s);
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& slot = slots_[i];
      if (slot.sym < 0) {
        added = true;
        const int32_t sym = static_cast<int32_t>(names_.size());
        names_.push_back(storage_.emplace_back(s));
        slot = Slot{tag, sym};
        if (names_.size() * 2 > slots_.size()) rehash(slots_.size() * 2);
        return sym;
      }
      if (slot.tag == tag && names_[slot.sym] == s) {
        added = false;
        return slot.sym;
      }
    }
  }

 private:
  struct Slot {
    uint32_t tag;
    int32_t sym;  // -1: empty
  };
  void rehash(size_t min_slots) {
    size_t n = 1024;
    while (n < min_slots) n <<= 1;
    slots_.assign(n, Slot{0, -1});
    mask_ = n - 1;
    for (size_t sym = 0; sym < names_.size(); ++sym) {
      const uint64_t h = std::hash<std::string_view>{}(names_[sym]);
      size_t i = h & mask_;
      while (slots_[i].sym >= 0) i = (i + 1) & mask_;
      slots_[i] = Slot{static_cast<uint32_t>(h >> 32), static_cast<int32_t>(sym)};
    }
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  std::deque<std::string> storage_;
  std::vector<std::string_view> names_;
};

}  // namespace

void Bpe::MergeTable::reserve(size_t n) {
  size_t cap = 1024;
  while (cap < n * 2) cap <<= 1;
  if (cap <= slots_.size()) return;
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(cap, Slot{kEmpty, {}});
  mask_ = cap - 1;
  size_ = 0;
  for (const Slot& s : old)
    if (s.key != kEmpty) insert_or_assign(s.key, s.merge);
}

void Bpe::MergeTable::grow() { reserve(slots_.empty() ? 512 : slots_.size()); }

namespace {
inline size_t mix(uint64_t key) {  // splitmix64's finaliser: symbol pairs are small, dense integers
  key ^= key >> 31;
  key *= 0x7fb5d329728ea185ULL;
  key ^= key >> 27;
  key *= 0x81dadef4bc2dd44dULL;
  return static_cast<size_t>(key ^ (key >> 33));
}
}  // namespace

void Bpe::MergeTable::insert_or_assign(uint64_t key, Merge m) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == kEmpty) {
      s = Slot{key, m};
      ++size_;
      return;
    }
    if (s.key == key) {
      s.merge = m;
      return;
    }
  }
}

const Bpe::Merge* Bpe::MergeTable::find(uint64_t key) const {
  if (slots_.empty()) return nullptr;
  for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.key == key) return &s.merge;
    if (s.key == kEmpty) return nullptr;
  }
}

Bpe::Bpe(const std::vector<std::pair<std::string, int64_t>>& vocab,
         const std::vector<std::pair<std::string, std::string>>& merges, std::string end_of_word_suffix,
         int64_t unk_id)
    : suffix_(std::move(end_of_word_suffix)), unk_id_(unk_id) {
  SymbolTable symbols(vocab.size() + merges.size() / 4 + 600);
  sym_vocab_.reserve(vocab.size() + 600);
  auto intern = [&](std::string_view s) {
    bool added = false;
    const int32_t sym = symbols.intern(s, added);
    if (added) sym_vocab_.push_back(unk_id_);
    return sym;
  };
  for (const auto& [tok, id] : vocab) sym_vocab_[static_cast<size_t>(intern(tok))] = id;
  const auto& b2u = byte_to_unicode();
  for (int b = 0; b < 256; ++b) {
    byte_sym_[b] = intern(b2u[b]);
    byte_sym_eow_[b] = suffix_.empty() ? byte_sym_[b] : intern(b2u[b] + suffix_);
  }
  merges_.reserve(merges.size());
  std::string joined;
  for (size_t r = 0; r < merges.size(); ++r) {
    const int32_t a = intern(merges[r].first), b = intern(merges[r].second);
    joined.assign(merges[r].first).append(merges[r].second);
    merges_.insert_or_assign(key(a, b), Merge{static_cast<int32_t>(r), intern(joined)});
  }
}

void Bpe::merge_loop(std::vector<int32_t>& word) const {
  std::vector<int32_t> next;
  next.reserve(word.size());
  while (word.size() > 1) {
    int32_t best_rank = INT32_MAX;
    Merge best{};
    int32_t best_a = 0, best_b = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      const Merge* m = merges_.find(key(word[i], word[i + 1]));
      if (m && m->rank < best_rank) {
        best_rank = m->rank;
        best = *m;
        best_a = word[i];
        best_b = word[i + 1];
      }
    }
    if (best_rank == INT32_MAX) break;
    next.clear();
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == best_a && word[i + 1] == best_b) {
        next.push_back(best.result);
        i += 2;
      } else {
        next.push_back(word[i]);
        ++i;
      }
    }
    word.swap(next);
  }
}

void Bpe::encode_word(std::string_view bytes, std::vector<int64_t>& out) const {
  if (bytes.empty()) return;
  const std::string key_str(bytes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key_str);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> word(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) word[i] = byte_sym_[static_cast<uint8_t>(bytes[i])];
  word.back() = byte_sym_eow_[static_cast<uint8_t>(bytes.back())];
  merge_loop(word);
  std::vector<int64_t> ids(word.size());
  for (size_t i = 0; i < word.size(); ++i) ids[i] = sym_vocab_[word[i]];
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(mu_);
  if (cache_.size() > 200000) cache_.clear();
  cache_.emplace(key_str, std::move(ids));
}

}  // namespace gill::tokenizer
