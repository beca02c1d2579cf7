// Loading a module is a name lookup: every registered parameter and persistent buffer of the module is found in
// the checkpoint by its name, strictly in both directions. Differences between export versions and expected gaps
// are declared in one LoadSpec per checkpoint (a table), never in model code.
#pragma once
#include <torch/torch.h>

#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "io/tensor_source.h"

namespace gill::io {

struct LoadSpec {
  // Checkpoint key = prefix + module name. Tried in order; the first prefix under which the first parameter is
  // found is used for all (e.g. {"model.decoder.", "decoder."} for OPT bins and newer safetensors).
  std::vector<std::string> prefixes{""};
  // Renames applied to the module name (after the prefix) when the plain key is absent: (from, to) substring
  // pairs, e.g. {".to_q.", ".query."} for the old VAE attention names.
  std::vector<std::pair<std::string, std::string>> aliases;
  // Module names (regex, full match) that may be absent from the checkpoint: they keep their current value
  // (e.g. a tied lm_head, position_ids buffers).
  std::vector<std::string> optional;
  // Checkpoint keys (regex, full match) that may be left unused (e.g. "text_model\\..*" for a vision-only load).
  std::vector<std::string> allowed_extra;
  // Module names (regex) to skip entirely: filled by the caller afterwards (e.g. resized embedding rows).
  std::vector<std::string> skip;
  // When false, only keys starting with the chosen prefix count as surplus candidates.
  bool all_keys_must_be_used = true;
  // Tensors whose shapes may differ in the first dimension (rows): the checkpoint rows are copied into the
  // first rows of the module's tensor (embedding tables extended for added tokens).
  std::vector<std::string> allow_fewer_rows;
};

struct LoadReport {
  std::vector<std::string> loaded;        // module names
  std::vector<std::string> kept;          // optional names not in the checkpoint
  std::vector<std::string> unused_extra;  // allowed checkpoint keys not consumed
  std::string prefix;                     // the prefix that was chosen
};

// Loads `module` from `source`. Each parameter is replaced by the checkpoint tensor converted to `dtype` on
// `device` (a zero-copy view of an mmapped file when nothing needs converting), one tensor at a time, so no two
// full copies of a model are ever held. Integer buffers keep their own dtype. Errors (kNotFound, kShapeMismatch,
// kFormat) name the key, both shapes, the file and close matches.
LoadReport load_module(torch::nn::Module& module, const TensorSource& source, const LoadSpec& spec,
                       torch::Dtype dtype, const torch::Device& device = torch::kCPU);

}  // namespace gill::io
