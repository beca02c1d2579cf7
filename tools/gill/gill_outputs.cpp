#include "gill_outputs.h"

#include <gill/result_json.h>

namespace gill::cli {

void write_json_file(const std::filesystem::path& path, const nlohmann::json& j) {
  write_file_atomic(path.string(), dump_json(j) + "\n");
}

}  // namespace gill::cli
