#include "result_schema.h"

#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "test_support.h"

namespace gill::test {

namespace {

struct SchemaKey {
  std::string type;
  bool required = false;
};
using SchemaObject = std::map<std::string, SchemaKey>;

std::string schema_trim(const std::string& s) {
  const auto b = s.find_first_not_of(' ');
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(' ') - b + 1);
}

std::map<std::string, SchemaObject> read_schema() {
  const auto path = source_dir() / "docs" / "result-schema.md";
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + ": cannot read");
  std::map<std::string, SchemaObject> objects;
  std::string line, current;
  const std::string heading = "### object: ";
  while (std::getline(in, line)) {
    if (line.rfind(heading, 0) == 0) {
      current = schema_trim(line.substr(heading.size()));
      objects[current];
      continue;
    }
    if (current.empty() || line.rfind("| `", 0) != 0) continue;
    // | `key` | type | yes/no | meaning |   ('|' inside a type such as string|null is not surrounded by spaces)
    std::vector<std::string> cells;
    size_t at = 1;
    while (true) {
      const size_t next = line.find(" | ", at);
      if (next == std::string::npos) break;
      cells.push_back(schema_trim(line.substr(at, next - at)));
      at = next + 2;
    }
    if (cells.size() < 3) throw std::runtime_error("result-schema.md: bad row: " + line);
    const std::string key = cells[0].substr(1, cells[0].size() - 2);
    if (cells[2] != "yes" && cells[2] != "no") throw std::runtime_error("result-schema.md: required? " + line);
    objects[current][key] = {cells[1], cells[2] == "yes"};
  }
  return objects;
}

const std::map<std::string, SchemaObject>& schema() {
  static const auto s = read_schema();
  return s;
}

void check_value(const nlohmann::json& v, const std::string& type, const std::string& where,
                 std::vector<std::string>& out);

void check_object(const nlohmann::json& v, const std::string& name, const std::string& where,
                  std::vector<std::string>& out) {
  const auto& all = schema();
  const auto it = all.find(name);
  if (it == all.end()) {
    out.push_back(where + ": the schema has no object '" + name + "'");
    return;
  }
  SchemaObject keys = it->second;
  if (name == "batch" && v.value("status", "") == "ok" && !v.contains("scores")) {
    for (const auto& [k, spec] : all.at("turn"))
      if (k != "prompt" && k != "turn") keys[k] = spec;
  }
  for (const auto& [k, spec] : keys)
    if (spec.required && !v.contains(k)) out.push_back(where + "." + k + ": missing");
  for (const auto& [k, val] : v.items()) {
    const auto spec = keys.find(k);
    if (spec == keys.end()) {
      out.push_back(where + "." + k + ": not in docs/result-schema.md (object " + name + ")");
      continue;
    }
    check_value(val, spec->second.type, where + "." + k, out);
  }
}

bool schema_type_matches(const nlohmann::json& v, const std::string& t) {
  if (t == "string") return v.is_string();
  if (t == "integer") return v.is_number_integer();
  if (t == "number") return v.is_number();
  if (t == "boolean") return v.is_boolean();
  if (t == "null") return v.is_null();
  if (t == "object") return v.is_object();
  if (t.rfind("array<", 0) == 0) return v.is_array();
  if (t.rfind("object<", 0) == 0) return v.is_object();
  throw std::runtime_error("result-schema.md: unknown type '" + t + "'");
}

void check_value(const nlohmann::json& v, const std::string& type, const std::string& where,
                 std::vector<std::string>& out) {
  std::vector<std::string> alts;
  std::stringstream ss(type);
  for (std::string a; std::getline(ss, a, '|');) alts.push_back(a);
  for (const std::string& t : alts) {
    if (!schema_type_matches(v, t)) continue;
    if (t.rfind("object<", 0) == 0) check_object(v, t.substr(7, t.size() - 8), where, out);
    if (t.rfind("array<", 0) == 0) {
      const std::string elem = t.substr(6, t.size() - 7);
      for (size_t i = 0; i < v.size(); ++i) check_value(v[i], elem, where + "[" + std::to_string(i) + "]", out);
    }
    return;
  }
  out.push_back(where + ": " + v.dump().substr(0, 80) + " is not " + type);
}

}  // namespace

std::vector<std::string> schema_problems(const nlohmann::json& v, const std::string& object) {
  std::vector<std::string> out;
  if (!v.is_object()) return {object + ": not a JSON object"};
  check_object(v, object, object, out);
  if ((object == "turn" || object == "lm") && v.value("schema_version", 0) != 1)
    out.push_back(object + ".schema_version: expected 1");
  return out;
}

std::vector<std::string> schema_objects() {
  std::vector<std::string> names;
  for (const auto& [k, v] : schema()) names.push_back(k);
  return names;
}

}  // namespace gill::test
