// NumPy .npy files (format versions 1-3, little-endian numeric dtypes; numpy/lib/format.py) and the reference's
// retrieval embeddings file (gill-spec §6.4: a pickle {'paths': [...], 'embeddings': [float32 vectors]}).
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "io/pickle.h"
#include "io/tensor_source.h"

namespace gill::io {

struct NpyHeader {
  int major = 1;
  std::string descr;  // "<f4"
  DType dtype = DType::F32;
  bool fortran_order = false;
  std::vector<int64_t> shape;
  size_t data_offset = 0;
};

// Reads and validates the header (kFormat naming the file, kUnsupported for big-endian/object/unknown dtypes).
NpyHeader read_npy_header(const std::filesystem::path& path);
// The array as a tensor: a zero-copy view of the mapped file when aligned (copy-on-write), else one copy.
torch::Tensor load_npy(const std::filesystem::path& path);
// True when the file starts with the .npy magic "\x93NUMPY".
bool is_npy_file(const std::filesystem::path& path);

// numpy descr ("<f4", "|u1") -> dtype; kUnsupported naming it otherwise.
DType npy_dtype(const std::string& descr, const std::string& where);
// A pickled numpy array (pickle::Kind::kNdArray) -> an owning tensor.
torch::Tensor ndarray_to_tensor(const pickle::Value& v, const std::string& where);

struct RetrievalEmbeddings {
  std::vector<std::string> paths;  // URLs or file paths, one per row
  torch::Tensor embeddings;        // [N, D] float32
};
// Reads the reference's embeddings pickle (protocol 2-5, numpy arrays via the restricted unpickler). Each
// 'embeddings' item is a [D] or [1, D] float array (or one [N, D] array). kFormat when counts/dims disagree.
RetrievalEmbeddings load_retrieval_embeddings(const std::filesystem::path& path);

// Unpickles a whole file that is a bare pickle (not a torch zip). kFormat/kSecurity as pickle::unpickle.
pickle::ValuePtr load_pickle_file(const std::filesystem::path& path);

}  // namespace gill::io

namespace gill::io {
// Writes the reference's retrieval file: a pickle (protocol 3) {'paths': [...], 'embeddings': [float32 numpy
// arrays of shape [D]]} that Python's pickle.load (with numpy) and load_retrieval_embeddings both read. Atomic.
void write_retrieval_embeddings(const std::filesystem::path& path, const std::vector<std::string>& paths,
                                const torch::Tensor& embeddings);
}  // namespace gill::io
