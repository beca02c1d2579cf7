// gill — public C++ API. This header does not include torch.
//
// Threading promise: an Engine (and a Chat made from it) is used by one thread at a time. Different Engines may
// be used from different threads concurrently (they share no mutable state), but each sets libtorch's intra-op
// thread count, which is process-wide: give them the same `threads` value. Callbacks run on the calling thread.
//
// Errors: every failure is a gill::Error (gill/error.h) with an ErrorCode and a message naming the file, key or
// value; backend (libtorch) errors are translated at this boundary.
#pragma once
#include <gill/error.h>
#include <gill/image.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gill {

// One piece of an interleaved prompt: text, or an image (from a file or pixels already in memory).
struct Segment {
  enum class Kind { kText, kImageFile, kImage };
  Kind kind = Kind::kText;
  std::string text;        // kText
  std::string image_path;  // kImageFile
  Image image;             // kImage
  static Segment Text(std::string t) { Segment s; s.kind = Kind::kText; s.text = std::move(t); return s; }
  static Segment ImageFile(std::string p) { Segment s; s.kind = Kind::kImageFile; s.image_path = std::move(p); return s; }
  static Segment Pixels(Image im) { Segment s; s.kind = Kind::kImage; s.image = std::move(im); return s; }
};
using Prompt = std::vector<Segment>;

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kOff };

// Callbacks run on the thread that called into the Engine, between units of work (a tensor loaded, a token, a
// denoising step). A callback that throws aborts the call; the exception reaches the caller unchanged.
//
// Progress of a long step: stage ("load", "prompt", "tokens", "denoise", ...), done / total (total 0 = unknown).
using ProgressCallback = std::function<void(const std::string& stage, int64_t done, int64_t total)>;
// Called with each new piece of generated text; return false to cancel (the call throws kCancelled).
using TokenCallback = std::function<bool(const std::string& text_piece)>;
// Polled between units of work; return true to cancel (the call throws kCancelled). Safe to flip from a signal
// handler or another thread when it only reads an std::atomic<bool>.
using CancelCallback = std::function<bool()>;

// The one rule for "is this a URL" (a scheme, then "://": http://..., https://..., s3://...): a retrieved item
// whose path is a URL is reported, never fetched or copied.
bool is_url(const std::string& path);

struct RetrievedImage {
  std::string path;  // local path or URL (URLs are reported, never fetched)
  float score = 0;
  int64_t index = -1;
  std::string file;  // the local copy write_turn_files made (gill/result_json.h), "" = none
};

struct ImageBlock {
  std::string caption;           // text before this [IMG] block
  std::string decision;          // "gen" | "ret"
  float p_gen = 0, p_ret = 0;
  std::vector<RetrievedImage> retrieved;
  std::optional<Image> generated;  // when SD ran
  // The reference's re-ranking score of the generated image: cosine between its CLIP retrieval embedding and the
  // block's; computed when an index is loaded (as the reference), else 0.
  float gen_rank_score = 0;
  uint64_t seed = 0;
  // Where the generated image went, "" = nowhere: the PNG write_turn_files wrote, a URL a server answers with.
  std::string generated_file, generated_url;
};

// Called for each processed [IMG] block of a turn, twice, in block order: first with done = false once its
// decision and retrieval are known (before Stable Diffusion may run for it; `generated` empty), then with
// done = true once the block is complete (the same ImageBlock as Result::images[index]). Return false to cancel
// (the call throws kCancelled).
using ImageBlockCallback = std::function<bool(int64_t index, const ImageBlock& block, bool done)>;

