// The pipeline's turn as the public Result (engine.cpp): retrieved paths resolved against the index's folder
// (URLs kept as they are, gill::is_url), timings summed over the blocks.
#pragma once
#include <gill/gill.h>

#include <filesystem>

#include "pipeline/gill_generate.h"

namespace gill::detail {

Result to_result(const pipeline::TurnResult& r, const std::filesystem::path& index_dir);
// One processed block in its public form (retrieved paths resolved against the index's folder, URLs kept).
ImageBlock to_image_block(const pipeline::BlockResult& blk, const std::filesystem::path& index_dir);

}  // namespace gill::detail
