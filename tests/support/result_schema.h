// docs/result-schema.md as a checker: the tables of that file ("### object: NAME", rows "| `key` | type |
// required | meaning |") read once, and a JSON value checked against an object of it. The writers' tests use it,
// so the document and every writer agree.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace gill::test {

// The problems of `v` as the schema's object `object` ("turn", "lm", "batch", "block", "timings", ...): a
// missing required key, a key the table does not list, a value of a type the table does not allow (recursively).
// Empty when `v` conforms. "batch": an ok line of a generated item must also carry the turn's keys.
std::vector<std::string> schema_problems(const nlohmann::json& v, const std::string& object);
// The object names the document defines.
std::vector<std::string> schema_objects();

}  // namespace gill::test
