// How the CLI writes a JSON transcript (the transcript itself is gill::result_json's, gill/result_json.h).
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>

namespace gill::cli {

// gill::dump_json(j) and a newline, written atomically.
void write_json_file(const std::filesystem::path& path, const nlohmann::json& j);

}  // namespace gill::cli
