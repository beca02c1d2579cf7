#include "tokenizer/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <nlohmann/json.hpp>

#include "tokenizer/unicode.h"
#include "util/error.h"
#include "util/json.h"

namespace gill::tokenizer {

namespace fs = std::filesystem;

Tokenizer::~Tokenizer() = default;

// ---- Regex ------------------------------------------------------------------------------------------------

namespace {
// PCRE2's \s under UCP also matches U+180E (MONGOLIAN VOWEL SEPARATOR, in its \h list); Python's `regex` and the
// Rust tokenizers match the Unicode White_Space property, which no longer includes it. Spell the property out.
std::string white_space_property(const std::string& pattern) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\' && i + 1 < pattern.size()) {
      const char c = pattern[i + 1];
      out += c == 's' ? "\\p{White_Space}" : c == 'S' ? "\\P{White_Space}" : std::string{'\\', c};
      ++i;
    } else {
      out += pattern[i];
    }
  }
  return out;
}
}  // namespace

Regex::Regex(const std::string& source_pattern) {
  int err = 0;
  PCRE2_SIZE off = 0;
  const std::string pattern = white_space_property(source_pattern);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  code_ = code;
  if (!code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    detail::fail(ErrorCode::kInternal,
                 detail::str_cat("PCRE2 cannot compile '", pattern, "' at ", off, ": ", reinterpret_cast<char*>(buf)));
  }
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void* Regex::new_match_data() const {
  return pcre2_match_data_create_from_pattern(static_cast<pcre2_code*>(code_), nullptr);
}

void Regex::free_match_data(void* md) { pcre2_match_data_free(static_cast<pcre2_match_data*>(md)); }

size_t Regex::match_at(std::string_view text, size_t start, void* mdv, size_t* mstart) const {
  auto* code = static_cast<pcre2_code*>(code_);
  auto* md = static_cast<pcre2_match_data*>(mdv);
  const auto* subj = reinterpret_cast<PCRE2_SPTR>(text.data());
  const int rc = jit_ ? pcre2_jit_match(code, subj, text.size(), start, 0, md, nullptr)
                      : pcre2_match(code, subj, text.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
  if (rc < 0) {
    GILL_CHECK(rc == PCRE2_ERROR_NOMATCH, ErrorCode::kInternal, "PCRE2 match failed with code ", rc);
    return std::string::npos;
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
  *mstart = ov[0];
  return ov[1];
}

// ---- configuration ----------------------------------------------------------------------------------------

namespace {

nlohmann::json read_json(const fs::path& p) {
  return util::parse_json_text(read_text_file(p), p.string());  // read_text_file's kNotFound names the file
}

// `FILE: added token 'X': 'KEY' must be true or false, got VALUE` (pinned by the bad-input cases).
std::string token_flag_message(const util::FieldError& e) {
  return detail::str_cat(e.where, ": '", e.key, "' must be ", e.kind, ", got ", e.value ? e.value->dump() : "");
}

// A special-token value: a str, or an AddedToken dict ({"content", "lstrip", "rstrip", ...}).
std::optional<AddedToken> parse_token(const nlohmann::json& v, const fs::path& file) {
  AddedToken t;
  // json::value() would throw nlohmann's type_error for a non-boolean flag: name the file instead.
  auto flag = [&](const char* key) {
    bool out = false;
    util::read_field(v, key, out, detail::str_cat(file.string(), ": added token '", t.content, "'"),
                     token_flag_message);
    return out;
  };
  if (v.is_string()) {
    t.content = v.get<std::string>();
    t.plain_str = true;
  } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    t.content = v["content"].get<std::string>();
    t.lstrip = flag("lstrip");
    t.rstrip = flag("rstrip");
  } else {
    return std::nullopt;
  }
  return t;
}

const char* const kRoles[] = {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                              "mask_token"};

}  // namespace

const AddedToken* SpecialConfig::role(const std::string& name) const {
  for (const auto& [r, t] : roles)
    if (r == name) return &t;
  return nullptr;
}

SpecialConfig read_special_config(const fs::path& dir) {
  SpecialConfig c;
  auto set_role = [&](const std::string& r, const AddedToken& t) {
    for (auto& [name, tok] : c.roles)
      if (name == r) {
        tok = t;
        return;
      }
    c.roles.emplace_back(r, t);
  };
  if (fs::exists(dir / "tokenizer_config.json")) {
    const auto j = read_json(dir / "tokenizer_config.json");
    GILL_CHECK(j.is_object(), ErrorCode::kFormat, (dir / "tokenizer_config.json").string(), ": not a JSON object");
    if (j.contains("tokenizer_class") && j["tokenizer_class"].is_string())
      c.tokenizer_class = j["tokenizer_class"].get<std::string>();
    if (j.contains("add_bos_token") && j["add_bos_token"].is_boolean()) c.add_bos_token = j["add_bos_token"].get<bool>();
    for (const char* r : kRoles)
      if (j.contains(r))
        if (auto t = parse_token(j[r], dir / "tokenizer_config.json")) set_role(r, *t);
    if (j.contains("added_tokens_decoder") && j["added_tokens_decoder"].is_object()) {
      for (const auto& [k, v] : j["added_tokens_decoder"].items()) {
        auto t = parse_token(v, dir / "tokenizer_config.json");
        if (!t) continue;
        size_t used = 0;
        try {
          t->id = std::stoll(k, &used);
        } catch (const std::logic_error&) {
          used = 0;
        }
        GILL_CHECK(used == k.size() && t->id >= 0, ErrorCode::kFormat, (dir / "tokenizer_config.json").string(),
                   ": added_tokens_decoder key '", k, "' is not a token id");
        c.added.push_back(*t);
      }
    }
  }
  if (fs::exists(dir / "special_tokens_map.json")) {
    const auto j = read_json(dir / "special_tokens_map.json");
    for (const char* r : kRoles)
      if (j.contains(r))
        if (auto t = parse_token(j[r], dir / "special_tokens_map.json")) set_role(r, *t);
  }
  if (fs::exists(dir / "added_tokens.json")) {
    const auto j = read_json(dir / "added_tokens.json");
    GILL_CHECK(j.is_object(), ErrorCode::kFormat, (dir / "added_tokens.json").string(), ": not a {token: id} object");
    for (const auto& [k, v] : j.items()) {
      GILL_CHECK(v.is_number_integer(), ErrorCode::kFormat, (dir / "added_tokens.json").string(), ": id of '", k,
                 "' is not an integer");
      AddedToken t;
      t.content = k;
      t.id = v.get<int64_t>();
      t.plain_str = true;
      c.added.push_back(t);
    }
  }
  return c;
}

std::string clean_up_tokenization(std::string text) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    const std::string f(from), t(to);
    std::string out;
    out.reserve(text.size());
    size_t pos = 0;
    for (size_t hit; (hit = text.find(f, pos)) != std::string::npos; pos = hit + f.size()) {
      out.append(text, pos, hit - pos);
      out.append(t);
    }
    out.append(text, pos, std::string::npos);
    text.swap(out);
  }
  return text;
}

