// The unpickled value model (gill/io/pickle.h): kind names, repr for messages, and flatten() with its guards
// against shared-subtree bombs. The unpickler itself is pickle.cpp.
#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <unordered_map>

#include "io/pickle.h"
#include "util/error.h"

namespace gill::io::pickle {

using detail::str_cat;

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kBytes:
      return "bytes";
    case Kind::kList:
      return "list";
    case Kind::kTuple:
      return "tuple";
    case Kind::kDict:
      return "dict";
    case Kind::kGlobal:
      return "global";
    case Kind::kStorage:
      return "storage";
    case Kind::kTensor:
      return "tensor";
    case Kind::kNdArray:
      return "ndarray";
    case Kind::kNpDType:
      return "numpy.dtype";
  }
  return "?";
}

std::string Value::repr() const {
  switch (kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return i ? "True" : "False";
    case Kind::kInt:
      return std::to_string(i);
    case Kind::kFloat: {  // shortest form that reads back exactly, like Python's repr
      for (int prec = 15; prec <= 17; ++prec) {
        std::ostringstream os;
        os.precision(prec);
        os << f;
        // strtod, not stod: stod throws out_of_range for subnormals.
        if (prec == 17 || std::strtod(os.str().c_str(), nullptr) == f) return os.str();
      }
      return "?";
    }
    case Kind::kString:
      return "'" + (str.size() > 200 ? str.substr(0, 200) + "..." : str) + "'";
    case Kind::kBytes:
      return str_cat("<", bytes.size(), " bytes>");
    case Kind::kList:
      return str_cat("[", items.size(), " items]");
    case Kind::kTuple:
      return str_cat("(", items.size(), " items)");
    case Kind::kDict:
      return str_cat("{", entries.size(), " entries}");
    case Kind::kGlobal:
      return str;
    case Kind::kStorage:
      return str_cat("<", storage_type, " ", str, ">");
    case Kind::kTensor:
      return str_cat("tensor", detail::shape_str(sizes));
    case Kind::kNdArray:
      return str_cat("ndarray ", storage_type, detail::shape_str(sizes));
    case Kind::kNpDType:
      return "dtype('" + str + "')";
  }
  return "?";
}

namespace {

// Values flatten() may visit: far more than any checkpoint has, far fewer than a shared-subtree bomb would expand to.
constexpr size_t kMaxFlattenVisits = size_t(1) << 20;
// Expansion through shared containers is accepted up to this many visits, or this many times the distinct values.
constexpr uint64_t kMaxSharedExpansion = uint64_t(1) << 16;
constexpr uint64_t kMaxSharingFactor = 16;

void flatten_rec(const ValuePtr& v, const std::string& prefix, std::vector<std::pair<std::string, ValuePtr>>& out,
                 size_t max_depth, size_t& visits) {
  if (max_depth == 0) detail::fail(ErrorCode::kFormat, str_cat("'", prefix, "': nested too deeply"));
  if (++visits > kMaxFlattenVisits)
    detail::fail(ErrorCode::kFormat, str_cat("more than ", kMaxFlattenVisits,
                                             " nested values (shared containers expanding without bound?)"));
  auto join = [&](const std::string& k) { return prefix.empty() ? k : prefix + "." + k; };
  if (v->kind == Kind::kDict) {
    for (auto& [k, x] : v->entries) {
      std::string key;
      if (k->kind == Kind::kString) {
        key = k->str;
      } else if (k->kind == Kind::kInt) {
        key = std::to_string(k->i);
      } else {
        detail::fail(ErrorCode::kFormat, str_cat("'", prefix, "': dict key of type ", kind_name(k->kind)));
      }
      flatten_rec(x, join(key), out, max_depth - 1, visits);
    }
  } else if ((v->kind == Kind::kList || v->kind == Kind::kTuple) && !v->items.empty() && !prefix.empty()) {
    bool any_container = false;
    for (auto& x : v->items)
      any_container |= x->kind == Kind::kDict || x->kind == Kind::kTensor || x->kind == Kind::kList;
    if (!any_container) {
      out.emplace_back(prefix, v);
      return;
    }
    for (size_t k = 0; k < v->items.size(); ++k)
      flatten_rec(v->items[k], join(std::to_string(k)), out, max_depth - 1, visits);
  } else {
    out.emplace_back(prefix, v);
  }
}

// The number of values flatten_rec would visit under v (itself included; an upper bound: a list is counted as
// descended into whenever it holds a container), saturating at kMaxFlattenVisits + 1. Each distinct value is
// counted once (memo), so this takes time in the size of the unpickled graph, not of its expansion: a shared-subtree
// bomb is refused before any of it is expanded. The unpickler rules out cycles, and depth is bounded by its limits.
uint64_t expanded_size(const Value* v, std::unordered_map<const Value*, uint64_t>& memo) {
  if (auto it = memo.find(v); it != memo.end()) return it->second;
  constexpr uint64_t kCap = uint64_t(kMaxFlattenVisits) + 1;
  uint64_t n = 1;
  auto add = [&](const ValuePtr& x) { n = std::min(kCap, n + expanded_size(x.get(), memo)); };
  if (v->kind == Kind::kDict) {
    for (auto& [k, x] : v->entries) add(x);
  } else if (v->kind == Kind::kList || v->kind == Kind::kTuple) {
    bool any_container = false;
    for (auto& x : v->items)
      any_container |= x->kind == Kind::kDict || x->kind == Kind::kTensor || x->kind == Kind::kList;
    if (any_container)
      for (auto& x : v->items) add(x);
  }
  memo.emplace(v, n);
  return n;
}

}  // namespace

void flatten(const ValuePtr& v, const std::string& prefix, std::vector<std::pair<std::string, ValuePtr>>& out,
             size_t max_depth) {
  std::unordered_map<const Value*, uint64_t> memo;
  const uint64_t expanded = expanded_size(v.get(), memo);
  if (expanded > kMaxFlattenVisits)
    detail::fail(ErrorCode::kFormat, str_cat("more than ", kMaxFlattenVisits,
                                             " nested values (shared containers expanding without bound?)"));
  // Without shared containers every value is visited once. Checkpoints share only leaves (tied weights), so a
  // large expansion of few distinct values is a bomb too, refused here rather than expanded.
  if (expanded > kMaxSharedExpansion && expanded > kMaxSharingFactor * memo.size())
    detail::fail(ErrorCode::kFormat, str_cat(memo.size(), " distinct values expand to ", expanded,
                                             " nested values (shared containers expanding without bound?)"));
  size_t visits = 0;
  flatten_rec(v, prefix, out, max_depth, visits);
}

}  // namespace gill::io::pickle
