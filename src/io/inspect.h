// `gill inspect`: a listing of every tensor in a weights file or a model folder (recursively).
#pragma once
#include <filesystem>
#include <ostream>

namespace gill::io {

// Prints "name  dtype  shape  file" lines (or JSON lines). Folders are walked recursively; shards named by an
// index are listed through the index. Throws gill::Error on the first unreadable file.
void inspect(const std::filesystem::path& path, std::ostream& out, bool json);

}  // namespace gill::io