// ---- BpeTokenizerBase -------------------------------------------------------------------------------------

void BpeTokenizerBase::init(const std::vector<std::pair<std::string, int64_t>>& vocab, const SpecialConfig& config,
                            const std::vector<std::pair<std::string, std::string>>& defaults) {
  int64_t max_id = -1;
  for (const auto& [tok, id] : vocab) {
    GILL_CHECK(id >= 0 && id < (int64_t(1) << 31), ErrorCode::kFormat, "vocabulary id ", id, " of '", tok,
               "' is out of range");
    max_id = std::max(max_id, id);
  }
  id_to_tok_.assign(static_cast<size_t>(max_id + 1), std::string());
  tok_to_id_.reserve(vocab.size() * 2);
  for (const auto& [tok, id] : vocab) {
    id_to_tok_[id] = tok;
    tok_to_id_[tok] = id;
  }
  base_size_ = id_to_tok_.size();
  for (const auto& t : config.added) {
    if (tok_to_id_.count(t.content)) continue;
    GILL_CHECK(t.id == static_cast<int64_t>(id_to_tok_.size()), ErrorCode::kFormat, "added token '", t.content,
               "' has id ", t.id, ", expected the next free id ", id_to_tok_.size());
    id_to_tok_.push_back(t.content);
    tok_to_id_[t.content] = t.id;
    no_split_.add(t);
  }
  // Special tokens: known ones become no-split (sanitize_special_tokens), missing ones are added.
  auto add_special = [&](AddedToken tok) {
    auto it = tok_to_id_.find(tok.content);
    if (it == tok_to_id_.end()) {
      tok.id = static_cast<int64_t>(id_to_tok_.size());
      id_to_tok_.push_back(tok.content);
      tok_to_id_[tok.content] = tok.id;
    } else {
      tok.id = it->second;
    }
    no_split_.add(tok);
    special_.insert(tok.id);
  };
  for (const auto& [role, content] : defaults) {
    const AddedToken* t = config.role(role);
    AddedToken tok;
    if (t) {
      tok = *t;
    } else {
      tok.content = content;
    }
    add_special(tok);
  }
  for (const auto& [role, t] : config.roles) {
    bool listed = false;
    for (const auto& d : defaults) listed |= d.first == role;
    if (!listed) add_special(t);
  }
  bos_ = role_id(config, "bos_token");
  eos_ = role_id(config, "eos_token");
  pad_ = role_id(config, "pad_token");
  unk_ = role_id(config, "unk_token");
  for (const auto& [role, content] : defaults) {
    const int64_t id = tok_to_id_.at(config.role(role) ? config.role(role)->content : content);
    if (role == "bos_token") bos_ = id;
    if (role == "eos_token") eos_ = id;
    if (role == "pad_token") pad_ = id;
    if (role == "unk_token") unk_ = id;
  }
}

