// .npy reader (numpy/lib/format.py: magic, version, little-endian header length, a Python dict literal header,
// data). Retrieval embeddings: GILL's scripts/extract_img_embs.py pickles {'paths', 'embeddings'}.
#include "io/npy.h"

#include <cstring>
#include <fstream>

#include "io/atomic_file.h"
#include "io/mapped_file.h"
#include "util/error.h"

namespace gill::io {

using detail::str_cat;
namespace fs = std::filesystem;

DType npy_dtype(const std::string& descr, const std::string& where) {
  if (descr.size() >= 2 && descr[0] == '>' && descr.substr(1) != "i1" && descr.substr(1) != "u1" &&
      descr.substr(1) != "b1")
    detail::fail(ErrorCode::kUnsupported, str_cat(where, ": big-endian dtype '", descr, "' is not supported"));
  const std::string t = (descr.size() >= 2 && (descr[0] == '<' || descr[0] == '|' || descr[0] == '=' || descr[0] == '>'))
                            ? descr.substr(1)
                            : descr;
  static const std::pair<const char*, DType> kTypes[] = {{"f4", DType::F32}, {"f2", DType::F16}, {"f8", DType::F64},
                                                         {"i8", DType::I64}, {"i4", DType::I32}, {"i2", DType::I16},
                                                         {"i1", DType::I8},  {"u1", DType::U8},  {"b1", DType::BOOL}};
  for (auto& [n, d] : kTypes)
    if (t == n) return d;
  detail::fail(ErrorCode::kUnsupported, str_cat(where, ": numpy dtype '", descr, "' is not supported"));
}

namespace {

// Minimal parser for the header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
struct HeaderParser {
  const std::string& s;
  const std::string& where;
  size_t p = 0;
  [[noreturn]] void bad(const std::string& what) const {
    detail::fail(ErrorCode::kFormat, str_cat(where, ": bad .npy header (", what, "): ", s.substr(0, 200)));
  }
  void ws() {
    while (p < s.size() && (s[p] == ' ' || s[p] == '\n' || s[p] == '\t')) ++p;
  }
  bool eat(char c) {
    ws();
    if (p < s.size() && s[p] == c) {
      ++p;
      return true;
    }
    return false;
  }
  std::string str() {
    ws();
    if (p >= s.size() || (s[p] != '\'' && s[p] != '"')) bad("expected a string");
    const char q = s[p++];
    const size_t e = s.find(q, p);
    if (e == std::string::npos) bad("unterminated string");
    std::string out = s.substr(p, e - p);
    p = e + 1;
    return out;
  }
  std::string word() {
    ws();
    size_t b = p;
    while (p < s.size() && (std::isalnum(static_cast<unsigned char>(s[p])) || s[p] == '_')) ++p;
    return s.substr(b, p - b);
  }
};

}  // namespace

NpyHeader read_npy_header(const fs::path& path) {
  auto f = MappedFile::open(path);
  const std::string where = path.string();
  const uint8_t* d = f->data();
  const size_t n = f->size();
  if (n < 10 || std::memcmp(d, "\x93NUMPY", 6) != 0)
    detail::fail(ErrorCode::kFormat, str_cat(where, ": not a .npy file (no \\x93NUMPY magic)"));
  NpyHeader h;
  h.major = d[6];
  if (h.major < 1 || h.major > 3)
    detail::fail(ErrorCode::kUnsupported, str_cat(where, ": .npy format version ", h.major, " is not supported"));
  size_t hlen, start;
  if (h.major == 1) {
    hlen = d[8] | (size_t(d[9]) << 8);
    start = 10;
  } else {
    if (n < 12) detail::fail(ErrorCode::kFormat, str_cat(where, ": truncated .npy header"));
    hlen = d[8] | (size_t(d[9]) << 8) | (size_t(d[10]) << 16) | (size_t(d[11]) << 24);
    start = 12;
  }
  if (hlen > n - start) detail::fail(ErrorCode::kFormat, str_cat(where, ": truncated .npy header"));
  const std::string text(reinterpret_cast<const char*>(d + start), hlen);
  HeaderParser P{text, where};
  if (!P.eat('{')) P.bad("expected '{'");
  bool have_descr = false, have_shape = false;
  while (!P.eat('}')) {
    const std::string key = P.str();
    if (!P.eat(':')) P.bad("expected ':'");
    if (key == "descr") {
      h.descr = P.str();
      have_descr = true;
    } else if (key == "fortran_order") {
      const std::string w = P.word();
      if (w != "True" && w != "False") P.bad("fortran_order");
      h.fortran_order = w == "True";
    } else if (key == "shape") {
      if (!P.eat('(')) P.bad("shape");
      while (!P.eat(')')) {
        const std::string w = P.word();
        if (w.empty() || w.size() > 15 || w.find_first_not_of("0123456789") != std::string::npos) P.bad("shape");
        h.shape.push_back(std::stoll(w));
        P.eat(',');
      }
      have_shape = true;
    } else {
      P.bad("unknown key '" + key + "'");
    }
    P.eat(',');
    if (P.p >= text.size()) P.bad("unterminated");
  }
  if (!have_descr || !have_shape) P.bad("missing descr or shape");
  h.dtype = npy_dtype(h.descr, where);
  h.data_offset = start + hlen;
  uint64_t numel = 1;
  for (auto s : h.shape) {
    if (s != 0 && numel > (uint64_t(1) << 50) / static_cast<uint64_t>(s)) P.bad("shape too large");
    numel *= static_cast<uint64_t>(s);
  }
  const uint64_t bytes = numel * dtype_size(h.dtype);
  if (bytes != n - h.data_offset)
    detail::fail(ErrorCode::kFormat, str_cat(where, ": .npy data holds ", n - h.data_offset, " bytes but shape ",
                                             detail::shape_str(h.shape), " of ", h.descr, " needs ", bytes));
  return h;
}

bool is_npy_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char m[6] = {};
  in.read(m, 6);
  return in.gcount() == 6 && std::memcmp(m, "\x93NUMPY", 6) == 0;
}