struct EngineOptions {
  // Weights: a root in the layout of weights/README.md, or each component on its own (overrides the root).
  std::string weights_root;  // -m
  std::string lm_dir, clip_dir, sd_dir, gill_dir, index_path;
  std::string device = "cpu";   // one of available_devices(); validate() accepts cpu | cuda | cuda:N, the
                                // constructor refuses a device this build cannot run (check_device)
  std::string dtype = "auto";   // auto | fp32 | bf16 | fp16 (auto: the fastest accurate choice for the device)
  std::string compute = "auto"; // auto | fp32 | bf16: arithmetic for bf16-stored weights (auto: bf16 where the CPU has native bf16)
  int threads = 0;              // libtorch intra-op threads, set by the constructor; 0 = physical cores
  bool mmap = true;              // false: read the weights into anonymous (huge-page) memory instead of mapping
                                //   them: faster memory-bound decode, one copy at load (docs/performance.md)
  bool load_sd = true;          // false: no image generation (retrieval and text only; saves memory)
  std::function<void(LogLevel, const std::string&)> log;  // null: spdlog's default logger
  // Engine-wide callbacks: used while loading, and by every call whose GenerateOptions leaves them empty.
  ProgressCallback on_progress;
  CancelCallback is_cancelled;
  // Checks values only (no file access; missing files are reported by the constructor as kNotFound).
  // Throws gill::Error(kInvalidArgument) naming the field, e.g. "EngineOptions.device = \"tpu\": ...".
  void validate() const;
};

struct GenerateOptions {
  // Defaults are the reference's generate_for_images_and_texts defaults (gill-spec §12), except num_words.
  int num_words = 32;             // max new tokens
  int min_word_tokens = 0;
  float ret_scale_factor = 1.0f;
  float gen_scale_factor = 1.0f;
  float temperature = 0.0f;       // 0 = greedy
  float top_p = 1.0f;
  int top_k = 0;                  // keep the k most likely tokens when sampling (0 = off)
  int max_num_rets = 1;
  uint64_t seed = 1337;
  int steps = 50;                 // SD denoising steps
  float guidance_scale = 7.5f;
  std::string scheduler = "pndm";  // one of scheduler_names()
  bool always_generate = false;   // run SD for every [IMG] block, like the reference
  std::string dump_tensors;       // path of a safetensors dump of every stage ("" = none)
  // Per-call callbacks (empty: the engine's).
  ProgressCallback on_progress;
  TokenCallback on_token;
  CancelCallback is_cancelled;
  ImageBlockCallback on_image_block;
  // Throws gill::Error(kInvalidArgument) naming the field, e.g. "GenerateOptions.top_p = 1.5: must be in (0, 1]".
  void validate() const;
};

struct Timings {
  double load_s = 0, prompt_s = 0, decode_s = 0, retrieval_s = 0, generation_s = 0, total_s = 0;
  int64_t prompt_tokens = 0, new_tokens = 0;
  int threads = 0;  // libtorch intra-op threads the call ran with
};

// How a call computed (recorded in every transcript, docs/result-schema.md "compute").
struct ComputeInfo {
  std::string device;        // "cpu"
  std::string dtype;         // weight storage: "fp32" | "bf16" | "fp16"
  std::string requested;     // the compute option: "auto" | "fp32" | "bf16"
  std::string compute;       // what bf16-stored weights compute in here: "fp32" | "bf16"
  std::string gemv_kernel;   // the decode GEMV kernel: "avx512_bf16" | "avx2" | "scalar"
  bool native_bf16 = false;  // the CPU runs bf16 natively (AVX512-BF16 or AMX-BF16)
  std::string weights = "mmap";  // where the weights live: "mmap" (mapped file) | "memory" (--no-mmap)
};

struct Result {
  std::string text;               // the whole generated text (after the newline cut), [IMG] tokens included
  std::vector<ImageBlock> images; // one per processed [IMG] block, in order
  std::string trailing_text;      // text after the last block (the reference drops it; we keep it here)
  std::vector<int64_t> token_ids; // generated ids
  Timings timings;
  ComputeInfo compute;
};

// One candidate's score from Engine::score: the reference's GILL.get_log_likelihood_scores(prompt + [candidate]).
struct CandidateScore {
  std::string candidate;
  // -loss of the LM on prompt + candidate: the mean log-probability of every text token after the first position
  // (the prompt's text tokens included, as the reference; image positions are not scored). Higher is likelier.
  double log_likelihood = 0;
  int64_t n_scored = 0;     // tokens in that mean
  int64_t n_positions = 0;  // LM positions of prompt + candidate (text tokens, plus n_visual_tokens per image)
};