int64_t BpeTokenizerBase::role_id(const SpecialConfig& config, const std::string& role) const {
  const AddedToken* t = config.role(role);
  if (!t) return -1;
  auto it = tok_to_id_.find(t->content);
  return it == tok_to_id_.end() ? -1 : it->second;
}

std::optional<int64_t> BpeTokenizerBase::token_to_id(const std::string& token) const {
  auto it = tok_to_id_.find(token);
  if (it == tok_to_id_.end()) return std::nullopt;
  return it->second;
}

std::string BpeTokenizerBase::id_to_token(int64_t id) const {
  GILL_CHECK(id >= 0 && id < static_cast<int64_t>(id_to_tok_.size()), ErrorCode::kInvalidArgument, "token id ", id,
             " is out of range [0, ", id_to_tok_.size(), ")");
  return id_to_tok_[id];
}

int64_t BpeTokenizerBase::add_token(const std::string& token, bool special) {
  GILL_CHECK(!token.empty(), ErrorCode::kInvalidArgument, "cannot add an empty token");
  GILL_CHECK(uni::is_valid_utf8(token), ErrorCode::kInvalidArgument, "added token is not valid UTF-8");
  AddedToken t;
  t.content = token;
  t.plain_str = true;
  auto it = tok_to_id_.find(token);
  if (it != tok_to_id_.end()) {
    t.id = it->second;
    // 4.30 _add_tokens: special tokens always join the no-split set, known plain tokens do not.
    if (special) {
      no_split_.add(t);
      special_.insert(t.id);
    }
    return t.id;
  }
  t.id = static_cast<int64_t>(id_to_tok_.size());
  id_to_tok_.push_back(token);
  tok_to_id_[token] = t.id;
  no_split_.add(t);
  if (special) special_.insert(t.id);
  return t.id;
}

std::string BpeTokenizerBase::unmap_bytes(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<uint8_t>(s[i]);
    if (b < 0x80) {  // ASCII: printable bytes map to themselves; the rest are not in the alphabet
      out.push_back(static_cast<char>(b));
      ++i;
      continue;
    }
    const size_t start = i;
    const char32_t cp = uni::next_cp(s, i);
    const int byte = unicode_to_byte(cp);
    if (byte >= 0) {
      out.push_back(static_cast<char>(byte));
    } else {
      out.append(s.substr(start, i - start));
    }
  }
  return out;
}

