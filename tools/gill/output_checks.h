// Output paths checked before any model is loaded, so a bad -o / --json / --dump-tensors fails in a second, not
// after minutes of loading and generating. Nothing is created: the nearest existing folder is probed by creating
// and removing a file in it (this also catches read-only file systems and pseudo file systems, even as root).
#pragma once
#include <string>

namespace gill::cli {

// An output folder (created later when missing). Throws kIo:
//   "-o OUT: cannot create the output folder: PARENT is not a folder" / "...: PARENT is not writable (REASON)"
//   "-o OUT: exists and is not a folder"
void check_output_dir(const std::string& dir, const std::string& option);

// An output file. Its folder must exist, unless `parents_created` (the writer creates missing folders, as
// io::AtomicFile does). Throws kIo: "--json FILE: cannot write: it is a folder" / "...: no such folder DIR" /
// "...: DIR is not a folder" / "...: folder DIR is not writable (REASON)".
void check_output_file(const std::string& path, const std::string& option, bool parents_created = true);

}  // namespace gill::cli
