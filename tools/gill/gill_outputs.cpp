#include "gill_outputs.h"

#include <gill/result_json.h>

#include <iostream>

namespace gill::cli {

void write_json_file(const std::filesystem::path& path, const nlohmann::json& j) {
  write_file_atomic(path.string(), dump_json(j) + "\n");
}

GenerateOptions streamed_to_stdout(GenerateOptions go, const ProgressStyle& style) {
  go.on_progress = [bar = make_progress_callback(style)](const std::string& stage, int64_t done, int64_t total) {
    if (stage != "tokens") bar(stage, done, total);
  };
  go.on_token = [](const std::string& piece) {
    std::cout << piece << std::flush;
    return true;
  };
  return go;
}

}  // namespace gill::cli
