// libgill_spm — a tiny C-ABI shim around libsentencepiece. It exists because libsentencepiece (protobuf-lite) and
// libtorch (full protobuf) crash at load when linked into one process image: gill never links sentencepiece, it
// dlopen()s this module with RTLD_LOCAL|RTLD_DEEPBIND (see src/tokenizer/sp_tokenizer.cpp), so the two protobuf
// copies never resolve against each other. Every entry point catches all exceptions: nothing escapes the C ABI.
#include <sentencepiece_processor.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

void set_err(char* err, size_t cap, const std::string& msg) {
  if (!err || cap == 0) return;
  const size_t n = msg.size() < cap - 1 ? msg.size() : cap - 1;
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

sentencepiece::SentencePieceProcessor* sp(void* h) { return static_cast<sentencepiece::SentencePieceProcessor*>(h); }

// Copies `s` into a malloc'ed buffer the caller frees with gill_spm_free_buf.
char* dup_bytes(const std::string& s, size_t* len) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (!p) return nullptr;
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  *len = s.size();
  return p;
}

}  // namespace

extern "C" {

int gill_spm_abi_version() { return 1; }

void* gill_spm_load(const char* path, char* err, size_t err_cap) {
  try {
    auto p = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = p->Load(path);
    if (!status.ok()) {
      set_err(err, err_cap, status.ToString());
      return nullptr;
    }
    return p.release();
  } catch (const std::exception& e) {
    set_err(err, err_cap, e.what());
  } catch (...) {
    set_err(err, err_cap, "unknown exception in sentencepiece");
  }
  return nullptr;
}

void gill_spm_free(void* h) { delete sp(h); }
void gill_spm_free_buf(void* p) { std::free(p); }

// Encodes UTF-8 text to ids (no BOS/EOS). Returns 0 on success; *ids is malloc'ed (free with gill_spm_free_buf).
int gill_spm_encode(void* h, const char* text, size_t len, int32_t** ids, size_t* n, char* err, size_t err_cap) {
  try {
    std::vector<int> out;
    const auto status = sp(h)->Encode(std::string(text, len), &out);
    if (!status.ok()) {
      set_err(err, err_cap, status.ToString());
      return 1;
    }
    *ids = static_cast<int32_t*>(std::malloc(sizeof(int32_t) * (out.size() + 1)));
    if (!*ids) return 2;
    for (size_t i = 0; i < out.size(); ++i) (*ids)[i] = out[i];
    *n = out.size();
    return 0;
  } catch (const std::exception& e) {
    set_err(err, err_cap, e.what());
  }
  return 3;
}

// Decodes ids to UTF-8 text. Returns 0 on success; *text is malloc'ed (free with gill_spm_free_buf).
int gill_spm_decode(void* h, const int32_t* ids, size_t n, char** text, size_t* len, char* err, size_t err_cap) {
  try {
    std::vector<int> in(ids, ids + n);
    std::string out;
    const auto status = sp(h)->Decode(in, &out);
    if (!status.ok()) {
      set_err(err, err_cap, status.ToString());
      return 1;
    }
    *text = dup_bytes(out, len);
    return *text ? 0 : 2;
  } catch (const std::exception& e) {
    set_err(err, err_cap, e.what());
  }
  return 3;
}

int gill_spm_size(void* h) { return sp(h)->GetPieceSize(); }
int gill_spm_bos_id(void* h) { return sp(h)->bos_id(); }
int gill_spm_eos_id(void* h) { return sp(h)->eos_id(); }
int gill_spm_pad_id(void* h) { return sp(h)->pad_id(); }
int gill_spm_unk_id(void* h) { return sp(h)->unk_id(); }
int gill_spm_is_control(void* h, int id) { return sp(h)->IsControl(id) ? 1 : 0; }

// Returns the id of `piece`, or -1 when it is not a piece of the model (sentencepiece maps it to unk).
int gill_spm_piece_to_id(void* h, const char* piece, size_t len) {
  try {
    const std::string s(piece, len);
    const int id = sp(h)->PieceToId(s);
    if (id == sp(h)->unk_id() && sp(h)->IdToPiece(id) != s) return -1;
    return id;
  } catch (...) {
    return -1;
  }
}

// Returns 0 and a malloc'ed piece string, or 1 when id is out of range.
int gill_spm_id_to_piece(void* h, int id, char** piece, size_t* len) {
  try {
    if (id < 0 || id >= sp(h)->GetPieceSize()) return 1;
    *piece = dup_bytes(sp(h)->IdToPiece(id), len);
    return *piece ? 0 : 2;
  } catch (...) {
    return 3;
  }
}

}  // extern "C"
