// SentencePiece tokenizer (tokenizer.model) through the libgill_spm shim, dlopen()ed with
// RTLD_LOCAL|RTLD_DEEPBIND: libsentencepiece's protobuf-lite must not meet libtorch's protobuf (a process that
// links both crashes in static initialisers before main). See tools/gill_spm/gill_spm.cpp.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/error.h"
#include "util/sanitizer.h"

namespace gill::tokenizer {

namespace fs = std::filesystem;

namespace {

struct SpmApi {
  void* (*load)(const char*, char*, size_t);
  void (*free_model)(void*);
  void (*free_buf)(void*);
  int (*encode)(void*, const char*, size_t, int32_t**, size_t*, char*, size_t);
  int (*decode)(void*, const int32_t*, size_t, char**, size_t*, char*, size_t);
  int (*size)(void*);
  int (*bos_id)(void*);
  int (*eos_id)(void*);
  int (*pad_id)(void*);
  int (*unk_id)(void*);
  int (*is_control)(void*, int);
  int (*piece_to_id)(void*, const char*, size_t);
  int (*id_to_piece)(void*, int, char**, size_t*);
};

fs::path self_exe_dir() {
  std::error_code ec;
  const auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : p.parent_path();
}

const SpmApi& spm_api() {
  static std::once_flag once;
  static SpmApi api{};
  static std::string error;
  std::call_once(once, [] {
#if GILL_ASAN
    // AddressSanitizer refuses RTLD_DEEPBIND (google/sanitizers#611), and without it the two protobufs clash.
    error = "SentencePiece tokenizers are not available in an AddressSanitizer build (the shim is loaded with "
            "RTLD_DEEPBIND, which ASan does not support)";
    return;
#endif
    const auto path = find_spm_shim();
    if (!path) {
      error = "the SentencePiece shim libgill_spm.so was not found (set GILL_SPM_LIB to its path)";
      return;
    }
    void* h = ::dlopen(path->c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!h) {
      error = detail::str_cat("cannot load ", path->string(), ": ", ::dlerror());
      return;
    }
    auto sym = [&](const char* name) {
      void* s = ::dlsym(h, name);
      if (!s && error.empty()) error = detail::str_cat(path->string(), " lacks ", name);
      return s;
    };
    api.load = reinterpret_cast<decltype(api.load)>(sym("gill_spm_load"));
    api.free_model = reinterpret_cast<decltype(api.free_model)>(sym("gill_spm_free"));
    api.free_buf = reinterpret_cast<decltype(api.free_buf)>(sym("gill_spm_free_buf"));
    api.encode = reinterpret_cast<decltype(api.encode)>(sym("gill_spm_encode"));
    api.decode = reinterpret_cast<decltype(api.decode)>(sym("gill_spm_decode"));
    api.size = reinterpret_cast<decltype(api.size)>(sym("gill_spm_size"));
    api.bos_id = reinterpret_cast<decltype(api.bos_id)>(sym("gill_spm_bos_id"));
    api.eos_id = reinterpret_cast<decltype(api.eos_id)>(sym("gill_spm_eos_id"));
    api.pad_id = reinterpret_cast<decltype(api.pad_id)>(sym("gill_spm_pad_id"));
    api.unk_id = reinterpret_cast<decltype(api.unk_id)>(sym("gill_spm_unk_id"));
    api.is_control = reinterpret_cast<decltype(api.is_control)>(sym("gill_spm_is_control"));
    api.piece_to_id = reinterpret_cast<decltype(api.piece_to_id)>(sym("gill_spm_piece_to_id"));
    api.id_to_piece = reinterpret_cast<decltype(api.id_to_piece)>(sym("gill_spm_id_to_piece"));
  });
  GILL_CHECK(error.empty(), ErrorCode::kUnsupported, error);
  return api;
}

class SpTokenizer final : public Tokenizer {
 public:
  explicit SpTokenizer(const fs::path& dir) : api_(spm_api()) {
    const fs::path model = dir / "tokenizer.model";
    GILL_CHECK(fs::exists(model), ErrorCode::kNotFound, "missing ", model.string());
    char err[512] = {0};
    h_ = api_.load(model.c_str(), err, sizeof(err));
    GILL_CHECK(h_, ErrorCode::kFormat, model.string(), ": ", err);
    base_size_ = static_cast<size_t>(api_.size(h_));
    for (int i = 0; i < static_cast<int>(base_size_); ++i)
      if (api_.is_control(h_, i)) special_.push_back(i);
  }
  ~SpTokenizer() override { api_.free_model(h_); }

  std::string kind() const override { return "sp"; }

