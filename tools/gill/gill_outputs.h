// How the CLI writes a JSON transcript (the transcript itself is gill::result_json's, gill/result_json.h).
#pragma once
#include <gill/gill.h>
#include <gill/progress.h>

#include <filesystem>
#include <nlohmann/json.hpp>

namespace gill::cli {

// gill::dump_json(j) and a newline, written atomically.
void write_json_file(const std::filesystem::path& path, const nlohmann::json& j);

// `go` with the turn's text streamed to stdout and a bar for denoising only (a token bar would interleave with
// the text): what `gill run -m` and `gill chat` show while a turn runs.
GenerateOptions streamed_to_stdout(GenerateOptions go, const ProgressStyle& style);

}  // namespace gill::cli