class Chat;

class Engine {
 public:
  explicit Engine(const EngineOptions& options);  // loads everything; throws gill::Error
  ~Engine();
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  Result generate(const Prompt& prompt, const GenerateOptions& options = {});
  // Stable Diffusion from prompt embeddings [77 x width] (row-major floats), or from a text prompt.
  Image generate_image_from_embeddings(const std::vector<float>& embeddings, int64_t n_tokens, int64_t width,
                                       const GenerateOptions& options = {});
  Image generate_image_from_text(const std::string& prompt, const GenerateOptions& options = {});
  Chat chat();
  // Scores each candidate text as a continuation of `prompt` (how GILL's retrieval evaluations rank candidates):
  // one CandidateScore per candidate, in order, each computed on its own (the reference's use_cache=False). The
  // prompt may be empty (then the candidates are scored alone). BOS goes before the first text of prompt +
  // candidate only. Progress stage "score" (done = candidates scored); the engine's is_cancelled is polled between
  // candidates. kInvalidArgument: no candidates, an empty or non-UTF-8 candidate, prompt + candidate longer than
  // the LM's positions.
  std::vector<CandidateScore> score(const Prompt& prompt, const std::vector<std::string>& candidates);

  struct Impl;
 private:
  std::unique_ptr<Impl> impl_;
  friend class Chat;
};

// Multi-turn dialogue that keeps the LM's KV cache across turns (history is never recomputed).
class Chat {
 public:
  ~Chat();
  Chat(Chat&&) noexcept;
  Chat& operator=(Chat&&) noexcept;
  Result send(const Prompt& turn, const GenerateOptions& options = {});
  void reset();
  // From now on each turn writes its images into `dir` (created when missing) as turnN_gen_K.png and
  // turnN_ret_K_I.EXT (write_turn_files, gill/result_json.h; N counts every turn this Chat sent, resets included),
  // and its Result and the transcript name those files. "" (the default) writes nothing.
  void set_output_dir(const std::string& dir);
  // The conversation since the last reset: a JSON array of turn objects (docs/result-schema.md), each with its
  // prompt, settings and "turn" (1, 2, ...). "[]" before the first turn.
  std::string transcript_json() const;
  // Turns sent so far (since the last reset), positions held in the KV cache (the dialogue so far), and the bytes
  // the cache's buffers take (their capacity, every layer's keys and values): what keeping this Chat costs.
  int64_t turns() const;
  int64_t n_positions() const;
  int64_t cache_bytes() const;

  struct State;
 private:
  explicit Chat(Engine::Impl* engine);
  std::unique_ptr<State> state_;
  friend class Engine;
};

// The library's version, "MAJOR.MINOR.PATCH".
const char* version();

// Devices this build can run on: {"cpu"} (gill has no CUDA path yet).
std::vector<std::string> available_devices();
// Throws kUnsupported naming `what` and the build when `device` is not one of available_devices(), e.g.
// "--device cuda: this build of gill runs on the CPU only (no CUDA path); available devices: cpu".
void check_device(const std::string& device, const std::string& what);
// The scheduler names GenerateOptions::scheduler and SdOptions::scheduler accept ("pndm", "ddim", ...).
const std::vector<std::string>& scheduler_names();
// Throws kInvalidArgument "WHAT is not valid UTF-8 (byte 0xff at offset 3)" when `text` is not valid UTF-8.
void check_utf8(const std::string& text, const std::string& what);

// Image files (PNG, JPEG, BMP, ... via stb_image; always decoded to RGB8). Throw kNotFound / kFormat / kIo.
Image read_image(const std::string& path);
// Writes a PNG under a temporary name and renames it into place, with optional tEXt/iTXt chunks (key, text):
// the one PNG writer of gill (generated images carry their settings this way).
void write_png(const Image& image, const std::string& path,
               const std::vector<std::pair<std::string, std::string>>& text = {});
// Files: the whole content of a file (kNotFound / kIo), and an atomic write (temporary name, fsync, rename; kIo).
std::string read_file(const std::string& path);
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace gill
