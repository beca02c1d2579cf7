// Retrieval index and scoring (gill-spec §6.4, §8.2).
//
// An index is a list of candidate paths (local files or URLs) and their UN-normalised retrieval embeddings
// (visual_fc(CLIP pooled), as the reference's extract_img_embs.py stores them). Two formats are read:
//  * gill's own (what `gill index` writes): a folder with `index.safetensors`, tensor `embeddings` [N, D] and
//    metadata {"format": "gill-retrieval-index", "version": "1", "paths": JSON list}; or that file directly;
//  * the reference's `cc3m*.npy` pickles ({'paths': [...], 'embeddings': [...]}) through io's reader.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

namespace gill::pipeline {

struct RetrievalIndex {
  std::vector<std::string> paths;  // candidate i: a file path (relative paths resolve against `base_dir`) or a URL
  torch::Tensor embeddings;        // [N, D] float32, un-normalised
  std::filesystem::path base_dir;  // folder the index was read from
  std::string source;              // the file(s) it was read from, for messages

  int64_t size() const { return static_cast<int64_t>(paths.size()); }
  bool empty() const { return paths.empty(); }
};

inline constexpr const char* kIndexFileName = "index.safetensors";

// Reads gill's index format (a folder or its index.safetensors). kNotFound / kFormat naming the file.
RetrievalIndex read_index(const std::filesystem::path& path);
// Writes gill's index format into `dir` (created when missing), atomically.
void write_index(const std::filesystem::path& dir, const RetrievalIndex& index);
// Reads one of the reference's cc3m*.npy pickles.
RetrievalIndex read_reference_embeddings(const std::filesystem::path& file);
// Finds an index in a GILL checkpoint folder: gill's `index.safetensors`, else the reference's `cc3m*.npy` files
// (sorted by name; the reference uses unsorted glob order). Returns an empty index when there is none.
RetrievalIndex find_index(const std::filesystem::path& gill_dir);

// The reference's retrieval matrix: rows L2-normalised, times exp(logit_scale), in `dtype`.  // [N, D]
torch::Tensor retrieval_matrix(const torch::Tensor& embeddings, const torch::Tensor& logit_scale, torch::Dtype dtype);

// L2-normalises the last dimension (the reference's `x / x.norm(dim=-1, keepdim=True)`).
torch::Tensor l2_normalize(const torch::Tensor& x);

struct RetrievalHit {
  int64_t index = 0;
  double score = 0;
  std::string path;
};

// scores = matrix @ normalize(ret_emb) ([N]); indices in `seen` get -1000 (the reference's down-weighting of
// images already returned in this call); the top k by score, ties broken by lower index.
std::vector<RetrievalHit> retrieve_top_k(const torch::Tensor& matrix, const torch::Tensor& ret_emb, int64_t k,
                                         const std::vector<int64_t>& seen, const RetrievalIndex& index,
                                         torch::Tensor* scores_out = nullptr);

}  // namespace gill::pipeline