std::string BpeTokenizerBase::decode_chunks(const std::vector<int64_t>& ids, bool skip_special,
                                            std::string (*group_to_string)(const std::string&)) const {
  std::vector<std::string> chunks;
  std::string group;
  bool have_group = false;
  for (const int64_t id : ids) {
    GILL_CHECK(id >= 0 && id < static_cast<int64_t>(id_to_tok_.size()), ErrorCode::kInvalidArgument, "token id ", id,
               " is out of range [0, ", id_to_tok_.size(), ")");
    if (skip_special && special_.count(id)) continue;
    if (static_cast<size_t>(id) >= base_size_) {  // in added_tokens_encoder: its own chunk
      if (have_group) chunks.push_back(group_to_string(group));
      group.clear();
      have_group = false;
      chunks.push_back(id_to_tok_[id]);
    } else {
      group += id_to_tok_[id];
      have_group = true;
    }
  }
  if (have_group) chunks.push_back(group_to_string(group));
  std::string text;
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (i) text.push_back(' ');
    text += chunks[i];
  }
  return text;
}

// ---- public helpers ---------------------------------------------------------------------------------------

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& dir, const std::string& kind) {
  LoadOptions o;
  o.kind = kind;
  return load_tokenizer(dir, o);
}

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& dir, const LoadOptions& options) {
  GILL_CHECK(fs::is_directory(dir), ErrorCode::kNotFound, "tokenizer folder ", dir.string(), " does not exist");
  std::string kind = options.kind;
  if (kind == "auto") {
    std::string cls;
    if (fs::exists(dir / "tokenizer_config.json")) cls = read_special_config(dir).tokenizer_class;
    if (cls.rfind("CLIPTokenizer", 0) == 0) {
      kind = "clip";
    } else if (cls.rfind("GPT2Tokenizer", 0) == 0) {
      kind = "gpt2";
    } else if (cls.rfind("Llama", 0) == 0 || cls.rfind("T5", 0) == 0 || fs::exists(dir / "tokenizer.model")) {
      kind = "sp";
    } else if (fs::exists(dir / "encoder.json")) {
      kind = "gpt2";
    } else if (fs::exists(dir / "vocab.json")) {
      const std::string head = read_text_file(dir / "vocab.json");
      kind = head.find("\"<|startoftext|>\"") != std::string::npos ? "clip"
             : head.find("\"</s>\"") != std::string::npos      ? "opt"
                                                                : "gpt2";
    } else {
      detail::fail(ErrorCode::kNotFound,
                   detail::str_cat("no tokenizer in ", dir.string(),
                                   " (expected vocab.json + merges.txt, encoder.json + vocab.bpe, or tokenizer.model)"));
    }
  }
  return detail::with_context(detail::str_cat("loading the ", kind, " tokenizer from ", dir.string()), [&] {
    if (kind == "opt" || kind == "gpt2") return make_gpt2_tokenizer(dir, kind, options);
    if (kind == "clip") return make_clip_tokenizer(dir, options);
    if (kind == "sp") return make_sp_tokenizer(dir, options);
    detail::fail(ErrorCode::kInvalidArgument,
                 detail::str_cat("unknown tokenizer kind '", kind, "' (expected auto, opt, gpt2, clip or sp)"));
  });
}

std::vector<int64_t> add_gill_tokens(Tokenizer& tok) {
  tok.add_token("<|image|>", /*special=*/true);
  std::vector<int64_t> ids;
  for (int i = 0; i < 8; ++i) ids.push_back(tok.add_token(detail::str_cat("[IMG", i, "]"), /*special=*/false));
  return ids;
}

std::vector<int64_t> encode_padded(const Tokenizer& tok, const std::string& text, size_t max_length) {
  GILL_CHECK(max_length >= 2, ErrorCode::kInvalidArgument, "max_length must be at least 2, got ", max_length);
  GILL_CHECK(tok.bos_id() >= 0 && tok.eos_id() >= 0 && tok.pad_id() >= 0, ErrorCode::kUnsupported,
             "padded encoding needs bos, eos and pad tokens");
  std::vector<int64_t> content = tok.encode(text, /*add_special_tokens=*/false);
  if (content.size() > max_length - 2) content.resize(max_length - 2);
  std::vector<int64_t> ids;
  ids.reserve(max_length);
  ids.push_back(tok.bos_id());
  ids.insert(ids.end(), content.begin(), content.end());
  ids.push_back(tok.eos_id());
  ids.resize(max_length, tok.pad_id());
  return ids;
}

}  // namespace gill::tokenizer
