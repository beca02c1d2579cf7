// Restricted unpickler (the value model, repr and flatten are pickle_value.cpp). Opcode semantics follow CPython
// Lib/pickle.py (_Unpickler.load_*); only the subset used by torch.save (protocol 2) state dicts and numpy ndarray
// pickles (protocols 2-5) is accepted.
#include "io/pickle.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "util/error.h"

namespace gill::io::pickle {

using detail::str_cat;

namespace {

const char* const kAllowed[] = {
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch.device",
    "torch.jit._pickle.restore_type_tag",  // libtorch's pickle writer tags dicts with their type: a no-op here
    "torch.FloatStorage", "torch.HalfStorage", "torch.BFloat16Storage", "torch.DoubleStorage",
    "torch.LongStorage", "torch.IntStorage", "torch.ShortStorage", "torch.CharStorage",
    "torch.ByteStorage", "torch.BoolStorage",
    "numpy.core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy.ndarray",
    "numpy.dtype",
    "_codecs.encode",
};

ValuePtr make(Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
  return v;
}

class Machine {
 public:
  Machine(std::string_view data, const std::string& where, const Limits& limits)
      : d_(data), where_(where), lim_(limits) {}

  ValuePtr run() {
    while (true) {
      if (pos_ >= d_.size()) fail_fmt("pickle ends without STOP");
      op_pos_ = pos_;
      const uint8_t op = static_cast<uint8_t>(d_[pos_++]);
      op_ = op;
      switch (op) {
        case 0x80: {  // PROTO
          const uint8_t p = u8();
          if (p > 5) fail(ErrorCode::kUnsupported, str_cat("pickle protocol ", int(p), " is not supported"));
          break;
        }
        case 0x95: read_uint(8); break;  // FRAME: framing is transparent in a complete buffer
        case '.': {                      // STOP
          if (stack_.size() != 1 || !marks_.empty()) fail_fmt("STOP with a malformed stack");
          return stack_.back();
        }
        case '}': push(make(Kind::kDict)); break;
        case ']': push(make(Kind::kList)); break;
        case ')': push(make(Kind::kTuple)); break;
        case '(':
          if (marks_.size() >= lim_.max_depth) fail_fmt(str_cat("nesting deeper than ", lim_.max_depth));
          marks_.push_back(stack_.size());
          break;
        case 'J': push_int(static_cast<int32_t>(static_cast<uint32_t>(read_uint(4)))); break;
        case 'K': push_int(u8()); break;
        case 'M': push_int(static_cast<int64_t>(read_uint(2))); break;
        case 0x8a: {  // LONG1
          const size_t n = u8();
          push_int(read_long(n));
          break;
        }
        case 0x8b: {  // LONG4
          const size_t n = read_uint(4);
          push_int(read_long(n));
          break;
        }
        case 'G': {  // BINFLOAT, big-endian double
          uint64_t bits = 0;
          const uint8_t* p = take(8);
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | p[k];
          auto v = make(Kind::kFloat);
          std::memcpy(&v->f, &bits, 8);
          push(v);
          break;
        }
        case 0x8c: push_string(Kind::kString, u8()); break;            // SHORT_BINUNICODE
        case 'X': push_string(Kind::kString, read_uint(4)); break;     // BINUNICODE
        case 0x8d: push_string(Kind::kString, read_uint(8)); break;    // BINUNICODE8
        case 'U': push_string(Kind::kString, u8()); break;             // SHORT_BINSTRING (py2 str)
        case 'T': push_string(Kind::kString, read_uint(4)); break;     // BINSTRING
        case 'C': push_string(Kind::kBytes, u8()); break;              // SHORT_BINBYTES
        case 'B': push_string(Kind::kBytes, read_uint(4)); break;      // BINBYTES
        case 0x8e: push_string(Kind::kBytes, read_uint(8)); break;     // BINBYTES8
        case 'c': {  // GLOBAL "module\nname\n"
          const std::string module = read_line(), name = read_line();
          push(resolve_global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          ValuePtr name = pop(), module = pop();
          if (module->kind != Kind::kString || name->kind != Kind::kString) fail_fmt("STACK_GLOBAL needs two strings");
          push(resolve_global(module->str, name->str));
          break;
        }
        case 'R': {  // REDUCE
          ValuePtr args = pop(), callable = pop();
          push(call(callable, args));
          break;
        }
        case 0x81: {  // NEWOBJ
          ValuePtr args = pop(), cls = pop();
          push(call(cls, args));
          break;
        }
        case 'b': {  // BUILD
          ValuePtr state = pop();
          build(top(), state);
          break;
        }
        case 's': {  // SETITEM
          ValuePtr v = pop(), k = pop();
          Value* d = dict_target(top());
          adopt(d, k);
          adopt(d, v);
          d->entries.emplace_back(k, v);
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_mark();
          if (items.size() % 2) fail_fmt("SETITEMS with an odd number of items");
          Value* d = dict_target(top());
          for (const auto& x : items) adopt(d, x);
          for (size_t k = 0; k < items.size(); k += 2) d->entries.emplace_back(items[k], items[k + 1]);
          break;
        }
        case 'a': {  // APPEND
          ValuePtr v = pop();
          Value* l = list_target(top());
          adopt(l, v);
          l->items.push_back(v);
          break;
        }
        case 'e': {  // APPENDS
          auto items = pop_mark();
          Value* l = list_target(top());
          for (const auto& x : items) adopt(l, x);
          l->items.insert(l->items.end(), items.begin(), items.end());
          break;
        }
        case 't': {
          auto t = make(Kind::kTuple);
          t->items = pop_mark();
          for (const auto& x : t->items) adopt(t.get(), x);
          push(t);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          const size_t n = op - 0x84u;
          if (stack_size_above_mark() < n) fail_fmt("tuple from an empty stack");
          auto t = make(Kind::kTuple);
          for (auto it = stack_.end() - static_cast<std::ptrdiff_t>(n); it != stack_.end(); ++it) adopt(t.get(), *it);
          t->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(t);
          break;
        }
        case 0x88:
        case 0x89: {
          auto v = make(Kind::kBool);
          v->i = op == 0x88;
          push(v);
          break;
        }
        case 'N': push(make(Kind::kNone)); break;
        case 'q': memo_put(u8()); break;
        case 'r': memo_put(read_uint(4)); break;
        case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
        case 'h': memo_get(u8()); break;
        case 'j': memo_get(read_uint(4)); break;
        case 'Q': {  // BINPERSID
          ValuePtr pid = pop();
          push(persistent_load(pid));
          break;
        }
        case '0': pop(); break;        // POP
        case '1': pop_mark(); break;   // POP_MARK
        case '2': push(top()); break;  // DUP
        default: {
          static const char kProto0[] = "IL SVpgFdlP";
          if (std::memchr(kProto0, op, sizeof kProto0 - 1) || op == 0x8f || op == 0x90 || op == 0x91 || op == 0x92 ||
              op == 0x82 || op == 0x83 || op == 0x84 || op == 'i' || op == 'o' || op == 0x96 || op == 0x97 ||
              op == 0x98)
            fail(ErrorCode::kUnsupported, str_cat("pickle opcode 0x", hex(op), " ('", printable(op),
                                                  "') is not supported by the restricted unpickler"));
          fail_fmt(str_cat("unknown pickle opcode 0x", hex(op)));
        }
      }
    }
  }

 private:
  static std::string hex(uint8_t b) {
    static const char* h = "0123456789abcdef";
    return {h[b >> 4], h[b & 15]};
  }
  static char printable(uint8_t b) { return (b >= 32 && b < 127) ? char(b) : '?'; }

  [[noreturn]] void fail(ErrorCode code, const std::string& what) const {
    detail::fail(code, str_cat(where_, ": ", what, " (at byte ", op_pos_, ")"));
  }
  [[noreturn]] void fail_fmt(const std::string& what) const { fail(ErrorCode::kFormat, what); }

  const uint8_t* take(size_t n) {
    if (n > d_.size() - pos_) fail_fmt("pickle is truncated");
    const uint8_t* p = reinterpret_cast<const uint8_t*>(d_.data() + pos_);
    pos_ += n;
    return p;
  }
  uint8_t u8() { return *take(1); }
  uint64_t read_uint(size_t n) {
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= uint64_t(p[k]) << (8 * k);
    return v;
  }
  int64_t read_long(size_t n) {
    if (n > 8) fail(ErrorCode::kUnsupported, str_cat("integer of ", n, " bytes does not fit 64 bits"));
    if (n == 0) return 0;
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= uint64_t(p[k]) << (8 * k);
    if (n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign-extend
    return static_cast<int64_t>(v);
  }
  std::string read_line() {
    const size_t nl = d_.find('\n', pos_);
    if (nl == std::string_view::npos || nl - pos_ > 256) fail_fmt("GLOBAL without a short newline-terminated name");
    std::string s(d_.substr(pos_, nl - pos_));
    pos_ = nl + 1;
    return s;
  }

  void push(ValuePtr v) {
    if (stack_.size() >= lim_.max_stack) fail_fmt("pickle stack too large");
    stack_.push_back(std::move(v));
  }
  void push_int(int64_t x) {
    auto v = make(Kind::kInt);
    v->i = x;
    push(v);
  }
  void push_string(Kind k, uint64_t n) {
    const uint8_t* p = take(n);
    auto v = make(k);
    (k == Kind::kBytes ? v->bytes : v->str).assign(reinterpret_cast<const char*>(p), n);
    push(v);
  }
  size_t stack_size_above_mark() const { return stack_.size() - (marks_.empty() ? 0 : marks_.back()); }
  ValuePtr pop() {
    if (stack_size_above_mark() == 0) fail_fmt("pickle stack underflow");
    ValuePtr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  const ValuePtr& top() {
    if (stack_size_above_mark() == 0) fail_fmt("pickle stack underflow");
    return stack_.back();
  }
  std::vector<ValuePtr> pop_mark() {
    if (marks_.empty()) fail_fmt("no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> out(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return out;
  }
  void memo_put(uint64_t idx) {
    // Picklers number memo entries 0, 1, 2, ...: a far-off index would only make us allocate a huge table.
    if (idx >= lim_.max_memo || idx > memo_.size() + 1024)
      fail_fmt(str_cat("memo index ", idx, " is out of range (", memo_.size(), " entries so far)"));
    if (idx >= memo_.size()) memo_.resize(idx + 1);
    memo_[idx] = top();
  }
  void memo_get(uint64_t idx) {
    if (idx >= memo_.size() || !memo_[idx]) fail_fmt(str_cat("memo entry ", idx, " is not defined"));
    push(memo_[idx]);
  }
  Value* dict_target(const ValuePtr& v) {
    if (v->kind != Kind::kDict) fail_fmt(str_cat("SETITEM on a ", kind_name(v->kind)));
    if (v->contained)
      fail_fmt("SETITEM on a dict that is already inside another value (cyclic structures are refused)");
    return v.get();
  }
  Value* list_target(const ValuePtr& v) {
    if (v->kind != Kind::kList) fail_fmt(str_cat("APPEND on a ", kind_name(v->kind)));
    if (v->contained) fail_fmt("APPEND on a list that is already inside another value (cyclic structures are refused)");
    return v.get();
  }
  // Records that `child` goes into `parent`: the child is frozen from now on (no cycles can form, since a container
  // only ever receives values while it is not inside anything), and the parent's depth is bounded.
  void adopt(Value* parent, const ValuePtr& child) {
    if (child.get() == parent) fail_fmt(str_cat("a ", kind_name(parent->kind), " cannot contain itself"));
    child->contained = true;
    if (child->depth + 1u > parent->depth) {
      parent->depth = child->depth + 1u;
      if (parent->depth > lim_.max_depth) fail_fmt(str_cat("containers nested deeper than ", lim_.max_depth));
    }
  }

  ValuePtr resolve_global(const std::string& module, const std::string& name) {
    if (!is_allowed_global(module, name))
      fail(ErrorCode::kSecurity, str_cat("refused to load global '", module, ".", name,
                                         "': not in the allow-list of the restricted unpickler"));
    auto v = make(Kind::kGlobal);
    v->str = module + "." + name;
    return v;
  }

  const ValuePtr& arg(const ValuePtr& args, size_t k, Kind kind, const char* fn) {
    if (args->items.size() <= k || args->items[k]->kind != kind)
      fail_fmt(str_cat(fn, ": argument ", k, " should be a ", kind_name(kind)));
    return args->items[k];
  }
  std::vector<int64_t> int_tuple(const ValuePtr& t, const char* fn) {
    std::vector<int64_t> out;
    for (auto& x : t->items) {
      if (x->kind != Kind::kInt) fail_fmt(str_cat(fn, ": sizes/strides must be integers"));
      out.push_back(x->i);
    }
    return out;
  }

  ValuePtr call(const ValuePtr& callable, const ValuePtr& args) {
    if (callable->kind != Kind::kGlobal) fail_fmt(str_cat("REDUCE on a ", kind_name(callable->kind)));
    if (args->kind != Kind::kTuple) fail_fmt("REDUCE arguments are not a tuple");
    const std::string& fn = callable->str;
    if (fn == "collections.OrderedDict") {
      if (!args->items.empty()) fail_fmt("OrderedDict with arguments is not supported");
      return make(Kind::kDict);
    }
    if (fn == "torch._utils._rebuild_tensor_v2" || fn == "torch._utils._rebuild_tensor") {
      auto t = make(Kind::kTensor);
      t->storage = arg(args, 0, Kind::kStorage, fn.c_str());
      t->offset = arg(args, 1, Kind::kInt, fn.c_str())->i;
      t->sizes = int_tuple(arg(args, 2, Kind::kTuple, fn.c_str()), fn.c_str());
      t->strides = int_tuple(arg(args, 3, Kind::kTuple, fn.c_str()), fn.c_str());
      if (t->sizes.size() != t->strides.size()) fail_fmt(str_cat(fn, ": sizes and strides differ in length"));
      return t;
    }
    if (fn == "torch._utils._rebuild_parameter" || fn == "torch._utils._rebuild_parameter_with_state")
      return arg(args, 0, Kind::kTensor, fn.c_str());
    if (fn == "torch.jit._pickle.restore_type_tag") {
      if (args->items.empty()) fail_fmt(str_cat(fn, ": needs a value"));
      return args->items[0];
    }
    if (fn == "torch.device") {
      auto s = make(Kind::kString);
      s->str = arg(args, 0, Kind::kString, fn.c_str())->str;
      if (args->items.size() > 1 && args->items[1]->kind == Kind::kInt) s->str += ":" + std::to_string(args->items[1]->i);
      return s;
    }
    if (fn == "numpy.core.multiarray._reconstruct") {
      const ValuePtr& cls = arg(args, 0, Kind::kGlobal, fn.c_str());
      if (cls->str != "numpy.ndarray") fail_fmt(str_cat(fn, ": only numpy.ndarray can be reconstructed"));
      return make(Kind::kNdArray);
    }
    if (fn == "numpy.dtype") {
      auto dt = make(Kind::kNpDType);
      dt->str = arg(args, 0, Kind::kString, fn.c_str())->str;
      dt->bytes = "=";
      return dt;
    }
    if (fn == "numpy.core.multiarray.scalar") {  // (dtype, raw bytes) -> a Python number
      const ValuePtr& dt = arg(args, 0, Kind::kNpDType, fn.c_str());
      const ValuePtr& raw = arg(args, 1, args->items.size() > 1 && args->items[1]->kind == Kind::kString ? Kind::kString
                                                                                                           : Kind::kBytes,
                                fn.c_str());
      const std::string& b = raw->kind == Kind::kBytes ? raw->bytes : latin1(raw->str);
      return scalar_from(dt->str, b);
    }
    if (fn == "_codecs.encode") {  // numpy protocol-2 pickles carry bytes as latin-1 text
      const std::string& s = arg(args, 0, Kind::kString, fn.c_str())->str;
      const std::string& enc = arg(args, 1, Kind::kString, fn.c_str())->str;
      if (enc != "latin1" && enc != "latin-1") fail(ErrorCode::kUnsupported, str_cat("_codecs.encode to '", enc, "'"));
      auto b = make(Kind::kBytes);
      b->bytes = latin1(s);
      return b;
    }
    fail_fmt(str_cat("'", fn, "' cannot be called"));
  }

  // UTF-8 text whose code points are all < 256 -> those bytes.
  std::string latin1(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (size_t k = 0; k < s.size(); ++k) {
      const uint8_t c = static_cast<uint8_t>(s[k]);
      if (c < 0x80) {
        out.push_back(char(c));
      } else if ((c & 0xE0) == 0xC0 && k + 1 < s.size() && c <= 0xC3) {
        out.push_back(char(((c & 0x1F) << 6) | (static_cast<uint8_t>(s[k + 1]) & 0x3F)));
        ++k;
      } else {
        fail_fmt("_codecs.encode: text is not latin-1");
      }
    }
    return out;
  }

  ValuePtr scalar_from(const std::string& descr, const std::string& b) {
    auto v = make(Kind::kInt);
    auto le = [&](size_t n) {
      if (b.size() != n) fail_fmt("numpy scalar of the wrong size");
      uint64_t x = 0;
      for (size_t k = 0; k < n; ++k) x |= uint64_t(static_cast<uint8_t>(b[k])) << (8 * k);
      return x;
    };
    if (descr == "f8") {
      uint64_t x = le(8);
      v->kind = Kind::kFloat;
      std::memcpy(&v->f, &x, 8);
    } else if (descr == "f4") {
      uint32_t x = static_cast<uint32_t>(le(4));
      float f;
      std::memcpy(&f, &x, 4);
      v->kind = Kind::kFloat;
      v->f = f;
    } else if (descr == "i8" || descr == "u8") {
      v->i = static_cast<int64_t>(le(8));
    } else if (descr == "i4") {
      v->i = static_cast<int32_t>(static_cast<uint32_t>(le(4)));
    } else if (descr == "b1") {
      v->kind = Kind::kBool;
      v->i = le(1) != 0;
    } else {
      fail(ErrorCode::kUnsupported, str_cat("numpy scalar of dtype '", descr, "'"));
    }
    return v;
  }

  void build(const ValuePtr& obj, const ValuePtr& state) {
    switch (obj->kind) {
      case Kind::kDict:    // OrderedDict attributes (torch's `_metadata`): not part of the mapping
      case Kind::kTensor:  // parameter state (requires_grad etc.): irrelevant for inference
        return;
      case Kind::kNpDType: {
        // (version, byteorder, subarray, names, fields, elsize, alignment, flags)
        if (state->kind != Kind::kTuple || state->items.size() < 2 || state->items[1]->kind != Kind::kString)
          fail_fmt("numpy.dtype state is malformed");
        obj->bytes = state->items[1]->str;
        return;
      }
      case Kind::kNdArray: {
        // (version, shape, dtype, is_fortran, rawdata)
        if (state->kind != Kind::kTuple || state->items.size() != 5) fail_fmt("numpy.ndarray state is malformed");
        const auto& it = state->items;
        if (it[1]->kind != Kind::kTuple || it[2]->kind != Kind::kNpDType || it[3]->kind != Kind::kBool)
          fail_fmt("numpy.ndarray state is malformed");
        obj->sizes = int_tuple(it[1], "numpy.ndarray");
        const std::string order = it[2]->bytes == "=" ? "<" : it[2]->bytes;  // this reader runs little-endian
        obj->storage_type = order + it[2]->str;
        obj->i = it[3]->i;  // fortran order
        if (it[4]->kind == Kind::kBytes) {
          obj->bytes = it[4]->bytes;
        } else if (it[4]->kind == Kind::kString) {
          obj->bytes = latin1(it[4]->str);
        } else {
          fail(ErrorCode::kUnsupported, "numpy object arrays are not supported");
        }
        return;
      }
      default: fail_fmt(str_cat("BUILD on a ", kind_name(obj->kind)));
    }
  }

  ValuePtr persistent_load(const ValuePtr& pid) {
    // torch/serialization.py: ('storage', storage_type, key, location, numel)
    if (pid->kind != Kind::kTuple || pid->items.size() != 5 || pid->items[0]->kind != Kind::kString ||
        pid->items[0]->str != "storage")
      fail_fmt("persistent id is not a torch storage tuple");
    const auto& it = pid->items;
    if (it[1]->kind != Kind::kGlobal || it[2]->kind != Kind::kString || it[4]->kind != Kind::kInt)
      fail_fmt("malformed torch storage tuple");
    auto s = make(Kind::kStorage);
    const std::string& g = it[1]->str;
    s->storage_type = g.substr(g.rfind('.') + 1);
    if (s->storage_type.size() < 8 || s->storage_type.compare(s->storage_type.size() - 7, 7, "Storage") != 0)
      fail_fmt(str_cat("'", g, "' is not a storage type"));
    s->str = it[2]->str;
    s->location = it[3]->kind == Kind::kString ? it[3]->str : "";
    s->i = it[4]->i;
    if (s->i < 0) fail_fmt("negative storage size");
    return s;
  }

  std::string_view d_;
  const std::string& where_;
  Limits lim_;
  size_t pos_ = 0, op_pos_ = 0;
  uint8_t op_ = 0;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::vector<ValuePtr> memo_;
};

}  // namespace

bool is_allowed_global(const std::string& module, const std::string& name) {
  const std::string full = module + "." + name;
  for (const char* a : kAllowed)
    if (full == a) return true;
  return false;
}

ValuePtr unpickle(std::string_view data, const std::string& where, const Limits& limits) {
  Machine m(data, where, limits);
  return m.run();
}

}  // namespace gill::io::pickle
