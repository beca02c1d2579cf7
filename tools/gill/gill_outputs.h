// What `gill run` and `gill chat` do with a Result: images into the output folder (generated PNGs with their
// settings in text chunks, retrieved local files copied, URLs only reported), a line per image on stdout, and
// the JSON transcript.
#pragma once
#include <gill/gill.h>

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gill::cli {

struct TurnFiles {
  std::vector<std::string> generated;               // per block: the PNG written, or ""
  std::vector<std::vector<std::string>> retrieved;  // per block, per hit: the local copy, or "" (URL / missing)
};

// Writes OUT_DIR/<prefix>gen_<k>.png and OUT_DIR/<prefix>ret_<k>_<i>.<ext> (OUT_DIR is created when missing).
TurnFiles write_turn_files(const Result& r, const std::filesystem::path& out_dir, const std::string& prefix,
                           const GenerateOptions& gen);
// "[image 1: generated (p_gen 0.62) -> out/gen_0.png]" / "[image 1: retrieved #5 (score 12.3) -> URL]".
void print_image_lines(const Result& r, const TurnFiles& files, std::ostream& out);
// The transcript of one turn (text, ids, each block's decision, probabilities, retrieval hits and scores, files,
// seeds, settings, timings).
nlohmann::json turn_json(const Result& r, const TurnFiles& files, const GenerateOptions& gen);
// Pretty-printed, written atomically.
void write_json_file(const std::filesystem::path& path, const nlohmann::json& j);

}  // namespace gill::cli
