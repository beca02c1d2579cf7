#include "tokenizer/bpe.h"

#include <algorithm>
#include <climits>
#include <functional>
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

// The reference's bpe() repeatedly takes the lowest-ranked adjacent pair and merges every occurrence of it left to
// right: quadratic in the word length (a 100 kB word without spaces: ~10^9-10^10 pair lookups). This computes the same
// thing in O(n log n) with a linked list of symbols and a min-heap of candidate pairs ordered by (rank, position): all
// candidates of the lowest rank are popped in position order and merged left to right (skipping overlaps, as the
// reference does), and only then are the pairs the merges created pushed, so the next round again sees the lowest rank
// over the whole word, exactly as the reference's next iteration does. A merge cannot create another occurrence of the
// pair it merged (the result is a longer string). Stale entries (a neighbour merged since) are skipped by checking the
// symbols.
void Bpe::merge_loop(std::vector<int32_t>& word) const {
  const size_t n = word.size();
  if (n < 2) return;
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t left, right;  // the symbols the pair had when pushed
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<int32_t> next(n), prev(n);
  for (size_t i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
    prev[i] = static_cast<int32_t>(i) - 1;
  }
  std::vector<Candidate> heap;
  heap.reserve(n);
  auto push = [&](int32_t i) {
    if (i < 0) return;
    const int32_t j = next[static_cast<size_t>(i)];
    if (j < 0) return;
    const int32_t a = word[static_cast<size_t>(i)], b = word[static_cast<size_t>(j)];
    if (const Merge* m = merges_.find(key(a, b))) {
      heap.push_back(Candidate{m->rank, i, a, b});
      std::push_heap(heap.begin(), heap.end(), std::greater<Candidate>());
    }
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  std::vector<char> alive(n, 1);
  std::vector<int32_t> merged;
  while (!heap.empty()) {
    const int32_t rank = heap.front().rank;
    merged.clear();
    while (!heap.empty() && heap.front().rank == rank) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<Candidate>());
      const Candidate c = heap.back();
      heap.pop_back();
      const size_t i = static_cast<size_t>(c.pos);
      const int32_t j = next[i];
      if (!alive[i] || j < 0 || word[i] != c.left || word[static_cast<size_t>(j)] != c.right) continue;
      word[i] = merges_.find(key(c.left, c.right))->result;
      alive[static_cast<size_t>(j)] = 0;
      next[i] = next[static_cast<size_t>(j)];
      if (next[i] >= 0) prev[static_cast<size_t>(next[i])] = static_cast<int32_t>(i);
      merged.push_back(c.pos);
    }
    for (const int32_t i : merged) {
      push(prev[static_cast<size_t>(i)]);
      push(i);
    }
  }
  size_t out = 0;
  for (int32_t i = 0; i >= 0; i = next[static_cast<size_t>(i)]) word[out++] = word[static_cast<size_t>(i)];
  word.resize(out);
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
