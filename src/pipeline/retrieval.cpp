// Ref: kohjingyu/gill @4600b71 gill/models.py (load_gill: emb_matrix normalisation and logit scale;
// generate_for_images_and_texts: scores, seen-image down-weighting, topk), scripts/extract_img_embs.py.
#include "pipeline/retrieval.h"

#include "io/npy.h"

#include <algorithm>
#include <numeric>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "util/error.h"

namespace gill::pipeline {

using detail::str_cat;
namespace fs = std::filesystem;

RetrievalIndex read_index(const fs::path& path) {
  const fs::path file = fs::is_directory(path) ? path / kIndexFileName : path;
  GILL_CHECK(fs::exists(file), ErrorCode::kNotFound, file.string(), ": retrieval index not found");
  io::SafetensorsFile st(file);
  const auto& meta = st.metadata();
  auto fmt = meta.find("format");
  GILL_CHECK(fmt != meta.end() && fmt->second == "gill-retrieval-index", ErrorCode::kFormat, file.string(),
             ": not a gill retrieval index (metadata 'format' is not 'gill-retrieval-index')");
  auto ver = meta.find("version");
  GILL_CHECK(ver != meta.end() && ver->second == "1", ErrorCode::kUnsupported, file.string(),
             ": unsupported retrieval index version '", ver == meta.end() ? std::string() : ver->second, "'");
  RetrievalIndex index;
  auto p = meta.find("paths");
  GILL_CHECK(p != meta.end(), ErrorCode::kFormat, file.string(), ": metadata has no 'paths'");
  try {
    index.paths = nlohmann::json::parse(p->second).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    detail::fail(ErrorCode::kFormat, str_cat(file.string(), ": metadata 'paths' is not a JSON list of strings"));
  }
  index.embeddings = st.get("embeddings", torch::kFloat32).clone();
  GILL_CHECK(index.embeddings.dim() == 2 && index.embeddings.size(0) == index.size(), ErrorCode::kFormat,
             file.string(), ": 'embeddings' has shape ", detail::shape_str(index.embeddings.sizes().vec()), " but ",
             index.size(), " paths");
  index.base_dir = file.parent_path();
  index.source = file.string();
  return index;
}

void write_index(const fs::path& dir, const RetrievalIndex& index) {
  GILL_CHECK(index.embeddings.defined() && index.embeddings.dim() == 2 &&
                 index.embeddings.size(0) == index.size(),
             ErrorCode::kInvalidArgument, "write_index: embeddings and paths disagree");
  std::error_code ec;
  fs::create_directories(dir, ec);
  GILL_CHECK(!ec && fs::is_directory(dir), ErrorCode::kIo, dir.string(), ": cannot create the index folder",
             ec ? ": " + ec.message() : std::string(": it is not a folder"));
  nlohmann::json paths = index.paths;
  io::write_safetensors(dir / kIndexFileName, {{"embeddings", index.embeddings.to(torch::kFloat32).contiguous()}},
                        {{"format", "gill-retrieval-index"}, {"version", "1"}, {"paths", paths.dump()}});
}

RetrievalIndex read_reference_embeddings(const fs::path& file) {
  auto e = io::load_retrieval_embeddings(file);  // restricted unpickler; errors name the file
  RetrievalIndex index;
  index.paths = std::move(e.paths);
  index.embeddings = e.embeddings.to(torch::kFloat32).contiguous();
  index.base_dir = file.parent_path();
  index.source = file.string();
  return index;
}

RetrievalIndex find_index(const fs::path& gill_dir) {
  if (fs::exists(gill_dir / kIndexFileName)) return read_index(gill_dir);
  std::vector<fs::path> cc3m;
  if (fs::is_directory(gill_dir))
    for (const auto& e : fs::directory_iterator(gill_dir)) {
      const auto name = e.path().filename().string();
      if (name.rfind("cc3m", 0) == 0 && e.path().extension() == ".npy") cc3m.push_back(e.path());
    }
  std::sort(cc3m.begin(), cc3m.end());
  RetrievalIndex index;
  if (cc3m.empty()) return index;
  std::vector<torch::Tensor> parts;
  for (const auto& f : cc3m) {
    RetrievalIndex part = read_reference_embeddings(f);
    index.paths.insert(index.paths.end(), part.paths.begin(), part.paths.end());
    parts.push_back(part.embeddings);
    index.source += (index.source.empty() ? "" : ", ") + f.string();
  }
  index.embeddings = torch::cat(parts, 0);
  index.base_dir = gill_dir;
  return index;
}

torch::Tensor l2_normalize(const torch::Tensor& x) { return x / x.norm(2, -1, /*keepdim=*/true); }

torch::Tensor retrieval_matrix(const torch::Tensor& embeddings, const torch::Tensor& logit_scale,
                               torch::Dtype dtype) {
  auto m = l2_normalize(embeddings.to(dtype));     // [N, D]
  return logit_scale.to(dtype).exp() * m;          // the logit scale is folded into the matrix
}

std::vector<RetrievalHit> retrieve_top_k(const torch::Tensor& matrix, const torch::Tensor& ret_emb, int64_t k,
                                         const std::vector<int64_t>& seen, const RetrievalIndex& index,
                                         torch::Tensor* scores_out) {
  GILL_CHECK(matrix.size(0) == index.size(), ErrorCode::kInternal, "retrieval matrix and index disagree");
  auto q = l2_normalize(ret_emb.reshape({1, -1}).to(matrix.scalar_type()));  // [1, D]
  auto scores = torch::matmul(matrix, q.t()).reshape({-1});                  // [N]
  if (scores_out) *scores_out = scores.clone();
  for (int64_t s : seen)
    if (s >= 0 && s < scores.size(0)) scores[s] -= 1000;
  auto sc = scores.to(torch::kFloat64).contiguous();
  const double* v = sc.data_ptr<double>();
  std::vector<int64_t> order(static_cast<size_t>(sc.size(0)));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return v[a] > v[b]; });
  std::vector<RetrievalHit> hits;
  for (int64_t i = 0; i < std::min<int64_t>(k, sc.size(0)); ++i) {
    const int64_t idx = order[static_cast<size_t>(i)];
    hits.push_back({idx, v[idx], index.paths[static_cast<size_t>(idx)]});
  }
  return hits;
}

}  // namespace gill::pipeline