torch::Tensor load_npy(const fs::path& path) {
  const NpyHeader h = read_npy_header(path);
  auto f = MappedFile::open(path);
  const auto opts = torch::TensorOptions().dtype(to_torch(h.dtype));
  int64_t numel = 1;
  for (auto s : h.shape) numel *= s;
  if (numel == 0) return torch::empty(h.shape, opts);
  std::vector<int64_t> shape = h.shape;
  if (h.fortran_order) std::reverse(shape.begin(), shape.end());
  void* ptr = f->data() + h.data_offset;
  torch::Tensor t = torch::from_blob(ptr, shape, [f](void*) mutable { f.reset(); }, opts);
  if (reinterpret_cast<uintptr_t>(ptr) % dtype_size(h.dtype) != 0) t = t.clone();
  if (h.fortran_order) {
    std::vector<int64_t> perm(shape.size());
    for (size_t k = 0; k < perm.size(); ++k) perm[k] = static_cast<int64_t>(perm.size() - 1 - k);
    t = t.permute(perm);
  }
  return t;
}

torch::Tensor ndarray_to_tensor(const pickle::Value& v, const std::string& where) {
  if (v.kind != pickle::Kind::kNdArray) detail::fail(ErrorCode::kFormat, str_cat(where, ": not a numpy array"));
  const DType dt = npy_dtype(v.storage_type, where);
  uint64_t numel = 1;
  for (auto s : v.sizes) {
    if (s < 0 || (s != 0 && numel > (uint64_t(1) << 50) / static_cast<uint64_t>(s)))
      detail::fail(ErrorCode::kFormat, str_cat(where, ": bad numpy array shape"));
    numel *= static_cast<uint64_t>(s);
  }
  if (numel * dtype_size(dt) != v.bytes.size())
    detail::fail(ErrorCode::kFormat, str_cat(where, ": numpy array of shape ", detail::shape_str(v.sizes), " ",
                                             v.storage_type, " carries ", v.bytes.size(), " bytes, expected ",
                                             numel * dtype_size(dt)));
  std::vector<int64_t> shape = v.sizes;
  if (v.i) std::reverse(shape.begin(), shape.end());
  torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(to_torch(dt)));
  if (!v.bytes.empty()) std::memcpy(t.data_ptr(), v.bytes.data(), v.bytes.size());
  if (v.i) {
    std::vector<int64_t> perm(shape.size());
    for (size_t k = 0; k < perm.size(); ++k) perm[k] = static_cast<int64_t>(perm.size() - 1 - k);
    t = t.permute(perm).contiguous();
  }
  return t;
}

pickle::ValuePtr load_pickle_file(const fs::path& path) {
  auto f = MappedFile::open(path);
  const std::string where = path.string();
  if (f->size() < 2 || f->data()[0] != 0x80)
    detail::fail(ErrorCode::kFormat, str_cat(where, ": not a pickle (protocol 2+) file"));
  return pickle::unpickle({reinterpret_cast<const char*>(f->data()), f->size()}, where);
}

