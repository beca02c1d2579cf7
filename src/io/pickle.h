// A restricted unpickler: the opcodes that torch.save state dicts and numpy pickles use, globals from a fixed
// allow-list only, never executes anything. Every call the pickle asks for (REDUCE/NEWOBJ) is one of a handful of
// known constructors interpreted here (OrderedDict, torch._utils._rebuild_tensor_v2, numpy's _reconstruct, ...).
// Opcode semantics follow CPython's Lib/pickle.py (_Unpickler); torch's persistent ids follow
// torch/serialization.py (_load: ('storage', storage_type, key, location, numel)).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gill::io::pickle {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

enum class Kind {
  kNone, kBool, kInt, kFloat, kString, kBytes, kList, kTuple, kDict,
  kGlobal,    // an allow-listed global not yet called (module + "." + name in `str`)
  kStorage,   // torch storage reference (persistent id): str = key, dtype_name = storage type, i = numel
  kTensor,    // torch._utils._rebuild_tensor_v2 result
  kNdArray,   // numpy array (dtype + shape + raw little-endian bytes)
  kNpDType,   // numpy dtype: str = descr ('f4'), byte_order in bytes
};

struct Value {
  Kind kind = Kind::kNone;
  int64_t i = 0;           // kBool, kInt, kStorage numel
  double f = 0;            // kFloat
  std::string str;         // kString, kGlobal, kStorage key, kNpDType descr
  std::string bytes;       // kBytes, kNdArray raw data, kNpDType byte order
  std::vector<ValuePtr> items;                          // kList, kTuple
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;   // kDict (insertion order)
  // kTensor: storage (kStorage), element offset, sizes, strides. kNdArray: dtype (kNpDType) + shape.
  ValuePtr storage;
  int64_t offset = 0;
  std::vector<int64_t> sizes, strides;
  std::string storage_type;  // kStorage: "FloatStorage", ...; kNdArray: numpy descr ("<f4")
  std::string location;      // kStorage: "cuda:0", "cpu"
  // Unpickler bookkeeping: nesting depth of a container (1 + its deepest child), and whether it already sits
  // inside another value (then it may no longer change: this rules out cycles, which torch.save never writes).
  uint32_t depth = 0;
  bool contained = false;

  // Short readable form for messages and `gill inspect` ("5", "'abc'", "[3 items]", "tensor").
  std::string repr() const;
};

const char* kind_name(Kind k);

struct Limits {
  size_t max_depth = 200;       // nested MARKs, and containers nested in containers
  size_t max_stack = 1u << 20;  // values on the stack
  size_t max_memo = 1u << 22;
};

// Unpickles `data` (what `where` names in messages). Throws kSecurity for a global outside the allow-list (the
// message names it), kFormat for malformed input (the message names the opcode and its offset), kUnsupported for
// valid but unsupported opcodes/protocols.
ValuePtr unpickle(std::string_view data, const std::string& where, const Limits& limits = {});

// The allow-list, for messages and tests.
bool is_allowed_global(const std::string& module, const std::string& name);

// Flattens nested dicts/lists into "a.b.0.c" leaves (dict keys: strings or ints). Depth-limited, and bounded in
// the values it visits (a container shared under many keys cannot blow up into billions of leaves).
void flatten(const ValuePtr& v, const std::string& prefix, std::vector<std::pair<std::string, ValuePtr>>& out,
             size_t max_depth = 64);

}  // namespace gill::io::pickle
