// What `gill run` and `gill chat` print for a Result's images (the files are written by the library's
// gill::write_turn_files, the transcript by gill::result_json; gill/result_json.h).
#pragma once
#include <gill/gill.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

namespace gill::cli {

// "[image 1: generated (p_gen 0.62) -> out/gen_0.png]" / "[image 1: retrieved #5 (score 12.3) -> URL]".
void print_image_lines(const Result& r, std::ostream& out);
// gill::dump_json(j), written atomically.
void write_json_file(const std::filesystem::path& path, const nlohmann::json& j);

}  // namespace gill::cli