RetrievalEmbeddings load_retrieval_embeddings(const fs::path& path) {
  const std::string where = path.string();
  pickle::ValuePtr root = load_pickle_file(path);
  if (root->kind != pickle::Kind::kDict)
    detail::fail(ErrorCode::kFormat, str_cat(where, ": expected a dict {'paths', 'embeddings'}, got a ",
                                             pickle::kind_name(root->kind)));
  pickle::ValuePtr paths, embs;
  for (auto& [k, v] : root->entries) {
    if (k->kind != pickle::Kind::kString) continue;
    if (k->str == "paths") paths = v;
    if (k->str == "embeddings") embs = v;
  }
  if (!paths || !embs) detail::fail(ErrorCode::kFormat, str_cat(where, ": missing 'paths' or 'embeddings'"));
  RetrievalEmbeddings out;
  if (paths->kind != pickle::Kind::kList && paths->kind != pickle::Kind::kTuple)
    detail::fail(ErrorCode::kFormat, str_cat(where, ": 'paths' is not a list"));
  for (auto& p : paths->items) {
    if (p->kind != pickle::Kind::kString) detail::fail(ErrorCode::kFormat, str_cat(where, ": a path is not a string"));
    out.paths.push_back(p->str);
  }
  if (embs->kind == pickle::Kind::kNdArray) {
    out.embeddings = ndarray_to_tensor(*embs, where);
  } else if (embs->kind == pickle::Kind::kList || embs->kind == pickle::Kind::kTuple) {
    std::vector<torch::Tensor> rows;
    for (size_t k = 0; k < embs->items.size(); ++k) {
      torch::Tensor r = ndarray_to_tensor(*embs->items[k], str_cat(where, ": embeddings[", k, "]"));
      if (r.dim() == 2 && r.size(0) == 1) r = r[0];
      if (r.dim() != 1)
        detail::fail(ErrorCode::kFormat, str_cat(where, ": embeddings[", k, "] has shape ",
                                                 detail::shape_str(r.sizes().vec()), ", expected [D] or [1, D]"));
      if (!rows.empty() && r.size(0) != rows[0].size(0))
        detail::fail(ErrorCode::kFormat, str_cat(where, ": embeddings[", k, "] has ", r.size(0),
                                                 " dimensions, embeddings[0] has ", rows[0].size(0)));
      rows.push_back(r);
    }
    out.embeddings = rows.empty() ? torch::empty({0, 0}) : torch::stack(rows);
  } else {
    detail::fail(ErrorCode::kFormat, str_cat(where, ": 'embeddings' is neither a list nor an array"));
  }
  if (out.embeddings.dim() != 2)
    detail::fail(ErrorCode::kFormat, str_cat(where, ": embeddings are not a matrix"));
  if (!out.embeddings.is_floating_point())
    detail::fail(ErrorCode::kFormat, str_cat(where, ": embeddings are not floating point"));
  out.embeddings = out.embeddings.to(torch::kFloat32).contiguous();
  if (out.embeddings.size(0) != static_cast<int64_t>(out.paths.size()))
    detail::fail(ErrorCode::kFormat, str_cat(where, ": ", out.paths.size(), " paths but ", out.embeddings.size(0),
                                             " embeddings"));
  return out;
}

}  // namespace gill::io

namespace gill::io {

namespace {

// Pickle opcode emitters (Lib/pickle.py _Pickler, protocol 3).
struct PickleOut {
  std::string s;
  void op(char c) { s.push_back(c); }
  void u32(uint32_t v) {
    for (int k = 0; k < 4; ++k) s.push_back(static_cast<char>((v >> (8 * k)) & 0xFF));
  }
  void str(const std::string& v) {
    op('X');
    u32(static_cast<uint32_t>(v.size()));
    s += v;
  }
  void bytes(const void* p, size_t n) {
    op('B');
    u32(static_cast<uint32_t>(n));
    s.append(static_cast<const char*>(p), n);
  }
  void global(const char* module, const char* name) {
    op('c');
    s += module;
    s += '\n';
    s += name;
    s += '\n';
  }
  void int_(int64_t v) {
    op('J');
    u32(static_cast<uint32_t>(static_cast<int32_t>(v)));
  }
};

}  // namespace

void write_retrieval_embeddings(const fs::path& path, const std::vector<std::string>& paths,
                                const torch::Tensor& embeddings) {
  GILL_CHECK(embeddings.dim() == 2 && embeddings.size(0) == static_cast<int64_t>(paths.size()),
             ErrorCode::kInvalidArgument, path.string(), ": need one embedding row per path (", paths.size(),
             " paths, embeddings ", detail::shape_str(embeddings.sizes().vec()), ")");
  GILL_CHECK(embeddings.size(1) < (int64_t(1) << 31), ErrorCode::kInvalidArgument, "embedding too wide");
  const torch::Tensor e = embeddings.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  PickleOut p;
  p.s = "\x80\x03";  // PROTO 3
  p.op('}');
  p.op('(');
  p.str("paths");
  p.op(']');
  p.op('(');
  for (const auto& x : paths) p.str(x);
  p.op('e');
  p.str("embeddings");
  p.op(']');
  p.op('(');
  for (int64_t r = 0; r < e.size(0); ++r) {
    // numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b') then BUILD (1, (D,), dtype('<f4'), False, data)
    p.global("numpy.core.multiarray", "_reconstruct");
    p.global("numpy", "ndarray");
    p.int_(0);
    p.op('\x85');
    p.bytes("b", 1);
    p.op('\x87');
    p.op('R');
    p.op('(');
    p.int_(1);
    p.int_(e.size(1));
    p.op('\x85');
    p.global("numpy", "dtype");
    p.str("f4");
    p.op('\x89');
    p.op('\x88');
    p.op('\x87');
    p.op('R');
    p.op('(');
    p.int_(3);
    p.str("<");
    p.op('N');
    p.op('N');
    p.op('N');
    p.int_(-1);
    p.int_(-1);
    p.int_(0);
    p.op('t');
    p.op('b');
    p.op('\x89');
    p.bytes(e[r].data_ptr(), static_cast<size_t>(e.size(1)) * 4);
    p.op('t');
    p.op('b');
  }
  p.op('e');
  p.op('u');
  p.op('.');
  write_file_atomic(path, p.s);
}

}  // namespace gill::io