  // add_special_tokens prepends BOS (LLaMA-style); added tokens are cut out before SentencePiece.
  std::vector<int64_t> encode(const std::string& input, bool add_special_tokens) const override {
    const std::string text = uni::decode_replace(input);
    std::vector<int64_t> ids;
    if (add_special_tokens && bos_id() >= 0) ids.push_back(bos_id());
    for (const Segment& seg : added_.split(text, AddedTokenStrip::kModern)) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
        continue;
      }
      int32_t* out = nullptr;
      size_t n = 0;
      char err[512] = {0};
      const int rc = api_.encode(h_, seg.text.data(), seg.text.size(), &out, &n, err, sizeof(err));
      GILL_CHECK(rc == 0, ErrorCode::kInternal, "sentencepiece encode failed: ", err);
      ids.insert(ids.end(), out, out + n);
      api_.free_buf(out);
    }
    return ids;
  }

  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override {
    std::string text;
    std::vector<int32_t> run;
    auto flush = [&] {
      if (run.empty()) return;
      char* out = nullptr;
      size_t n = 0;
      char err[512] = {0};
      const int rc = api_.decode(h_, run.data(), run.size(), &out, &n, err, sizeof(err));
      GILL_CHECK(rc == 0, ErrorCode::kInternal, "sentencepiece decode failed: ", err);
      text.append(out, n);
      api_.free_buf(out);
      run.clear();
    };
    for (const int64_t id : ids) {
      GILL_CHECK(id >= 0 && id < static_cast<int64_t>(size()), ErrorCode::kInvalidArgument, "token id ", id,
                 " is out of range [0, ", size(), ")");
      const bool special = std::find(special_.begin(), special_.end(), id) != special_.end();
      if (skip_special_tokens && special) continue;
      if (static_cast<size_t>(id) >= base_size_) {
        flush();
        text += added_by_id_[id - base_size_];
      } else {
        run.push_back(static_cast<int32_t>(id));
      }
    }
    flush();
    return text;
  }

  std::optional<int64_t> token_to_id(const std::string& token) const override {
    if (const AddedToken* t = added_.find(token)) return t->id;
    const int id = api_.piece_to_id(h_, token.data(), token.size());
    if (id < 0) return std::nullopt;
    return id;
  }

  std::string id_to_token(int64_t id) const override {
    GILL_CHECK(id >= 0 && id < static_cast<int64_t>(size()), ErrorCode::kInvalidArgument, "token id ", id,
               " is out of range [0, ", size(), ")");
    if (static_cast<size_t>(id) >= base_size_) return added_by_id_[id - base_size_];
    char* p = nullptr;
    size_t n = 0;
    GILL_CHECK(api_.id_to_piece(h_, static_cast<int>(id), &p, &n) == 0, ErrorCode::kInternal,
               "sentencepiece id_to_piece failed for ", id);
    std::string s(p, n);
    api_.free_buf(p);
    return s;
  }

  size_t size() const override { return base_size_ + added_by_id_.size(); }
  int64_t bos_id() const override { return api_.bos_id(h_); }
  int64_t eos_id() const override { return api_.eos_id(h_); }
  int64_t pad_id() const override { return api_.pad_id(h_); }
  std::vector<int64_t> special_ids() const override { return special_; }

  int64_t add_token(const std::string& token, bool special) override {
    GILL_CHECK(!token.empty() && uni::is_valid_utf8(token), ErrorCode::kInvalidArgument,
               "added token must be non-empty valid UTF-8");
    if (auto id = token_to_id(token)) return *id;
    AddedToken t;
    t.content = token;
    t.id = static_cast<int64_t>(size());
    added_by_id_.push_back(token);
    added_.add(t);
    if (special) special_.push_back(t.id);
    return t.id;
  }

 private:
  const SpmApi& api_;
  void* h_ = nullptr;
  size_t base_size_ = 0;
  AddedVocab added_;
  std::vector<std::string> added_by_id_;
  std::vector<int64_t> special_;
};

}  // namespace

std::optional<fs::path> find_spm_shim() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("GILL_SPM_LIB")) candidates.emplace_back(env);
  const fs::path exe = self_exe_dir();
  if (!exe.empty()) {
    candidates.push_back(exe / "libgill_spm.so");
    candidates.push_back(exe / ".." / "libgill_spm.so");  // test binaries live in build/tests/
    candidates.push_back(exe / ".." / "lib" / "libgill_spm.so");
    candidates.push_back(exe / ".." / "lib" / "gill" / "libgill_spm.so");
  }
#ifdef GILL_SPM_BUILD_PATH
  candidates.emplace_back(GILL_SPM_BUILD_PATH);
#endif
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) return fs::weakly_canonical(c, ec);
  }
  return std::nullopt;
}

std::unique_ptr<Tokenizer> make_sp_tokenizer(const fs::path& dir, const LoadOptions& options) {
  return std::make_unique<SpTokenizer>(dir);
}

}  // namespace gill::tokenizer
